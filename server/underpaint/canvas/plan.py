"""Deciding, before any pixel moves, which part of the canvas a job needs and at what model size."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from underpaint.canvas.geometry import Extents, Rect
from underpaint.modes import Mode

PrefillMethod = Literal["auto", "telea", "navier_stokes", "edge", "blur", "none"]


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
    canvas: Rect
    """The original canvas, Rect(0, 0, width, height)."""
    new_canvas: Rect
    """The canvas after an outpaint grows it (x, y <= 0); equal to ``canvas`` otherwise."""
    selection: Rect | None
    """Bounds of what may be regenerated; None when the whole work area is."""
    work: Rect
    """The context crop the model sees; leaves the canvas only when outpainting."""
    upload: Rect
    """``work`` clipped to the canvas: the only pixels the host sends (empty for txt2img)."""
    model_width: int
    model_height: int
