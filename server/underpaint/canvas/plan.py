"""Deciding, before any pixel moves, which part of the canvas a job needs and at what model size."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

from underpaint.canvas.geometry import Box, Extents
from underpaint.errors import JobError
from underpaint.modes import Mode

FULL_STRENGTH = 0.99
"""Strength from which an inpaint ignores the selection's pixels, so they are pre-filled instead."""

PrefillMethod = Literal["auto", "telea", "navier_stokes", "edge", "blur", "learned", "none"]


@dataclass(frozen=True)
class ModelResolution:
    """The size rules of one engine's model."""

    pixel_budget: int
    """Native pixel count, e.g. 512 * 512 for SD1.5, 1024 * 1024 for SDXL."""
    multiple: int = 8
    """Every model-side length is a multiple of this (the VAE scale factor for latent models)."""
    min_side: int = 64
    max_side: int = 2048
    upscale_small: bool = True
    """Scale crops smaller than the budget up (diffusion) or keep them at 1:1 (classical fill)."""


@dataclass(frozen=True)
class BlendSettings:
    """Per-job overrides of the mask shaping; None means a default that scales with the selection."""

    grow: int | None = None
    feather: int | None = None
    blend: int | None = None
    colour_match: bool = True
    prefill: PrefillMethod = "auto"
    prefill_noise: float = 0.0


@dataclass(frozen=True)
class JobPlan:
    """Where a job reads and writes, all in the original canvas's coordinates."""

    mode: Mode
    canvas: Box
    """The original canvas, Box(0, 0, width, height)."""
    new_canvas: Box
    """The canvas after an outpaint grows it (x, y <= 0); equal to ``canvas`` otherwise."""
    selection: Box | None
    """Bounds of what may be regenerated; None when the whole work area is."""
    work: Box
    """The context crop the model sees; leaves the canvas only when outpainting."""
    upload: Box
    """``work`` clipped to the canvas: the only pixels the host sends (empty for txt2img)."""
    model_width: int
    model_height: int
    strength: float = 1.0
    """The job's denoising strength; decides context padding and whether the selection is pre-filled."""
    grow: int = 0
    """Resolved mask growth in work pixels (denoise mask is fully 255 this far beyond the selection)."""
    feather: int = 0
    """Resolved width in work pixels of the denoise mask's fall-off after ``grow``."""
    blend: int = 0
    """Resolved width in work pixels of the composite mask's fall-off outside the selection."""
    selected: Box | None = None
    """The host's selection rectangle clipped to the new canvas: what counts as fully selected when
    no mask is sent (for outpaint, ``selection`` is wider: it also bounds the new area)."""

    @property
    def scale_x(self) -> float:
        """Model pixels per work pixel horizontally."""
        return self.model_width / self.work.width

    @property
    def scale_y(self) -> float:
        """Model pixels per work pixel vertically."""
        return self.model_height / self.work.height

    @property
    def prefill_selection(self) -> bool:
        """Whether the selection's own pixels are replaced before generation (full-strength inpaint)."""
        return self.mode is Mode.INPAINT and self.strength >= FULL_STRENGTH


MAX_SIDE = 65536
"""Largest canvas side (before and after an outpaint), as the protocol allows."""
_MAX_MASK_SETTING = 4096
MIN_WORK_SIDE = 64
"""Smallest context crop side (where the canvas allows) for inpaint, img2img and outpaint."""


