"""Jobs through a real daemon over real loopback sockets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.daemon.conftest import RunningDaemon, layer_array, photo_like, submit_job
from underpaint.canvas import PixelLayer, composite_over
from underpaint.canvas.geometry import Box
from underpaint_protocol import PROTOCOL_VERSION


def inpaint_job(x: int = 40, y: int = 30, w: int = 37, h: int = 29, **extra: object) -> dict:
    job = {
        "mode": "inpaint",
        "canvas": {"width": 200, "height": 150},
        "selection": {"x": x, "y": y, "width": w, "height": h},
    }
    job.update(extra)
    return job


def rect_mask(width: int, height: int, x: int, y: int, w: int, h: int) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    mask[y : y + h, x : x + w] = 255
    return mask


def test_welcome_describes_the_daemon(make_client) -> None:
    client, _ = make_client(host=("krita", "5.2.9"))
    welcome = client.welcome
    assert welcome["protocol"] == PROTOCOL_VERSION
    assert welcome["server"]["name"] == "underpaint"
    assert {"classical", "paced"} <= {m["id"] for m in welcome["models"]}
    classical = next(m for m in welcome["models"] if m["id"] == "classical")
    assert classical["modes"] == ["inpaint", "outpaint"]
    assert welcome["default_model"] == "classical"
    assert welcome["limits"]["max_frame_bytes"] == 4 * 1024 * 1024
    assert welcome["limits"]["max_upload_pixels"] == 1024 * 1024
    assert set(welcome["image_formats"]) == {"rgba8", "bgra8", "gray8", "png"}
    assert len(welcome["client_id"]) >= 16


@pytest.mark.parametrize("image_format", ["rgba8", "png"])
def test_classical_inpaint_places_an_exact_layer(make_client, image_format: str) -> None:
    client, events = make_client()
    canvas = photo_like(200, 150)
    mask = rect_mask(200, 150, 40, 30, 37, 29)
    accepted = submit_job(client, inpaint_job(seed=7), canvas, mask, image_format)
    assert accepted["seed"] == 7
    outcome = events.wait_outcome(accepted["job_id"])
    assert outcome.type == "finished", outcome.message
    (result,) = events.of(accepted["job_id"], "result")
    layer_info = result.message["layer"]
    pixels = layer_array(result)
    assert (layer_info["width"], layer_info["height"]) == (pixels.shape[1], pixels.shape[0])
    layer = PixelLayer(pixels=pixels.copy(), x=layer_info["x"], y=layer_info["y"], canvas=Box(0, 0, 200, 150))
    # the layer covers the selection, fully opaque inside it
    assert layer.rect.contains(Box(40, 30, 37, 29))
    inside = pixels[30 - layer.y : 59 - layer.y, 40 - layer.x : 77 - layer.x, 3]
    assert (inside == 255).all()
    # outside the layer's non-zero alpha the composite is the original, bit for bit
    composite = composite_over(canvas.copy(), layer, Box(0, 0, 200, 150))
    covered = np.zeros((150, 200), bool)
    covered[layer.y : layer.y + layer.height, layer.x : layer.x + layer.width] = pixels[..., 3] > 0
    assert np.array_equal(composite[~covered], canvas[~covered])
    assert result.message["canvas"] == {"x": 0, "y": 0, "width": 200, "height": 150}
    params = result.message["params"]
    assert params["seed"] == 7 and params["mode"] == "inpaint" and params["model"] == "classical"
    assert result.message["layer"]["name"].endswith("[seed 7]")


def test_results_are_saved_before_they_are_reported(make_client, daemon: RunningDaemon) -> None:
    client, events = make_client()
    canvas = photo_like(200, 150)
    accepted = submit_job(client, inpaint_job(), canvas, rect_mask(200, 150, 40, 30, 37, 29))
    events.wait_outcome(accepted["job_id"])
    (result,) = events.of(accepted["job_id"], "result")
    output = result.message["output"]
    assert output is not None and output.endswith(".png")
    sidecar = json.loads(Path(output).with_suffix(".json").read_text())
    assert sidecar["job_id"] == accepted["job_id"]
    assert sidecar["x"] == result.message["layer"]["x"]
    assert sidecar["params"]["seed"] == accepted["seed"]


def test_classical_outpaint_grows_the_canvas(make_client) -> None:
    client, events = make_client()
    canvas = photo_like(120, 90)
    job = {
        "mode": "outpaint",
        "canvas": {"width": 120, "height": 90},
        "extend": {"left": 30, "top": 0, "right": 0, "bottom": 20},
    }
    accepted = submit_job(client, job, canvas)
    assert events.wait_outcome(accepted["job_id"]).type == "finished"
    (result,) = events.of(accepted["job_id"], "result")
    assert result.message["canvas"] == {"x": -30, "y": 0, "width": 150, "height": 110}
    layer = result.message["layer"]
    assert layer["x"] == -30  # reaches the new left edge
    assert layer["y"] + layer["height"] == 110  # and the new bottom edge
    pixels = layer_array(result)
    new_left = pixels[:, : 30 - 0, 3] if layer["x"] == -30 else None
    assert new_left is not None and (new_left == 255).all()


@pytest.mark.parametrize("mode", ["txt2img", "img2img"])
def test_classical_refuses_modes_that_need_a_diffusion_model(make_client, mode: str) -> None:
    from underpaint_protocol.client import DaemonError

    client, _ = make_client()
    with pytest.raises(DaemonError) as refused:
        client.plan({"mode": mode, "canvas": {"width": 64, "height": 64}}).result(timeout=5)
    assert refused.value.code == "unsupported_mode"
    assert refused.value.field == "job.mode"
    assert "diffusion model" in str(refused.value)


def test_plan_asks_only_for_the_context_crop(make_client) -> None:
    client, _ = make_client()
    job = {
        "mode": "inpaint",
        "canvas": {"width": 8192, "height": 8192},
        "selection": {"x": 4000, "y": 4000, "width": 256, "height": 256},
    }
    planned = client.plan(job).result(timeout=5)
    upload = Box(**planned["upload"])
    assert upload.contains(Box(4000, 4000, 256, 256))
    assert upload.area < 2048 * 2048  # far less than the 8k canvas


def test_paced_engine_reports_every_step_with_previews(make_client) -> None:
    client, events = make_client()
    job = inpaint_job(model="paced", steps=4, batch=2, seed=100)
    canvas = photo_like(200, 150)
    accepted = submit_job(client, job, canvas, rect_mask(200, 150, 40, 30, 37, 29))
    assert events.wait_outcome(accepted["job_id"]).type == "finished"
    progress = events.of(accepted["job_id"], "progress")
    assert [p.message["step"] for p in progress] == list(range(1, 9))
    assert all(p.message["total"] == 8 for p in progress)
    assert all(p.image is not None and p.image.width == 8 for p in progress)
    results = events.of(accepted["job_id"], "result")
    assert [r.message["params"]["seed"] for r in results] == [100, 101]
    kinds = [e.type for e in events.of(accepted["job_id"])]
    assert kinds.index("started") < kinds.index("progress") < kinds.index("result") < kinds.index("finished")


def test_previews_can_be_declined(make_client) -> None:
    client, events = make_client(previews=False)
    accepted = submit_job(
        client, inpaint_job(model="paced", steps=2), photo_like(200, 150), rect_mask(200, 150, 40, 30, 37, 29)
    )
    events.wait_outcome(accepted["job_id"])
    progress = events.of(accepted["job_id"], "progress")
    assert progress and all(
        (p.image is None and "preview" not in p.message) or p.message["preview"] is None for p in progress
    )


def test_bgra_results_match_rgba_results(make_client) -> None:
    """Krita stores BGRA: the same job delivered as bgra8 holds exactly the rgba8 pixels."""
    canvas = photo_like(200, 150)
    mask = rect_mask(200, 150, 40, 30, 37, 29)
    layers = []
    for image_format in ("rgba8", "bgra8"):
        client, events = make_client(result_format=image_format)
        accepted = submit_job(client, inpaint_job(seed=3), canvas, mask)
        events.wait_outcome(accepted["job_id"])
        (result,) = events.of(accepted["job_id"], "result")
        assert result.image is not None and result.image.format == image_format
        layers.append(layer_array(result))
    assert np.array_equal(layers[0], layers[1])
