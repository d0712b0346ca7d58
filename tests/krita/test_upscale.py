"""Krita's side of upscaling on tests/krita/fake_krita.py: the document scaled as one undo step, then the
result (tiles joined by the shared client) as ONE layer at full size, or over the scaled region."""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

from PIL import Image
from underpaint_krita.glue import SCALE_FILTER, KritaGlue
from underpaint_krita.model import DockerModel, Settings

from tests.krita.fake_krita import FakeDocument, FakeKrita
from tests.krita.test_model import make_model
from tests.protocol.test_controller import ScriptedClient
from underpaint.daemon.config import DaemonConfig
from underpaint.daemon.server import Daemon, DaemonThread
from underpaint.engines.classical import ClassicalEngine
from underpaint.engines.upscale import CLASSICAL_UPSCALER, UpscaleEngine
from underpaint_protocol.session import ImageData
from underpaint_protocol.upscale_panel import models_for, upscale_request

MODELS = [{"id": "classical", "modes": ["inpaint", "upscale"]}, {"id": "GFPGANv1.4", "modes": ["restore"]}]


def photo(width: int, height: int) -> tuple[FakeKrita, FakeDocument]:
    app = FakeKrita()
    doc = app.open(FakeDocument(width, height))
    base = doc.add_layer("Background", bytes([0, 0, 0, 255]))
    for y in range(height):
        for x in range(width):
            base.pixels[(x, y)] = bytes([x % 256, y % 256, 128, 255])
    return app, doc


def test_scaling_the_document_is_one_undo_step_of_every_layer() -> None:
    app, doc = photo(6, 4)
    top = doc.add_layer("Top", bytes([1, 2, 3, 255]))
    canvas = KritaGlue(app).active_canvas()
    canvas.scale(12, 8)
    assert canvas.size() == (12, 8)
    assert doc.undo_steps == [("scale", (12, 8, SCALE_FILTER))]
    base = doc.root.children[0]
    assert base.pixels[(11, 7)] == bytes([5, 3, 128, 255])  # every layer resampled, not only the active one
    assert len(top.pixels) == 12 * 8