def plan_job(
    mode: Mode,
    canvas_width: int,
    canvas_height: int,
    selection: Box | None,
    extend: Extents | None,
    strength: float,
    resolution: ModelResolution,
    settings: BlendSettings,
) -> JobPlan:
    """Decide the work crop, upload region, new canvas and model size from bounds alone.

    Nothing here depends on the canvas size beyond clamping, so a job's cost follows its selection.
    Raises JobError("empty_selection" | "nothing_to_outpaint" | "invalid_value", ..., field).
    """
    mode = _check_mode(mode)
    width = _check_int(canvas_width, "job.canvas.width", 1, MAX_SIDE)
    height = _check_int(canvas_height, "job.canvas.height", 1, MAX_SIDE)
    strength = _check_strength(strength)
    _check_resolution(resolution)
    _check_settings(settings)
    canvas = Box(0, 0, width, height)
    if selection is not None:
        selection = _check_rect(selection, "job.selection")
        if selection.is_empty:
            raise JobError("empty_selection", "the selection is empty", "job.selection")
    if extend is not None:
        extend = _check_extents(extend)
        if mode is not Mode.OUTPAINT and not extend.is_zero:
            raise JobError("invalid_value", f"extents only apply to outpaint, not {mode.value}", "job.extend")

    if mode is Mode.OUTPAINT:
        new_canvas = canvas
        if extend is not None:
            new_canvas = canvas.pad(extend.left, extend.top, extend.right, extend.bottom)
        if selection is not None:
            new_canvas = new_canvas.union(selection)
        if new_canvas == canvas:
            raise JobError(
                "nothing_to_outpaint", "outpaint needs extents or a selection reaching past the canvas", "job.extend"
            )
        if new_canvas.width > MAX_SIDE or new_canvas.height > MAX_SIDE:
            raise JobError("invalid_value", f"the grown canvas would exceed {MAX_SIDE} pixels", "job.extend")
        target: Box | None = growth_bounds(canvas, new_canvas)
        if selection is not None:
            target = selection.union(target) if target is not None else selection
    else:
        new_canvas = canvas
        target = None
        if selection is not None:
            target = selection.intersect(canvas)
            if target.is_empty:
                raise JobError("empty_selection", "the selection lies outside the canvas", "job.selection")
        elif mode in (Mode.INPAINT, Mode.RESTORE):
            raise JobError("empty_selection", f"{mode.value} needs a selection", "job.selection")
    allowed = new_canvas

    grow = feather = blend = 0
    if target is None:
        work = canvas  # whole-canvas txt2img / img2img
    elif mode is Mode.TXT2IMG:
        work = target  # generate exactly in the rectangle; no pixels are read
    else:
        grow, feather, blend = resolve_blend(target, strength, settings)
        pad = context_padding(mode, target, strength, grow, feather)
        work = target.pad(pad, pad, pad, pad).intersect(allowed)
        # A few pixels of context are useless to a model: give tiny selections a minimum crop.
        xs = _grow_span(work.x, work.width, MIN_WORK_SIDE, allowed.x, allowed.right)
        ys = _grow_span(work.y, work.height, MIN_WORK_SIDE, allowed.y, allowed.bottom)
        work = Box(xs[0], ys[0], xs[1], ys[1])
    model_width, model_height = model_size(work.width, work.height, resolution)
    if target is not None and mode is not Mode.TXT2IMG:
        work = _match_aspect(work, allowed, model_width, model_height, resolution.multiple)
        model_width, model_height = model_size(work.width, work.height, resolution)
    upload = Box(0, 0, 0, 0) if mode is Mode.TXT2IMG else work.intersect(canvas)
    return JobPlan(
        mode=mode,
        canvas=canvas,
        new_canvas=new_canvas,
        selection=target,
        work=work,
        upload=upload,
        model_width=model_width,
        model_height=model_height,
        strength=strength,
        grow=grow,
        feather=feather,
        blend=blend,
        selected=None if selection is None else selection.intersect(new_canvas),
    )


def growth_bounds(canvas: Box, new_canvas: Box) -> Box | None:
    """Bounding box of ``new_canvas`` minus ``canvas``: everything an outpaint must invent."""
    strips = []
    if new_canvas.x < canvas.x:
        strips.append(Box.from_edges(new_canvas.x, new_canvas.y, canvas.x, new_canvas.bottom))
    if new_canvas.y < canvas.y:
        strips.append(Box.from_edges(new_canvas.x, new_canvas.y, new_canvas.right, canvas.y))
    if new_canvas.right > canvas.right:
        strips.append(Box.from_edges(canvas.right, new_canvas.y, new_canvas.right, new_canvas.bottom))
    if new_canvas.bottom > canvas.bottom:
        strips.append(Box.from_edges(new_canvas.x, canvas.bottom, new_canvas.right, new_canvas.bottom))
    if not strips:
        return None
    bounds = strips[0]
    for strip in strips[1:]:
        bounds = bounds.union(strip)
    return bounds


def _size_of(rect: Box) -> float:
    """Diagonal of the square with the rect's area: a strip's size is its thickness, not its length."""
    return math.sqrt(2.0 * rect.area)


def resolve_blend(target: Box, strength: float, settings: BlendSettings) -> tuple[int, int, int]:
    """(grow, feather, blend) in work pixels: per-job overrides, else defaults scaled to the selection.

    At a 256x256 selection and full strength these are krita-ai-diffusion's numbers (grow 4, feather
    ~10% of the diagonal, blend 25); tiny selections get transitions no wider than themselves, huge ones
    are capped so the crop stays mostly selection.
    """
    size = _size_of(target)
    avg = (target.width + target.height) / 2
    grow = settings.grow if settings.grow is not None else _clamp(round(0.012 * size), 2, 24)
    min_transition = min(32, max(4, round(avg)))
    feather = (
        settings.feather
        if settings.feather is not None
        else _clamp(round(0.10 * size * max(strength, 0.2)), min_transition, 256)
    )
    blend = (
        settings.blend
        if settings.blend is not None
        else _clamp(round(0.07 * size), min(25, max(3, round(avg / 2))), 128)
    )
    # The composite mask must stay where the model was free to repaint (denoise mask > 0).
    blend = min(blend, grow + feather)
    return grow, feather, blend


def context_padding(mode: Mode, target: Box, strength: float, grow: int, feather: int) -> int:
    """Pixels of context around the selection: room for the mask ramp, more at high strength.

    Below half strength the model only refines, so the mask bounds suffice; at full strength (and for
    outpaint) the model needs to see the surroundings: half the selection's average side, as
    krita-ai-diffusion does (at most its short side), but never from the canvas size, so cost
    follows the selection.
    """
    size = _size_of(target)
    avg = (target.width + target.height) / 2
    base = grow + feather + math.ceil(0.06 * size) + 2
    full = 1.0 if mode is Mode.OUTPAINT else _clamp01((strength - 0.5) / 0.5)
    # A long thin strip needs context about as deep as it is thick, not half its length.
    context = min(avg / 2, min(target.width, target.height))
    return max(base, round(full * context))


