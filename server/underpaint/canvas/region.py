"""Which pixels a segment job needs: the region around what the user gave, decided from bounds alone.

A box or a rough selection gets context around it (a refine needs background to tell the object
from); clicked points and phrases get the whole image when it is small, else a window snapped to a
grid, so that further clicks on the same picture plan the same region and reuse its cached image
embedding.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from underpaint.canvas.geometry import Box
from underpaint.canvas.plan import JobPlan
from underpaint.errors import JobError
from underpaint.modes import Mode

CONTEXT = 0.25
"""Context on each side of a box or rough selection, as a fraction of its longer side."""
MIN_CONTEXT = 16
WHOLE_IMAGE_PIXELS = 2048 * 2048
"""Points and phrases see the whole canvas up to this size; larger canvases a window of ``WINDOW``."""
WINDOW = 2048
GRID = 512
MODEL_SIDE = 1024
"""Longest side the segment engines work at (SAM's input size); the mask is scaled back exactly."""


@dataclass(frozen=True)
class SegmentInputs:
    """A segment job's prompts in canvas coordinates, already checked for shape by the protocol."""

    box: Box | None
    points: tuple[tuple[int, int], ...]
    negative_points: tuple[tuple[int, int], ...]
    text: str | None
    rough: Box | None
    """Bounds of the rough selection the host uploads as the mask (``job.selection``)."""


def plan_segment(canvas_width: int, canvas_height: int, inputs: SegmentInputs) -> JobPlan:
    """The region to upload and segment; raises JobError naming the field of an input that cannot be used."""
    canvas = Box(0, 0, canvas_width, canvas_height)
    _check(canvas, inputs)
    anchors = [b for b in (inputs.box, inputs.rough) if b is not None]
    points = inputs.points + inputs.negative_points
    if anchors:
        bounds = _union([*anchors, *(Box(x, y, 1, 1) for x, y in points)])
        pad = max(MIN_CONTEXT, round(CONTEXT * max(bounds.width, bounds.height)))
        region = Box(bounds.x - pad, bounds.y - pad, bounds.width + 2 * pad, bounds.height + 2 * pad).intersect(canvas)
    elif canvas.area <= WHOLE_IMAGE_PIXELS or not points:
        region = canvas
    else:
        region = _window(canvas, _union([Box(x, y, 1, 1) for x, y in points]))
    scale = min(1.0, MODEL_SIDE / max(region.width, region.height))
    return JobPlan(
        mode=Mode.SEGMENT,
        canvas=canvas,
        new_canvas=canvas,
        selection=inputs.rough,
        work=region,
        upload=region,
        model_width=max(1, round(region.width * scale)),
        model_height=max(1, round(region.height * scale)),
        selected=inputs.rough,
    )


def _check(canvas: Box, inputs: SegmentInputs) -> None:
    if inputs.box is None and not inputs.points and inputs.text is None and inputs.rough is None:
        raise JobError(
            "invalid_value",
            "a segment job needs a box, points, a rough selection (job.selection + mask) or a text phrase",
            "job.segment",
        )
    if inputs.box is not None:
        if inputs.box.is_empty:
            raise JobError("empty_selection", "the box is empty (zero width or height)", "job.segment.box")
        if inputs.box.intersect(canvas).is_empty:
            raise JobError("invalid_value", "the box lies outside the image", "job.segment.box")
    for name, points in (("points", inputs.points), ("negative_points", inputs.negative_points)):
        for index, (x, y) in enumerate(points):
            if not (0 <= x < canvas.width and 0 <= y < canvas.height):
                raise JobError(
                    "invalid_value",
                    f"point ({x}, {y}) is outside the {canvas.width}x{canvas.height} image",
                    f"job.segment.{name}.{index}",
                )
    if inputs.negative_points and not (inputs.points or inputs.box or inputs.rough or inputs.text is not None):
        raise JobError(
            "invalid_value", "negative points only say what is not wanted: add a box or a point", "job.segment.points"
        )
    if inputs.text is not None and not inputs.text.strip():
        raise JobError("invalid_value", "the phrase is empty: say what to select", "job.segment.text")
    if inputs.rough is not None and inputs.rough.intersect(canvas).is_empty:
        raise JobError("empty_selection", "the selection to refine lies outside the image", "job.selection")


def _union(boxes: list[Box]) -> Box:
    return functools.reduce(Box.union, boxes)


def _window(canvas: Box, points: Box) -> Box:
    """A WINDOW-sided square (or larger, to hold every point) on a GRID, inside the canvas."""
    width = min(canvas.width, max(WINDOW, -(-points.width // GRID + 1) * GRID))
    height = min(canvas.height, max(WINDOW, -(-points.height // GRID + 1) * GRID))
    centre_x, centre_y = points.x + points.width // 2, points.y + points.height // 2
    x = min(max(0, round((centre_x - width / 2) / GRID) * GRID), canvas.width - width)
    y = min(max(0, round((centre_y - height / 2) / GRID) * GRID), canvas.height - height)
    return Box(x, y, width, height)
