"""The canvas pipeline for live painting: masks once per session, then per frame only scale in and out.

``prepare_live`` does everything of ``pipeline.prepare_job`` / ``finish_job`` that does not depend on
the frame's pixels (the selection over the work crop, the denoise mask at model size, the composite
alpha and where the layer is trimmed), once per session. A frame then costs ``model_input`` (the
kept region scaled to model size) and ``live_layer`` (the model's output scaled back and cut with the
cached alpha). Live frames are not pre-filled (what the artist paints under the selection is the
model's starting point) and not colour-matched (a per-frame colour fit makes the picture flicker).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from underpaint.canvas.composite import PixelLayer
from underpaint.canvas.geometry import Box
from underpaint.canvas.masks import composite_mask, denoise_mask
from underpaint.canvas.pipeline import _model_image, _work_selection
from underpaint.canvas.plan import JobPlan
from underpaint.canvas.resize import resize_exact


@dataclass(frozen=True)
class LivePlan:
    """What every frame of a session shares (computed once by ``prepare_live``)."""

    plan: JobPlan
    denoise: np.ndarray
    """uint8 (model_height, model_width), 255 = the model may change it."""
    alpha: np.ndarray
    """uint8 composite alpha over ``trim`` (the layer's alpha, the same for every frame)."""
    trim: Box
    """The part of the work crop with non-zero alpha, in work-crop pixels: the layer's extent."""
    clear: np.ndarray | None
    """Where ``alpha`` is 0 (None when nowhere): the colour there is zeroed, as ``finish_job`` does."""


def selection_over_upload(plan: JobPlan, mask: np.ndarray | None) -> np.ndarray | None:
    """The soft selection sent over the selection's bounds, placed into the upload region (zero
    elsewhere: the selection rectangle is authoritative); None without a mask."""
    if mask is None or plan.selection is None:
        return None
    over = np.zeros((plan.upload.height, plan.upload.width), np.uint8)
    inside = plan.selection.intersect(plan.upload)
    over[inside.slices(plan.upload)] = mask[inside.slices(plan.selection)]
    return over


def prepare_live(plan: JobPlan, mask: np.ndarray | None) -> LivePlan:
    """The session's masks: ``mask`` is the soft selection over ``plan.upload`` (None: the rectangle)."""
    mw, mh = plan.model_width, plan.model_height
    selection = _work_selection(plan, mask)
    work = plan.work
    if selection is None:
        denoise = np.full((mh, mw), 255, np.uint8)
        alpha = np.full((work.height, work.width), 255, np.uint8)
    else:
        scale = (plan.scale_x + plan.scale_y) / 2
        denoise = denoise_mask(resize_exact(selection, mw, mh), plan.grow * scale, plan.feather * scale)
        alpha = composite_mask(selection, plan.blend)
    rows, cols = np.flatnonzero(alpha.any(axis=1)), np.flatnonzero(alpha.any(axis=0))
    if rows.size == 0:
        trim = Box(0, 0, 0, 0)
    else:
        trim = Box.from_edges(int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)
    cut = np.ascontiguousarray(alpha[trim.slices(Box(0, 0, work.width, work.height))])
    clear = cut == 0
    return LivePlan(plan, denoise, cut, trim, clear if clear.any() else None)


def model_input(live: LivePlan, region: np.ndarray) -> np.ndarray:
    """The kept region (RGBA over ``plan.upload``) as the model's RGB input at model size."""
    return _model_image(live.plan, region)[0]


def live_layer(live: LivePlan, generated: np.ndarray) -> PixelLayer:
    """The model's RGB output scaled back to the work crop and cut with the session's alpha."""
    plan, trim = live.plan, live.trim
    work = plan.work
    back = resize_exact(generated, work.width, work.height)
    pixels = cv2.cvtColor(back[trim.slices(Box(0, 0, work.width, work.height))], cv2.COLOR_RGB2RGBA)
    pixels[..., 3] = live.alpha
    if live.clear is not None:
        pixels[live.clear] = 0  # colour under alpha 0 carries nothing; keep it deterministic
    return PixelLayer(pixels, work.x + trim.x, work.y + trim.y, plan.new_canvas)