class ScriptedDaemon(ScriptedClient):
    """The scripted client of the controller's tests, announcing an upscaler and a restorer."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.welcome = {**self.welcome, "models": MODELS, "default_model": "classical"}


def docker(app: FakeKrita) -> tuple[DockerModel, ScriptedDaemon]:
    clients: list[ScriptedDaemon] = []

    def factory(*args: Any, **kwargs: Any) -> ScriptedDaemon:
        clients.append(ScriptedDaemon(*args, **kwargs))
        return clients[-1]

    settings = Settings(lambda k, d: app.settings.get(("u", k), d), lambda k, v: app.settings.update({("u", k): v}))
    model = DockerModel(KritaGlue(app, bytearray), lambda fn: fn(), settings, client_factory=factory)
    model.controller.connect("ws://127.0.0.1:1")
    for _ in range(200):  # connecting runs on a short-lived thread, then posts inline
        if model.connection == "connected":
            break
        time.sleep(0.01)
    assert model.connection == "connected"
    return model, clients[0]


def tiles(job_id: str, layer: tuple[int, int, int, int], canvas: tuple[int, int], bands: int) -> list[tuple]:
    """The daemon's tiles of one upscale layer: full-width bands, top to bottom, each of its own colour."""
    x, y, width, height = layer
    cuts = [y + height * k // bands for k in range(bands + 1)]
    out = []
    for index, (top, bottom) in enumerate(itertools.pairwise(cuts)):
        message = {
            "type": "result",
            "job_id": job_id,
            "index": index,
            "layer": {"name": "Upscale x2 (classical)", "x": x, "y": top, "width": width, "height": bottom - top},
            "canvas": {"x": 0, "y": 0, "width": canvas[0], "height": canvas[1]},
            "params": {"mode": "upscale", "model": "classical"},
            "upscale": {
                "factor": 2.0,
                "canvas": {"width": canvas[0], "height": canvas[1]},
                "layer": {"x": x, "y": y, "width": width, "height": height},
                "tiles": bands,
            },
        }
        pixels = bytes([index, 1, 2, 255]) * (width * (bottom - top))
        out.append((message, ImageData("bgra8", width, bottom - top, pixels)))
    return out


def run_upscale(
    model: DockerModel, client: ScriptedDaemon, request: Any, layer: tuple, canvas: tuple, bands: int
) -> Any:
    job = model.controller.generate(request)
    assert job is not None, model.controller.error
    client.plans[-1].set_result({"type": "planned", "upload": {"x": 0, "y": 0, "width": 1, "height": 1}})
    spec, _region, _image, mask, accepted, on_sent = client.submits[-1]
    on_sent()
    accepted.set_result({"type": "accepted", "job_id": "u1", "seed": 0})
    parts = tiles("u1", layer, canvas, bands)
    for message, image in reversed(parts):  # any order
        client.event(message, image)
    client.event({"type": "finished", "job_id": "u1", "results": bands})
    return job, spec, mask


def test_a_whole_canvas_upscale_scales_the_document_then_adds_one_full_size_layer() -> None:
    app, doc = photo(6, 4)
    model, client = docker(app)
    request = upscale_request("upscale", factor=2, upscaler="classical")
    job, spec, mask = run_upscale(model, client, request, (0, 0, 12, 8), (12, 8), 3)
    assert spec["mode"] == "upscale" and spec["upscale"] == {"factor": 2.0} and mask is None
    assert job.state == "finished" and model.error == ""
    assert (doc.width(), doc.height()) == (12, 8)
    node = doc.root.children[-1]
    assert [kind for kind, _ in doc.undo_steps] == ["scale", "add"] and doc.undo_steps[1][1] is node
    assert [n.name() for n in doc.root.children] == ["Background", node.name()]
    bounds = node.bounds()
    assert (bounds.x(), bounds.y(), bounds.width(), bounds.height()) == (0, 0, 12, 8)
    # the three bands, in their places: rows 0-1 tile 0, rows 2-4 tile 1, rows 5-7 tile 2
    assert [node.pixelData(0, row, 1, 1)[0] for row in range(8)] == [0, 0, 1, 1, 1, 2, 2, 2]


def test_tiles_go_into_one_detached_layer_and_the_document_scales_after_the_last() -> None:
    """Each tile is written into Krita's layer as it arrives (the client holds one tile, never the
    whole layer); the document is untouched until the last tile, so a cancel on the way leaves no trace."""
    app, doc = photo(6, 4)
    model, client = docker(app)
    job = model.controller.generate(upscale_request("upscale", factor=2, upscaler="classical"))
    assert job is not None
    client.plans[-1].set_result({"type": "planned", "upload": {"x": 0, "y": 0, "width": 6, "height": 4}})
    client.submits[-1][5]()
    client.submits[-1][4].set_result({"type": "accepted", "job_id": "u1", "seed": 0})
    first, second, third = tiles("u1", (0, 0, 12, 8), (12, 8), 3)
    client.event(*second)
    client.event(*second)  # a repeat (a replay after a reconnect) changes nothing
    client.event(*first)
    assert (doc.width(), doc.height()) == (6, 4) and doc.undo_steps == [] and len(doc.root.children) == 1
    assert job.tiles.tiles == {} and job.results == [], "nothing of the layer is held in the client"
    client.event(*third)
    assert (doc.width(), doc.height()) == (12, 8) and [kind for kind, _ in doc.undo_steps] == ["scale", "add"]
    client.event({"type": "finished", "job_id": "u1", "results": 3})
    assert job.settled and job.describe() == "upscale: done, 1 layer" and model.error == ""

    job = model.controller.generate(upscale_request("upscale", factor=2, upscaler="classical"))
    assert job is not None
    client.plans[-1].set_result({"type": "planned", "upload": {"x": 0, "y": 0, "width": 12, "height": 8}})
    client.submits[-1][5]()
    client.submits[-1][4].set_result({"type": "accepted", "job_id": "u2", "seed": 0})
    first, *_ = tiles("u2", (0, 0, 24, 16), (24, 16), 3)
    client.event(*first)
    model.controller.cancel(job)
    client.event({"type": "cancelled", "job_id": "u2"})
    assert job.state == "cancelled" and (doc.width(), doc.height()) == (12, 8)
    assert len(doc.root.children) == 2 and len(doc.undo_steps) == 2, "the half-filled layer never joined"


def test_a_region_upscale_lands_over_that_region_of_the_scaled_document() -> None:
    app, doc = photo(8, 6)
    doc.select_rect(2, 1, 3, 2)
    model, client = docker(app)
    job, spec, mask = run_upscale(model, client, upscale_request("upscale", factor=2), (4, 2, 6, 4), (16, 12), 2)
    assert spec["selection"] == {"x": 2, "y": 1, "width": 3, "height": 2} and mask is None  # bounds only
    assert (doc.width(), doc.height()) == (16, 12) and job.state == "finished"
    node = doc.root.children[-1]
    bounds = node.bounds()
    assert (bounds.x(), bounds.y(), bounds.width(), bounds.height()) == (4, 2, 6, 4)
    assert [kind for kind, _ in doc.undo_steps] == ["scale", "add"]


def test_restore_needs_a_selection_and_sends_the_soft_mask_like_an_inpaint() -> None:
    app, doc = photo(8, 6)
    model, client = docker(app)
    assert model.controller.generate(upscale_request("restore", restorer="GFPGANv1.4")) is None
    assert "Select the face" in model.error and client.plans == []
    doc.select_rect(2, 1, 3, 2, 128)
    job = model.controller.generate(upscale_request("restore", restorer="GFPGANv1.4"))
    assert job is not None and job.mode == "restore"
    client.plans[-1].set_result({"type": "planned", "upload": {"x": 0, "y": 0, "width": 8, "height": 6}})
    spec, _region, _image, mask, _accepted, _on_sent = client.submits[-1]
    assert spec["model"] == "GFPGANv1.4" and "upscale" not in spec and 128 in bytes(mask.data)


def test_the_docker_upscales_a_document_through_a_real_daemon(tmp_path: Path) -> None:
    """The classical upscaler over a real socket: the document doubles, one layer holds the result."""
    config = DaemonConfig(host="127.0.0.1", port=0, token_file=tmp_path / "token", outputs=tmp_path / "outputs")
    thread = DaemonThread(Daemon(config, [ClassicalEngine(), UpscaleEngine([])], "classical")).start()
    try:
        app, doc = photo(48, 32)
        model, ui = make_model(app, thread.url, thread.daemon.token)
        model.connect()
        ui.run_until(lambda: model.connection == "connected")
        assert [m["id"] for m in models_for(model.controller.every_model, "upscaler")] == [CLASSICAL_UPSCALER]
        job = model.controller.generate(upscale_request("upscale", factor=2, upscaler=CLASSICAL_UPSCALER))
        assert job is not None, model.error
        ui.run_until(lambda: job.settled, 60)
        assert (job.state, model.error) == ("finished", "")
        assert (doc.width(), doc.height()) == (96, 64)
        assert [kind for kind, _ in doc.undo_steps] == ["scale", "add"]
        node = doc.root.children[-1]
        bounds = node.bounds()
        assert (bounds.x(), bounds.y(), bounds.width(), bounds.height()) == (0, 0, 96, 64)
        assert job.results == [], "the tiles went into Krita's layer one by one; none is kept"
        outputs = tmp_path / "outputs"
        ui.run_until(lambda: any(outputs.rglob(f"{job.job_id}.png")), 30)  # the daemon's picture of the layer
        with Image.open(next(outputs.rglob(f"{job.job_id}.png"))) as png:
            r, g, b, a = png.convert("RGBA").split()
            expected = Image.merge("RGBA", (b, g, r, a)).tobytes()  # bgra8, as the docker asks
        assert node.pixelData(0, 0, 96, 64) == expected
    finally:
        thread.stop()
