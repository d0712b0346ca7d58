"""What every host panel shows the same way: units, seeds, model names, ignored fields, thumbnails.

Pure functions over protocol values, so the Krita docker, the GIMP panel and the Figma sidebar name
and convert things identically. Standard library only; Python 3.10+.
"""

from __future__ import annotations

from typing import Any

from underpaint_protocol.session import ImageData

SEED_MAX = 2**32 - 1
"""The daemon's seeds are unsigned 32-bit: hosts must not clamp at 2^31-1."""

FIELDS = ("prompt", "negative_prompt", "strength", "steps", "guidance", "seed")
"""The request fields a panel may disable when the chosen model ignores them."""

NON_GENERATIVE_ENGINES = ("classical", "echo")
"""Engines that fill from the image alone: prompt, strength, steps, guidance and seed change nothing."""

_GENERATIVE_ONLY = ("prompt", "negative_prompt", "strength", "steps", "guidance", "seed")


def strength_percent(strength: float) -> int:
    """The protocol's 0-1 strength as the 0-100 % every panel shows."""
    return max(0, min(100, round(float(strength) * 100)))


def strength_fraction(percent: float) -> float:
    """A panel's 0-100 % back to the protocol's 0-1."""
    return max(0.0, min(1.0, float(percent) / 100.0))


def seed_problem(seed: int | None) -> str | None:
    """Why ``seed`` cannot be sent (None: it can; None as seed means "random")."""
    if seed is None or 0 <= seed <= SEED_MAX:
        return None
    return f"Seed must be between 0 and {SEED_MAX}, or random."


def parse_seed(text: str) -> int | None:
    """A seed field's text: empty or "random" -> None (the daemon picks); raises ValueError with why."""
    cleaned = text.strip().lower()
    if cleaned in ("", "random"):
        return None
    try:
        seed = int(cleaned)
    except ValueError:
        raise ValueError(f"Seed must be a whole number between 0 and {SEED_MAX}, or random.") from None
    problem = seed_problem(seed)
    if problem is not None:
        raise ValueError(problem)
    return seed


def steps_label(steps: int | None, model: dict[str, Any] | None) -> str:
    """Steps as shown: a number, or "model default (N)"."""
    if steps:
        return str(steps)
    default = int(model.get("default_steps", 0)) if model else 0
    return f"model default ({default})" if default else "model default"


def model_label(model: dict[str, Any]) -> str:
    """A model's name in a list: its id, plus its engine when that says more (never "classical (classical)")."""
    model_id, engine = str(model.get("id", "")), str(model.get("engine", ""))
    if not engine or engine == model_id or engine in model_id:
        return model_id
    return f"{model_id} ({engine})"


def ignored_fields(model: dict[str, Any] | None) -> dict[str, str]:
    """The request fields ``model`` ignores, each with the hint a panel shows on the disabled field.

    A model of a non-generative engine (classical fill, echo) takes nothing but the pixels and the
    selection."""
    if not model or model.get("engine") not in NON_GENERATIVE_ENGINES:
        return {}
    why = f"{model.get('id')} ignores this: {model.get('description') or 'it fills from the surroundings'}."
    return {name: why for name in _GENERATIVE_ONLY}


def ignored_summary(model: dict[str, Any] | None) -> str:
    """One line for the panel when fields are off: which, and why ('' when the model uses them all)."""
    if not ignored_fields(model):
        return ""
    assert model is not None
    why = str(model.get("description") or "it fills from the surroundings").rstrip(".")
    return f"{model.get('id')} does not use prompt, strength, steps or seed: {why}."


def elapsed_text(seconds: float) -> str:
    """Elapsed time as a panel shows it: "7 s", "1:05", "1:02:03"."""
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}:{secs:02d}"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def thumbnail_samples(width: int, height: int, longest: int = 96) -> tuple[list[int], list[int]]:
    """The source columns and rows (nearest pixel) a ``width`` x ``height`` image's thumbnail takes, so
    that a thumbnail made tile by tile (``upscale.TileThumbnail``) is exactly ``thumbnail``'s."""
    scale = max(1.0, max(width, height) / max(1, longest))
    columns = [min(width - 1, int(x * scale)) for x in range(max(1, int(width / scale)))]
    rows = [min(height - 1, int(y * scale)) for y in range(max(1, int(height / scale)))]
    return columns, rows


def thumbnail(image: ImageData, longest: int = 96) -> ImageData:
    """``image`` scaled down (nearest pixel) so its longest side is at most ``longest``; same format.

    History lists draw many of these; a daemon result can be 8k pixels wide."""
    if max(image.width, image.height) <= longest:
        return image
    channels = 1 if image.format == "gray8" else 4
    columns, rows = thumbnail_samples(image.width, image.height, longest)
    source = memoryview(image.data).cast("B")  # a view: a 16 MP result is 64 MiB, never copied here
    row_bytes = image.width * channels
    out = bytearray(len(columns) * len(rows) * channels)
    at = 0
    for y in rows:
        row = y * row_bytes
        for x in columns:
            out[at : at + channels] = source[row + x * channels : row + x * channels + channels]
            at += channels
    return ImageData(image.format, len(columns), len(rows), bytes(out))
