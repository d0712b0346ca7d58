"""Upscale, refine-upscale and restore through a real daemon on a real socket, and the CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from tests.daemon.conftest import (
    Recorder,
    RunningDaemon,
    client_maker,
    layer_array,
    photo_like,
    start_daemon,
    submit_job,
)
from tests.protocol.fake_host import FakeCanvas
from tests.protocol.test_controller import Live
from tests.upscale import models
from tests.upscale.jobs import (
    REGION_LAYER,
    REGION_UPSCALE,
    alpha_on_canvas,
    model_region_upscale,
    refine_upscale_job,
    region_picture,
    restore_job,
    tiles_in_order,
)
from tests.upscale.test_tiles import upscale
from underpaint.engines.registry import build_engines
from underpaint.engines.upscale import ClassicalUpscaler
from underpaint.engines.weights import UnsafeWeights, load_state_dict
from underpaint_protocol.client import DaemonError, UnderpaintClient
from underpaint_protocol.controller import Request
from underpaint_protocol.messages import Limits
from underpaint_protocol.upscale import UpscaleRequest

LIMITS = Limits(max_frame_bytes=2 * 1024 * 1024)
"""Frames of 2 MiB: result tiles of 1 MiB, so a 1200x800 result comes as four tiles."""


class ScalingCanvas(FakeCanvas):
    """The in-memory host canvas, able to scale (what Krita's and GIMP's image scale does)."""

    scales: list[tuple[int, int]]

    def scale(self, width: int, height: int) -> None:
        self.scales = [*getattr(self, "scales", []), (width, height)]
        self.undo_steps.append("scale")
        for layer in self.walk():
            fx, fy = width / self.width, height / self.height
            size = (max(1, round(layer.width * fx)), max(1, round(layer.height * fy)))
            layer.pixels = cv2.resize(layer.pixels, size, interpolation=cv2.INTER_LANCZOS4)
            layer.x, layer.y = round(layer.x * fx), round(layer.y * fy)
        self.width, self.height = width, height


@pytest.fixture(scope="module")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("upscale-models")
    return {
        "compact": models.compact_x2(folder),
        "esrgan": models.esrgan_x4(folder),
        "restoreformer": models.restoreformer(folder),
    }


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory, model_files: dict[str, Path]) -> Iterator[RunningDaemon]:
    """What `underpaint serve --model upscale:... --model restore:...` builds, with small frames."""
    from underpaint.engines.diffusion import DiffusionEngine

    sources = [
        f"upscale:{model_files['compact']}",
        f"upscale:{model_files['esrgan']}",
        f"restore:{model_files['restoreformer']}",
    ]
    engines, _ = build_engines("classical", sources, [], "cpu")
    engines.append(DiffusionEngine(sources=["tiny-random"], device="cpu"))
    running = start_daemon(tmp_path_factory.mktemp("upscale-daemon"), limits=LIMITS, engines=engines)
    yield running
    running.thread.stop()


@pytest.fixture
def make_client(daemon: RunningDaemon):
    yield from client_maker(daemon.url)


def test_welcome_lists_the_upscalers_and_the_restoration_model(make_client) -> None:
    client, _ = make_client()
    models_by_id = {m["id"]: m for m in client.welcome["models"]}
    assert models_by_id["classical-upscale"]["modes"] == ["upscale"]
    assert models_by_id["tiny-compact-x2"]["family"] == "RealESRGAN Compact"
    assert models_by_id["tiny-esrgan-x4"]["family"] == "ESRGAN"
    assert models_by_id["tiny-restoreformer"]["modes"] == ["restore"]
    assert "refine_upscale" in models_by_id["tiny-random"]["modes"]


def test_whole_canvas_upscale_scales_the_document_and_lands_the_joined_tiles(daemon: RunningDaemon) -> None:
    canvas = ScalingCanvas.photo(300, 200)
    picture = canvas.background.copy()
    live = Live(daemon.url, daemon.token, canvas)
    live.connect()
    try:
        request = Request(mode="upscale", model="classical-upscale", upscale=UpscaleRequest(4.0))
        job = live.controller.generate(request)
        assert job is not None, live.controller.error
        live.until(lambda: job.settled, 120)
    finally:
        live.controller.close()
    assert job.state == "finished", job.error
    assert canvas.scales == [(1200, 800)] and canvas.undo_steps == ["scale", "paste"]
    assert [kind for kind, _ in canvas.reads] == ["image"]  # the bounds, no mask
    tile = ClassicalUpscaler().tile_for(4.0, None)
    assert tile == 224 and job.total == job.step == 2  # two upscaler tiles of 224 px for 300x200
    (result,) = job.results
    assert result.message["upscale"]["tiles"] == 4 and result.message["layer"]["height"] == 800
    layer = canvas.layers[0]
    assert (layer.x, layer.y, layer.width, layer.height) == (0, 0, 1200, 800)
    expected, _ = upscale(picture, ClassicalUpscaler(), 4.0, tile=tile)
    assert np.array_equal(layer.pixels, expected), "the joined tiles are the daemon's whole result"


def test_region_upscale_with_a_model_lands_over_the_scaled_region(make_client, model_files) -> None:
    client, events = make_client()
    picture, job = region_picture(), REGION_UPSCALE
    planned = client.plan(job).result(timeout=10)
    assert planned["upload"] == {"x": 21, "y": 10, "width": 75, "height": 61}
    assert planned["canvas"] == {"x": 0, "y": 0, "width": 480, "height": 360}
    accepted = submit_job(client, job, picture)
    outcome = events.wait_outcome(accepted["job_id"], 120)
    assert outcome.type == "finished", outcome.message
    results = events.of(accepted["job_id"], "result")
    assert outcome.message["results"] == len(results) == results[0].message["upscale"]["tiles"]
    assert results[0].message["upscale"]["layer"] == REGION_LAYER
    progress = events.of(accepted["job_id"], "progress")
    assert [p.message["step"] for p in progress] == list(range(1, progress[-1].message["total"] + 1))
    ordered, joined = tiles_in_order(events, accepted["job_id"])
    assert joined.shape == (183, 225, 4)
    rows = [r.message["layer"]["y"] for r in ordered]
    assert rows == sorted(rows) and rows[0] == 30
    expected = model_region_upscale(picture, model_files["compact"])
    assert np.array_equal(joined, expected), "the daemon's tiles are the model's tiled upscale of the region"


def test_fetch_replays_every_tile_with_its_placement(make_client, daemon: RunningDaemon) -> None:
    client, events = make_client()
    job = {"mode": "upscale", "canvas": {"width": 300, "height": 200}, "upscale": {"factor": 4.0}}
    accepted = submit_job(client, job, photo_like(300, 200, seed=2))
    assert events.wait_outcome(accepted["job_id"], 120).type == "finished"
    live = [layer_array(r) for r in events.of(accepted["job_id"], "result")]
    stored = sorted(daemon.outputs.glob(f"*/{accepted['job_id']}-*.json"))
    assert len(stored) == 4
    again, replay = make_client(client_id=client.client_id)
    again.fetch(accepted["job_id"], replay=True)
    replay.wait_outcome(accepted["job_id"], 60)
    replayed = replay.of(accepted["job_id"], "result")
    assert [r.message["upscale"] for r in replayed] == [
        r.message["upscale"] for r in events.of(accepted["job_id"], "result")
    ]
    for first, second in zip(live, [layer_array(r) for r in replayed], strict=True):
        assert np.array_equal(first, second)


def test_the_outputs_folder_gets_the_whole_layer_as_one_png(make_client, daemon: RunningDaemon) -> None:
    """Beside its tiles (what fetch replays), an upscale is stored as one picture, <job>.png, joined by
    the background writer; a PNG reader sees the whole layer and each tile, with their parameters."""
    from PIL import Image

    from underpaint_protocol import pnginfo

    client, events = make_client()
    job = {"mode": "upscale", "canvas": {"width": 300, "height": 200}, "upscale": {"factor": 4.0}}
    accepted = submit_job(client, job, photo_like(300, 200, seed=6))
    assert events.wait_outcome(accepted["job_id"], 120).type == "finished"
    results, joined = tiles_in_order(events, accepted["job_id"])
    assert len(results) == 4
    whole = Path(results[0].message["output"]).with_name(f"{accepted['job_id']}.png")
    events.wait_for(whole.is_file, 60)
    with Image.open(whole) as png:
        assert png.size == (1200, 800) and png.mode == "RGBA"
        assert np.array_equal(np.asarray(png), joined)
    assert np.array_equal(cv2.cvtColor(cv2.imread(str(whole), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGRA2RGBA), joined)
    assert json.loads(pnginfo.read_text(whole.read_bytes())[pnginfo.OUR_KEY]) == results[0].message["params"]
    for result in results:  # the tiles stay, one PNG each (deflated once with the whole layer's)
        with Image.open(result.message["output"]) as png:
            assert np.array_equal(np.asarray(png), layer_array(result))
            assert json.loads(png.text[pnginfo.OUR_KEY]) == result.message["params"]


def test_refine_upscale_runs_diffusion_over_tiles_with_progress_across_them(make_client) -> None:
    client, events = make_client()
    job, picture = refine_upscale_job("classical-upscale")
    accepted = submit_job(client, job, picture)
    outcome = events.wait_outcome(accepted["job_id"], 300)
    assert outcome.type == "finished", outcome.message
    results = events.of(accepted["job_id"], "result")
    assert results[0].message["upscale"]["layer"] == {"x": 0, "y": 0, "width": 192, "height": 128}
    assert results[0].message["params"]["prompt"] == "a lighthouse"
    steps = [p.message for p in events.of(accepted["job_id"], "progress")]
    assert steps[-1]["step"] == steps[-1]["total"] and steps[-1]["total"] > 2
    assert [s["step"] for s in steps] == sorted(s["step"] for s in steps)
    # each event says which tile of which pass: the upscaler's tiles, then each refine tile's steps
    upscaled = [s["tile"] for s in steps if s["tile"]["stage"] == "upscale"]
    assert [t["index"] for t in upscaled] == list(range(1, upscaled[0]["count"] + 1))
    refined = [(t["index"], t["step"]) for s in steps if (t := s["tile"])["stage"] == "refine"]
    count, per_tile = steps[-1]["tile"]["count"], steps[-1]["tile"]["steps"]
    assert refined == [(tile, step) for tile in range(1, count + 1) for step in range(1, per_tile + 1)]
    assert steps[-1]["total"] == len(upscaled) + count * per_tile


@contextmanager
def restore_daemon(tmp_path: Path, source: str) -> Iterator[tuple[UnderpaintClient, Recorder]]:
    """A daemon serving only the restoration model ``source`` (default limits), and a client of it."""
    engines, _ = build_engines("classical", [source], [], "cpu")
    running = start_daemon(tmp_path, limits=Limits(), engines=engines)
    try:
        maker = client_maker(running.url)
        yield next(maker)()
        for _ in maker:
            pass
    finally:
        running.thread.stop()


def expect_error(client: Any, job: dict[str, Any]) -> DaemonError:
    with pytest.raises(DaemonError) as caught:
        client.plan(job).result(timeout=10)
    return caught.value


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"upscale": {"factor": 20}}, "invalid_field", "job.upscale.factor"),
        ({"upscale": {"factor": 0.5}}, "invalid_field", "job.upscale.factor"),
        (
            {"upscale": {"factor": 16}, "canvas": {"width": 3000, "height": 100}},
            "too_many_pixels",
            "job.upscale.factor",
        ),
        ({"upscale": None}, "invalid_value", "job.upscale"),
        ({"model": "RealESRGAN_x4plus"}, "unknown_model", "job.model"),
        ({"model": "tiny-random"}, "unsupported_mode", "job.mode"),
        ({"batch": 2}, "invalid_value", "job.batch"),
        (
            {"mode": "refine_upscale", "model": "tiny-random", "upscale": {"factor": 2, "model": "nope"}},
            "unknown_model",
            "job.upscale.model",
        ),
        (
            {"mode": "inpaint", "model": "classical", "selection": {"x": 1, "y": 1, "width": 5, "height": 5}},
            "invalid_value",
            "job.upscale",
        ),
        (
            {
                "mode": "restore",
                "model": "tiny-restoreformer",
                "upscale": None,
                "selection": {"x": 1, "y": 1, "width": 50, "height": 50},
            },
            "licence_refused",
            "job.model",
        ),
        ({"mode": "restore", "model": "tiny-restoreformer", "upscale": None}, "licence_refused", "job.model"),
    ],
)
def test_bad_upscale_requests_get_errors_naming_the_field(make_client, change, code, field) -> None:
    client, _ = make_client()
    job: dict[str, Any] = {
        "mode": "upscale",
        "model": "classical-upscale",
        "canvas": {"width": 300, "height": 200},
        "upscale": {"factor": 2.0},
        **change,
    }
    job = {key: value for key, value in job.items() if value is not None}
    error = expect_error(client, job)
    assert (error.code, error.field) == (code, field), str(error)
    fine = {"mode": "upscale", "canvas": {"width": 30, "height": 20}, "upscale": {"factor": 2}}
    assert client.plan(fine).result(timeout=10)["canvas"]["width"] == 60  # the connection keeps serving


def test_restore_with_the_research_opt_in_changes_only_the_selection(tmp_path: Path, model_files) -> None:
    with restore_daemon(tmp_path, f"restore:{model_files['restoreformer']}#allow_research") as (client, events):
        job, picture, mask = restore_job(None)
        accepted = submit_job(client, job, picture, mask)
        outcome = events.wait_outcome(accepted["job_id"], 300)
        assert outcome.type == "finished", outcome.message
        (result,) = events.of(accepted["job_id"], "result")
        assert result.message.get("upscale") is None and result.message["params"]["model"] == "tiny-restoreformer"
        alpha = alpha_on_canvas(result, 200, 160)
        assert alpha[60:100, 80:120].min() == 255  # the selection is replaced
        assert alpha[:10].max() == 0 and alpha[150:].max() == 0 and alpha[:, :20].max() == 0  # far outside: nothing


def test_a_malicious_pth_upscaler_is_refused_without_running_its_code(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    evil = models.malicious_pth(tmp_path, marker)
    with pytest.raises(UnsafeWeights):
        load_state_dict(evil)
    with pytest.raises(ValueError):
        build_engines("classical", [f"upscale:{evil}"], [], "cpu")
    assert not marker.exists()
    import torch

    torch.load(evil, weights_only=False)  # the payload is live: unpickled the ordinary way it runs
    assert marker.exists()


def test_a_pth_state_dict_loads_through_the_safe_path(tmp_path: Path, model_files) -> None:
    import torch
    from safetensors.torch import load_file

    path = tmp_path / "RealESRGAN_x2.pth"
    torch.save({"params_ema": load_file(str(model_files["compact"]))}, path)
    engines, _ = build_engines("classical", [f"upscale:{path}"], [], "cpu")
    assert any(m.id == "RealESRGAN_x2" for e in engines for m in e.models())


def test_cli_writes_the_whole_upscaled_image(daemon: RunningDaemon, tmp_path: Path) -> None:
    from PIL import Image

    from underpaint.cli import main

    source = tmp_path / "in.png"
    Image.fromarray(photo_like(150, 100, seed=4)).save(source)
    out = tmp_path / "out.png"
    argv = ["generate", "upscale", "--server", daemon.url, "--token", daemon.token, "--image", str(source)]
    assert main([*argv, "--factor", "2.5", "--model", "tiny-compact-x2", "--out", str(out)]) in (0, None)
    with Image.open(out) as written:
        assert written.size == (375, 250)


def test_cancel_stops_an_upscale_between_tiles(make_client) -> None:
    client, events = make_client()
    job = {
        "mode": "upscale",
        "model": "tiny-compact-x2",
        "canvas": {"width": 640, "height": 448},
        "upscale": {"factor": 2.0, "tile": 64},
    }
    accepted = submit_job(client, job, photo_like(640, 448, seed=8))
    events.wait_for(lambda: bool(events.of(accepted["job_id"], "progress")), 120)
    client.cancel(accepted["job_id"])
    outcome = events.wait_outcome(accepted["job_id"], 120)
    assert outcome.type == "cancelled", outcome.message
    total = events.of(accepted["job_id"], "progress")[-1].message["total"]
    assert len(events.of(accepted["job_id"], "progress")) < total  # it stopped before the last tile


@pytest.fixture(scope="session")
def gfpgan_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Full-size GFPGAN with random weights, made once per session (spandrel only builds it at 512 px)."""
    return models.gfpgan(tmp_path_factory.mktemp("gfpgan"))


