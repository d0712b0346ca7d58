"""prepare_job / finish_job: pixels in (the upload region) and out (a trimmed RGBA layer).

Everything heavy happens at model resolution or on the work crop; nothing ever touches the rest of
the canvas, so cost follows the selection.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from underpaint.canvas.colour import apply_lut, fit_colour_lut
from underpaint.canvas.composite import PixelLayer, over
from underpaint.canvas.fill import prefill
from underpaint.canvas.geometry import Box
from underpaint.canvas.masks import composite_mask, denoise_mask, distance_to
from underpaint.canvas.plan import BlendSettings, JobPlan
from underpaint.canvas.resize import resize_exact
from underpaint.errors import JobError
from underpaint.modes import Mode


@dataclass(frozen=True)
class PreparedJob:
    """What an engine needs (``image``, ``denoise_mask`` at model size) and what finish needs."""

    plan: JobPlan
    image: np.ndarray
    """RGB uint8 (model_height, model_width, 3), pre-filled where the model must invent."""
    denoise_mask: np.ndarray
    """uint8 (model_height, model_width), 255 = regenerate."""
    settings: BlendSettings
    seed: int = 0
    selection: np.ndarray | None = field(default=None, repr=False)
    """uint8 work-size soft selection (outpaint growth = 255); None = the whole work crop."""
    original: np.ndarray | None = field(default=None, repr=False)
    """The host's upload (RGBA uint8, plan.upload's size); kept by reference, not copied."""


def _check_image(upload: np.ndarray | None, rect: Box) -> np.ndarray:
    want = (rect.height, rect.width)
    if not isinstance(upload, np.ndarray) or upload.dtype != np.uint8 or upload.ndim != 3:
        raise JobError("size_mismatch", f"image must be uint8 RGBA of {want[1]}x{want[0]}", "image")
    if upload.shape[:2] != want or upload.shape[2] not in (3, 4):
        raise JobError(
            "size_mismatch",
            f"image is {upload.shape[1]}x{upload.shape[0]}, the upload region {want[1]}x{want[0]}",
            "image",
        )
    return upload


def _check_mask(mask: np.ndarray, rect: Box) -> np.ndarray:
    if isinstance(mask, np.ndarray) and mask.ndim == 3 and mask.shape[2] == 1:
        mask = mask[..., 0]
    if not isinstance(mask, np.ndarray) or mask.dtype != np.uint8 or mask.shape != (rect.height, rect.width):
        shape = getattr(mask, "shape", None)
        raise JobError("size_mismatch", f"mask must be uint8 {rect.width}x{rect.height}, got {shape}", "mask")
    return mask


def _work_selection(plan: JobPlan, mask: np.ndarray | None) -> np.ndarray | None:
    """The soft selection over the work crop, or None when the whole crop is regenerated."""
    work = plan.work
    if plan.mode is Mode.TXT2IMG or (plan.mode is Mode.IMG2IMG and plan.selection is None):
        return None
    if plan.mode is Mode.OUTPAINT:
        sel = np.full((work.height, work.width), 255, np.uint8)  # everything outside the canvas is new
        inside = sel[plan.upload.slices(work)]
        if mask is not None:
            inside[...] = mask
        else:
            inside[...] = 0
            if plan.selected is not None:
                part = plan.selected.intersect(plan.upload)
                if not part.is_empty:
                    inside[part.slices(plan.upload)] = 255
        return sel
    sel = np.zeros((work.height, work.width), np.uint8)
    assert plan.selection is not None
    bounds = plan.selection.intersect(plan.upload)
    if mask is not None:
        # The selection rectangle is authoritative: mask pixels outside it are ignored.
        sel[bounds.slices(work)] = mask[bounds.slices(plan.upload)]
        if not sel.any():
            raise JobError("empty_selection", "the selection mask selects nothing", "mask")
    else:
        sel[bounds.slices(work)] = 255
    return sel


def _model_image(plan: JobPlan, upload: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """The work crop at model size (RGB) and, for outpaint, which model pixels are fully known."""
    mw, mh = plan.model_width, plan.model_height
    known: np.ndarray | None = None
    if plan.upload == plan.work:
        small = resize_exact(upload, mw, mh)
    else:
        crop = np.zeros((plan.work.height, plan.work.width, upload.shape[2]), np.uint8)
        crop[plan.upload.slices(plan.work)] = upload
        small = resize_exact(crop, mw, mh)
        inside = np.zeros((plan.work.height, plan.work.width), np.uint8)
        inside[plan.upload.slices(plan.work)] = 255
        known = resize_exact(inside, mw, mh) == 255
    # cvtColor drops alpha ~10x faster than a strided numpy copy (a live frame pays this every time)
    rgb = cv2.cvtColor(small, cv2.COLOR_RGBA2RGB) if small.shape[2] == 4 else np.ascontiguousarray(small)
    if small.shape[2] == 4:
        alpha = small[..., 3]
        if alpha.min() != 255:
            # Transparent canvas areas show as mid grey to the model (approximate: done at model size).
            a = alpha.astype(np.float32)[..., None] / 255.0
            rgb = np.rint(rgb * a + 128.0 * (1.0 - a)).astype(np.uint8)
    return rgb, known


def prepare_job(
    plan: JobPlan,
    upload_rgba: np.ndarray | None,
    selection_mask: np.ndarray | None,
    settings: BlendSettings,
    seed: int = 0,
) -> PreparedJob:
    """Build the engine's input from the host's upload and soft selection (see module docstring)."""
    mw, mh = plan.model_width, plan.model_height
    if plan.mode is Mode.TXT2IMG:
        image = np.full((mh, mw, 3), 128, np.uint8)
        full = np.full((mh, mw), 255, np.uint8)
        return PreparedJob(plan, image, full, settings, seed)
    upload = _check_image(upload_rgba, plan.upload)
    mask = _check_mask(selection_mask, plan.upload) if selection_mask is not None else None
    sel = _work_selection(plan, mask)
    image, known = _model_image(plan, upload)
    if sel is None:
        denoise = np.full((mh, mw), 255, np.uint8)
        return PreparedJob(plan, image, denoise, settings, seed, None, upload)
    scale = (plan.scale_x + plan.scale_y) / 2
    sel_model = resize_exact(sel, mw, mh)
    denoise = denoise_mask(sel_model, plan.grow * scale, plan.feather * scale)
    unknown = np.zeros((mh, mw), bool) if known is None else ~known
    if plan.prefill_selection:
        # Two pixels more: bicubic upscaling spreads the selection's colours that far.
        unknown |= cv2.dilate((sel_model > 0).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        denoise[unknown] = 255
    if unknown.any():
        image = prefill(image, unknown, settings.prefill, plan.mode is Mode.OUTPAINT, settings.prefill_noise, seed)
    return PreparedJob(plan, image, denoise, settings, seed, sel, upload)


def _finish(
    prepared: PreparedJob, generated_rgb: np.ndarray, with_composite: bool
) -> tuple[PixelLayer, np.ndarray | None]:
    plan = prepared.plan
    work = plan.work
    want = (plan.model_height, plan.model_width, 3)
    if not isinstance(generated_rgb, np.ndarray) or generated_rgb.dtype != np.uint8 or generated_rgb.shape != want:
        shape = getattr(generated_rgb, "shape", None)
        raise JobError("size_mismatch", f"generated image must be uint8 {want}, got {shape}", "image")
    gen = np.ascontiguousarray(resize_exact(generated_rgb, work.width, work.height))
    sel = prepared.selection
    original = prepared.original
    if sel is None:
        alpha = np.full((work.height, work.width), 255, np.uint8)
    else:
        alpha = composite_mask(sel, plan.blend)
        if prepared.settings.colour_match and original is not None and not plan.upload.is_empty:
            gen = _colour_match(plan, gen, original, sel)
    rows = np.flatnonzero(alpha.any(axis=1))
    cols = np.flatnonzero(alpha.any(axis=0))
    if rows.size == 0:
        layer = PixelLayer(np.zeros((0, 0, 4), np.uint8), work.x, work.y, plan.new_canvas)
    else:
        y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        pixels = np.empty((y1 - y0, x1 - x0, 4), np.uint8)
        pixels[..., :3] = gen[y0:y1, x0:x1]
        pixels[..., 3] = alpha[y0:y1, x0:x1]
        pixels[pixels[..., 3] == 0] = 0  # colour under alpha 0 carries nothing; keep it deterministic
        layer = PixelLayer(pixels, work.x + x0, work.y + y0, plan.new_canvas)
    if not with_composite:
        return layer, None
    base = np.zeros((work.height, work.width, 4), np.uint8)
    if original is not None and not plan.upload.is_empty:
        region = base[plan.upload.slices(work)]
        region[..., :3] = original[..., :3]
        region[..., 3] = original[..., 3] if original.shape[2] == 4 else 255
    return layer, over(gen, alpha, base)


def _colour_match(plan: JobPlan, gen: np.ndarray, original: np.ndarray, sel: np.ndarray) -> np.ndarray:
    """Fit the generated crop's colours to the original where the model had (nearly) no freedom:
    beyond the denoise mask if there is enough of it, else beyond the blend band, else anywhere
    outside the selection."""
    up = plan.upload.slices(plan.work)
    distance = distance_to(sel > 0)[up]
    opaque = original[..., 3] == 255 if original.shape[2] == 4 else np.ones(distance.shape, bool)
    gen_up = gen[up]
    rgb = original[..., :3]
    for limit in (plan.grow + plan.feather, plan.blend, 0):
        reference = (distance > limit) & opaque
        if np.count_nonzero(reference) >= 256:
            lut = fit_colour_lut(gen_up, rgb, reference)
            return gen if lut is None else apply_lut(gen, lut)
    return gen


def finish_job(prepared: PreparedJob, generated_rgb: np.ndarray) -> PixelLayer:
    """Scale the engine's output back to the exact work crop, colour-match, and cut the layer."""
    return _finish(prepared, generated_rgb, with_composite=False)[0]


def finish_job_with_composite(prepared: PreparedJob, generated_rgb: np.ndarray) -> tuple[PixelLayer, np.ndarray]:
    """finish_job plus the pipeline's own composite over the work crop (RGBA, transparent outside the
    original canvas), for tests and clients that want to check the layer reproduces it."""
    layer, composite = _finish(prepared, generated_rgb, with_composite=True)
    assert composite is not None
    return layer, composite