def model_size(width: int, height: int, resolution: ModelResolution) -> tuple[int, int]:
    """Scale a crop to the engine's pixel budget keeping aspect; each side a multiple, within bounds."""
    m = resolution.multiple
    lo = max(m, -(-resolution.min_side // m) * m)
    hi = max(lo, (resolution.max_side // m) * m)
    scale = math.sqrt(resolution.pixel_budget / (width * height))
    if not resolution.upscale_small:
        scale = min(scale, 1.0)
    fw, fh = width * scale, height * scale
    big = max(fw, fh)
    if big > hi:
        fw, fh = fw * hi / big, fh * hi / big
    small = min(fw, fh)
    if small < lo:  # only extreme aspect ratios get distorted, and only as far as the bounds force
        k = lo / small
        fw, fh = min(fw * k, hi), min(fh * k, hi)
    return _clamp(round(fw / m) * m, lo, hi), _clamp(round(fh / m) * m, lo, hi)


def _match_aspect(work: Box, allowed: Box, model_width: int, model_height: int, multiple: int) -> Box:
    """Grow the crop (never shrink) so it has the model's aspect: rounding goes into context, not distortion.

    Only the rounding to ``multiple`` is absorbed; a distortion forced by min/max side stays (growing
    the crop for it could multiply the upload).
    """
    scale = min(model_width / work.width, model_height / work.height)
    slack = math.ceil(multiple / scale) + 1
    want_w = min(max(work.width, round(model_width / scale)), work.width + slack)
    want_h = min(max(work.height, round(model_height / scale)), work.height + slack)
    left, top = (
        _grow_span(work.x, work.width, want_w, allowed.x, allowed.right),
        _grow_span(work.y, work.height, want_h, allowed.y, allowed.bottom),
    )
    return Box(left[0], top[0], left[1], top[1])


def _grow_span(start: int, length: int, want: int, lo: int, hi: int) -> tuple[int, int]:
    """Widen [start, start+length) to ``want`` around its centre, shifted to stay inside [lo, hi)."""
    want = min(want, hi - lo)
    if want <= length:
        return start, length
    new_start = start - (want - length) // 2
    new_start = max(lo, min(new_start, hi - want))
    return new_start, want


def _clamp(value: int, lo: int, hi: int) -> int:
    return max(lo, min(hi, value))


def _clamp01(value: float) -> float:
    return max(0.0, min(1.0, value))


def _check_mode(mode: object) -> Mode:
    try:
        return Mode(mode)
    except ValueError:
        raise JobError("invalid_value", f"unknown mode {mode!r}", "job.mode") from None


def _check_int(value: object, field: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise JobError("invalid_value", f"{field} must be an integer in [{lo}, {hi}], got {value!r}", field)
    return value


def _check_strength(strength: object) -> float:
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0.0 <= strength <= 1.0:
        raise JobError("invalid_value", f"strength must be in [0, 1], got {strength!r}", "job.strength")
    return float(strength)


def _check_rect(rect: object, field: str) -> Box:
    if not isinstance(rect, Box):
        raise JobError("invalid_value", f"{field} must be a rectangle", field)
    for name in ("x", "y"):
        _check_int(getattr(rect, name), f"{field}.{name}", -MAX_SIDE, 2 * MAX_SIDE)
    for name in ("width", "height"):
        _check_int(getattr(rect, name), f"{field}.{name}", 0, MAX_SIDE)
    return rect


def _check_extents(extend: object) -> Extents:
    if not isinstance(extend, Extents):
        raise JobError("invalid_value", "job.extend must be extents", "job.extend")
    for name in ("left", "top", "right", "bottom"):
        _check_int(getattr(extend, name), f"job.extend.{name}", 0, MAX_SIDE)
    return extend


def _check_resolution(resolution: ModelResolution) -> None:
    ok = (
        isinstance(resolution.pixel_budget, int)
        and resolution.pixel_budget > 0
        and isinstance(resolution.multiple, int)
        and 1 <= resolution.multiple <= 1024
        and 1 <= resolution.min_side <= resolution.max_side
        and resolution.max_side >= resolution.multiple
    )
    if not ok:
        raise JobError("invalid_value", f"engine resolution makes no sense: {resolution}", "resolution")


def _check_settings(settings: BlendSettings) -> None:
    for name in ("grow", "feather", "blend"):
        value = getattr(settings, name)
        if value is not None:
            _check_int(value, f"settings.{name}", 0, _MAX_MASK_SETTING)
    if settings.prefill not in get_args(PrefillMethod):
        raise JobError("invalid_value", f"unknown prefill {settings.prefill!r}", "settings.prefill")
    noise = settings.prefill_noise
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not 0.0 <= noise <= 1.0:
        raise JobError("invalid_value", "prefill_noise must be in [0, 1]", "settings.prefill_noise")