@pytest.mark.slow
def test_gfpgan_restores_the_face_region_over_the_socket_and_leaves_the_rest(tmp_path: Path, gfpgan_file) -> None:
    """GFPGAN (Apache-2.0) runs without the research opt-in: the selection changes, the rest does not."""
    with restore_daemon(tmp_path, f"restore:{gfpgan_file}") as (client, events):
        listed = {m["id"]: m for m in client.welcome["models"]}["random-gfpgan"]
        assert (listed["family"], listed["modes"], listed.get("refusal")) == ("GFPGAN", ["restore"], None)
        picture = photo_like(240, 200, seed=11)
        mask = np.zeros((200, 240), np.uint8)
        mask[60:140, 80:160] = 255
        job = {
            "mode": "restore",
            "model": "random-gfpgan",
            "canvas": {"width": 240, "height": 200},
            "selection": {"x": 80, "y": 60, "width": 80, "height": 80},
        }
        accepted = submit_job(client, job, picture, mask)
        outcome = events.wait_outcome(accepted["job_id"], 600)
        assert outcome.type == "finished", outcome.message
        (result,) = events.of(accepted["job_id"], "result")
        assert result.message["params"]["model"] == "random-gfpgan" and result.message.get("upscale") is None
        layer = layer_array(result)
        x, y = result.message["layer"]["x"], result.message["layer"]["y"]
        pasted = picture.astype(np.float32)  # the layer composited over the canvas, as a host shows it
        region = pasted[y : y + layer.shape[0], x : x + layer.shape[1]]
        alpha = layer[..., 3:].astype(np.float32) / 255.0
        region[..., :3] = layer[..., :3] * alpha + region[..., :3] * (1.0 - alpha)
        change = np.abs(pasted[..., :3] - picture[..., :3]).max(axis=2)
        assert change[70:130, 90:150].mean() > 20, "the face region is the model's output"
        outside = np.ones((200, 240), bool)
        outside[20:180, 40:200] = False  # the selection with room for its soft edge (grow 2 + feather 32)
        assert change[outside].max() == 0, "nothing outside the selection changes"
        alpha = alpha_on_canvas(result, 240, 200)
        assert alpha[outside].max() == 0 and alpha[70:130, 90:150].min() == 255


def test_a_malicious_pth_restore_model_is_refused_without_running_its_code(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    evil = models.malicious_pth(tmp_path, marker, name="GFPGANv1.4", key="toRGB.0.weight")
    with pytest.raises(ValueError, match=r"GFPGANv1\.4\.pth"):
        build_engines("classical", [f"restore:{evil}"], [], "cpu")
    assert not marker.exists()
