"""Host-independent job logic every plugin shares: which mode the user meant, and where results go.

A plugin reads the canvas size and the selection bounds from its host, calls :func:`build_job`, and
after a result calls :func:`placement` to learn how to grow the canvas and where the layer goes.
Everything else about masks and crops is decided by the daemon. Standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Bounds:
    """A rectangle in canvas pixels; x, y may be negative and the rectangle may leave the canvas."""

    x: int
    y: int
    width: int
    height: int

    def as_dict(self) -> dict[str, int]:
        return {"x": self.x, "y": self.y, "width": self.width, "height": self.height}

    def inside(self, width: int, height: int) -> bool:
        return self.x >= 0 and self.y >= 0 and self.x + self.width <= width and self.y + self.height <= height


def choose_mode(
    canvas_width: int,
    canvas_height: int,
    selection: Bounds | None,
    strength: float,
    extend: tuple[int, int, int, int] | None = None,
) -> str:
    """The mode the user meant, the same in every host.

    Expand extents or a selection reaching past the canvas outpaint; a selection inside inpaints;
    no selection refines the whole image below full strength and generates anew at full strength.
    """
    if extend is not None and any(extend):
        return "outpaint"
    if selection is not None and selection.width > 0 and selection.height > 0:
        return "inpaint" if selection.inside(canvas_width, canvas_height) else "outpaint"
    return "img2img" if strength < 1.0 else "txt2img"


def build_job(
    canvas_width: int,
    canvas_height: int,
    selection: Bounds | None,
    *,
    prompt: str = "",
    negative_prompt: str = "",
    strength: float | None = 1.0,
    seed: int | None = None,
    batch: int = 1,
    model: str | None = None,
    steps: int | None = None,
    guidance: float | None = None,
    extend: tuple[int, int, int, int] | None = None,
    mode: str | None = None,
    upscale: dict[str, Any] | None = None,
    style: str | None = None,
) -> dict[str, Any]:
    """The `job` object of a plan/submit message (see PROTOCOL.md); ``strength`` None: the daemon's default;
    ``upscale`` the ``job.upscale`` object of the upscale modes (``upscale.UpscaleRequest.as_dict``)."""
    chosen = mode or choose_mode(canvas_width, canvas_height, selection, 1.0 if strength is None else strength, extend)
    job: dict[str, Any] = {
        "mode": chosen,
        "prompt": prompt,
        "negative_prompt": negative_prompt,
        "batch": batch,
        "canvas": {"width": canvas_width, "height": canvas_height},
    }
    if strength is not None and (chosen != "txt2img" or strength < 1.0):
        job["strength"] = strength
    for key, value in (("seed", seed), ("model", model), ("steps", steps), ("guidance", guidance), ("style", style)):
        if value is not None:
            job[key] = value
    if selection is not None and selection.width > 0 and selection.height > 0:
        job["selection"] = selection.as_dict()
    if extend is not None and any(extend):
        left, top, right, bottom = extend
        job["extend"] = {"left": left, "top": top, "right": right, "bottom": bottom}
    if upscale is not None:
        job["upscale"] = upscale
    return job


@dataclass(frozen=True)
class Placement:
    """How to apply one result: grow the canvas (if ``grows``) then put the layer at (x, y)."""

    grows: bool
    new_width: int
    new_height: int
    offset_x: int
    """Where the old canvas's left edge lands in the grown canvas."""
    offset_y: int
    x: int
    """The layer's position in the (possibly grown) canvas."""
    y: int
    width: int
    height: int


def placement(result: dict[str, Any], canvas_width: int, canvas_height: int) -> Placement:
    """Turn a `result` message into canvas operations, for a canvas of the original size."""
    grown = result["canvas"]
    layer = result["layer"]
    grows = (grown["x"], grown["y"], grown["width"], grown["height"]) != (0, 0, canvas_width, canvas_height)
    return Placement(
        grows=grows,
        new_width=int(grown["width"]),
        new_height=int(grown["height"]),
        offset_x=-int(grown["x"]),
        offset_y=-int(grown["y"]),
        x=int(layer["x"]) - int(grown["x"]),
        y=int(layer["y"]) - int(grown["y"]),
        width=int(layer["width"]),
        height=int(layer["height"]),
    )
