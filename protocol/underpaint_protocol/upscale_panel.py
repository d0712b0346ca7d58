"""What every panel shows alike for Upscale, Refine-upscale and Restore: the labels and rows, which
models each action lists, the fields' ranges and defaults, and the request each button sends.

The Krita docker, the GIMP panel and procedures use it; the Figma sidebar mirrors it in
``src/ui/upscale.ts`` (its vitest reads this file's labels). Standard library only; Python 3.10+.
"""

from __future__ import annotations

from typing import Any

from underpaint_protocol.controller import Request
from underpaint_protocol.panel import strength_fraction
from underpaint_protocol.upscale import UpscaleRequest

ACTIONS = {"upscale": "Upscale", "refine_upscale": "Refine-upscale", "restore": "Restore"}
"""Button label of each action (its protocol mode as key)."""
LABELS = {
    "section": "Upscale and restore",
    "factor": "Factor",
    "upscaler": "Upscaler",
    "refiner": "Refine with",
    "strength": "Strength",
    "steps": "Steps",
    "prompt": "Prompt",
    "restorer": "Restorer",
}
TIPS = {
    "upscale": "Scale the image (or the selection's region) by the factor; the result lands as a new layer "
    "over the scaled image",
    "refine_upscale": "Upscale, then repaint lightly tile by tile with the prompt (hires fix)",
    "restore": "Restore the faces in the selection",
    "factor": "How many times larger: 2, 3, 4 or any number up to 16",
    "strength": "How much the refine pass repaints: low keeps the upscale, 100% paints anew",
    "steps": "Diffusion steps of the refine pass (the strength runs that share of them); 0: the model's default",
}
PLACEHOLDERS = {"prompt": "prompt for every tile", "steps": "model default"}
"""What an empty prompt field and a steps field at 0 show, where the toolkit can."""
FACTOR_MIN, FACTOR_MAX, FACTOR_DEFAULT = 1.0, 16.0, 2.0
"""The protocol's bounds for ``job.upscale.factor``."""
FACTOR_STEP, FACTOR_DECIMALS = 0.5, 2
REFINE_STRENGTH_DEFAULT = 30
"""Percent: a hires-fix pass keeps most of the upscale."""
STRENGTH_MIN, STRENGTH_MAX = 1, 100
"""The refine strength field's percent range (0 would repaint nothing)."""
STEPS_MAX = 150
"""The refine steps field's top; 0, its default, leaves the steps to the model."""
MODEL_MODES = {"upscaler": "upscale", "refiner": "refine_upscale", "restorer": "restore"}
"""Which mode a model must list in ``welcome`` to appear in each of the panel's model lists."""
ROLES = tuple(MODEL_MODES)
"""The panel's model lists."""
ACTION_ROLE = {mode: role for role, mode in MODEL_MODES.items()}
"""The model list each button runs with: it is enabled while that list has a model."""
ROWS = (
    "factor",
    "upscaler",
    "upscale",
    "refiner",
    "strength",
    "steps",
    "prompt",
    "refine_upscale",
    "restorer",
    "restore",
)
"""The section top to bottom: a field captioned ``LABELS[key]``, or (an ``ACTIONS`` key) a button as wide
as the section."""


def models_for(models: list[dict[str, Any]], role: str) -> list[dict[str, Any]]:
    """The models a panel lists as ``role`` ("upscaler", "refiner", "restorer"), in welcome's order."""
    mode = MODEL_MODES[role]
    return [model for model in models if mode in (model.get("modes") or ())]


def upscale_request(
    action: str,
    *,
    factor: float = FACTOR_DEFAULT,
    upscaler: str | None = None,
    refiner: str | None = None,
    restorer: str | None = None,
    strength_percent: float = REFINE_STRENGTH_DEFAULT,
    prompt: str = "",
    seed: int | None = None,
    steps: int | None = None,
) -> Request:
    """The controller request of one button. None models (and ``steps`` None or 0): the daemon's default."""
    if action == "upscale":
        return Request(mode="upscale", model=upscaler or None, strength=None, upscale=UpscaleRequest(factor))
    if action == "refine_upscale":
        return Request(
            mode="refine_upscale",
            model=refiner or None,
            prompt=prompt,
            strength=strength_fraction(strength_percent),
            seed=seed,
            steps=steps or None,
            upscale=UpscaleRequest(factor, model=upscaler or None),
        )
    if action == "restore":
        return Request(mode="restore", model=restorer or None, strength=None)
    raise ValueError(f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}")
