"""The upscale, refine-upscale and restore jobs and checks that the local daemon's tests and the Ray
workers' tests share: one job, one expectation, whichever side runs the model passes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tests.daemon.conftest import Recorder, layer_array, photo_like
from tests.upscale.test_tiles import upscale
from underpaint.engines.upscale import SpandrelUpscaler
from underpaint_protocol.session import Event

REGION_UPSCALE = {
    "mode": "upscale",
    "model": "tiny-compact-x2",
    "canvas": {"width": 160, "height": 120},
    "selection": {"x": 21, "y": 10, "width": 75, "height": 61},
    "upscale": {"factor": 3.0, "tile": 64},
}
"""A region upscale with the compact model in tiles of 64 px: several tiles, a layer at (63, 30)."""
REGION_LAYER = {"x": 63, "y": 30, "width": 225, "height": 183}
"""Where ``REGION_UPSCALE``'s whole layer lands on the 3x canvas."""


def region_picture() -> np.ndarray:
    """The canvas ``REGION_UPSCALE`` is sent with."""
    return photo_like(160, 120, seed=5)


def model_region_upscale(picture: np.ndarray, compact: Path) -> np.ndarray:
    """``REGION_UPSCALE`` done here: the compact model's tiled upscale of the selected region."""
    box = REGION_UPSCALE["selection"]
    assert isinstance(box, dict)
    region = np.ascontiguousarray(picture[box["y"] : box["y"] + box["height"], box["x"] : box["x"] + box["width"]])
    expected, _ = upscale(region, SpandrelUpscaler(str(compact), "cpu"), 3.0, tile=64)
    return expected


def tiles_in_order(events: Recorder, job_id: str) -> tuple[list[Event], np.ndarray]:
    """A finished upscale's result events by index, and their tiles (horizontal bands) joined."""
    results = sorted(events.of(job_id, "result"), key=lambda r: r.message["index"])
    return results, np.concatenate([layer_array(r) for r in results])


def refine_upscale_job(upscaler: str) -> tuple[dict[str, Any], np.ndarray]:
    """A 4-step refine-upscale of a 96x64 canvas by 2 with ``upscaler``, and the canvas."""
    job = {
        "mode": "refine_upscale",
        "model": "tiny-random",
        "prompt": "a lighthouse",
        "steps": 4,
        "strength": 0.5,
        "seed": 9,
        "canvas": {"width": 96, "height": 64},
        "upscale": {"factor": 2.0, "model": upscaler},
    }
    return job, photo_like(96, 64, seed=3)


def restore_job(model: str | None) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """A restore of a 60 px square of a 200x160 canvas, the canvas and the mask; ``model`` None: the
    daemon's default."""
    job: dict[str, Any] = {
        "mode": "restore",
        "canvas": {"width": 200, "height": 160},
        "selection": {"x": 70, "y": 50, "width": 60, "height": 60},
    }
    if model is not None:
        job["model"] = model
    mask = np.zeros((160, 200), np.uint8)
    mask[50:110, 70:130] = 255
    return job, photo_like(200, 160, seed=7), mask


def alpha_on_canvas(result: Event, width: int, height: int) -> np.ndarray:
    """The result layer's alpha placed on the canvas: where it covers what is under it."""
    layer = layer_array(result)
    x, y = result.message["layer"]["x"], result.message["layer"]["y"]
    alpha = np.zeros((height, width), np.uint8)
    alpha[y : y + layer.shape[0], x : x + layer.shape[1]] = layer[..., 3]
    return alpha
