"""The built-in `tiny-random` diffusion model served by a real daemon: the whole stack, no weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.daemon.conftest import layer_array, photo_like, submit_job
from tests.daemon.test_jobs import rect_mask


def test_welcome_lists_tiny_random_as_a_diffusion_model(diffusion_client) -> None:
    connected, _ = diffusion_client
    models = {m["id"]: m for m in connected.welcome["models"]}
    assert models["tiny-random"]["engine"] == "diffusion"
    assert set(models["tiny-random"]["modes"]) == {"txt2img", "img2img", "inpaint", "outpaint", "refine_upscale"}
    assert connected.welcome["default_model"] == "tiny-random"


def test_inpaint_on_tiny_random_through_the_daemon(diffusion_client) -> None:
    connected, events = diffusion_client
    canvas = photo_like(160, 120)
    job = {
        "mode": "inpaint",
        "prompt": "a lighthouse",
        "steps": 3,
        "seed": 11,
        "canvas": {"width": 160, "height": 120},
        "selection": {"x": 50, "y": 40, "width": 41, "height": 33},
    }
    accepted = submit_job(connected, job, canvas, rect_mask(160, 120, 50, 40, 41, 33))
    outcome = events.wait_outcome(accepted["job_id"], timeout=120)
    assert outcome.type == "finished", outcome.message
    progress = events.of(accepted["job_id"], "progress")
    assert [p.message["step"] for p in progress] == [1, 2, 3]
    assert all(p.image is not None for p in progress)  # a preview every step
    (result,) = events.of(accepted["job_id"], "result")
    pixels = layer_array(result)
    layer = result.message["layer"]
    assert layer["x"] <= 50 and layer["y"] <= 40
    assert layer["x"] + layer["width"] >= 91 and layer["y"] + layer["height"] >= 73
    inside = pixels[40 - layer["y"] : 73 - layer["y"], 50 - layer["x"] : 91 - layer["x"]]
    assert (inside[..., 3] == 255).all()
    engine_params = result.message["params"]["engine_params"]
    assert engine_params["steps_run"] == 3 and engine_params["device"] == "cpu"
    assert engine_params["model"] == "tiny-random"


def test_txt2img_and_cancel_on_tiny_random(diffusion_client) -> None:
    connected, events = diffusion_client
    job = {"mode": "txt2img", "prompt": "noise", "steps": 40, "canvas": {"width": 64, "height": 64}}
    accepted = submit_job(connected, job, None)
    events.wait_for(lambda: bool(events.of(accepted["job_id"], "progress")), timeout=120)
    connected.cancel(accepted["job_id"])
    assert events.wait_outcome(accepted["job_id"], timeout=60).type == "cancelled"
    assert not events.of(accepted["job_id"], "result")
    assert len(events.of(accepted["job_id"], "progress")) < 40
    quick = submit_job(connected, {**job, "steps": 2, "seed": 5}, None)
    assert events.wait_outcome(quick["job_id"], timeout=120).type == "finished"
    (result,) = events.of(quick["job_id"], "result")
    assert (result.message["layer"]["width"], result.message["layer"]["height"]) == (64, 64)
    assert np.all(layer_array(result)[..., 3] == 255)


def test_results_are_reproducible_from_their_params(diffusion_client, tmp_path: Path) -> None:
    connected, events = diffusion_client
    job = {
        "mode": "txt2img",
        "prompt": "same",
        "steps": 2,
        "seed": 99,
        "batch": 2,
        "canvas": {"width": 64, "height": 64},
    }
    first = submit_job(connected, job, None)
    events.wait_outcome(first["job_id"], timeout=120)
    second_item = events.of(first["job_id"], "result")[1]
    assert second_item.message["params"]["seed"] == 100
    again = submit_job(connected, {**job, "seed": 100, "batch": 1}, None)
    events.wait_outcome(again["job_id"], timeout=120)
    (single,) = events.of(again["job_id"], "result")
    assert np.array_equal(layer_array(single), layer_array(second_item))
