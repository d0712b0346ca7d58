"""What every panel shows alike for Upscale, Refine-upscale and Restore: the labels, which models each
action lists, the factor's range, the refine strength's default, and the request each button sends.

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
FACTOR_MIN, FACTOR_MAX, FACTOR_DEFAULT = 1.0, 16.0, 2.0
"""The protocol's bounds for ``job.upscale.factor``."""
REFINE_STRENGTH_DEFAULT = 30
"""Percent: a hires-fix pass keeps most of the upscale."""
MODEL_MODES = {"upscaler": "upscale", "refiner": "refine_upscale", "restorer": "restore"}
"""Which mode a model must list in ``welcome`` to appear in each of the panel's model lists."""


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
