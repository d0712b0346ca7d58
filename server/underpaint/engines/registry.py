"""Which engines a daemon runs, from the command line's --engine, --model and --device."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from underpaint.canvas.fill import use_learned_fill
from underpaint.engines.base import Engine
from underpaint.engines.classical import CLASSICAL_MODEL, ClassicalEngine
from underpaint.engines.echo import ECHO_MODEL, EchoEngine

#: Model sources naming a learned fill model (engines.erase; the rest is its path).
SCHEME = "erase:"

ENGINE_NAMES = ("classical", "diffusion", "echo")


def build_engines(
    engine: str, models: list[str], models_dirs: list[Path], device: str, guides: dict[str, Any] | None = None
) -> tuple[list[Engine], str]:
    """The engines to serve and the default model id.

    The classical engine is always there (content-aware fill works on every machine); learned fill
    models join when named as ``erase:PATH[#allow_research]`` (they also become the ``learned``
    pre-fill); the diffusion engine joins when asked for or when other models are named; ``echo`` is
    for diagnostics. ``guides``: the diffusion engine's ``controls``, ``adapters`` and ``depth_model``.
    """
    engines: list[Engine] = [ClassicalEngine()]
    default_model = CLASSICAL_MODEL
    if engine == "echo":
        engines.append(EchoEngine())
        default_model = ECHO_MODEL
    erase_sources = [m for m in models if m.startswith(SCHEME)]
    models = [m for m in models if not m.startswith(SCHEME)]
    if erase_sources:
        from underpaint.engines.erase import LearnedFillEngine  # torch and spandrel only when asked for

        erase = LearnedFillEngine([m.removeprefix(SCHEME) for m in erase_sources], device)
        engines.append(erase)
        use_learned_fill(erase.prefill)
        if engine == "classical" and not models:
            default_model = erase.models()[0].id
    if engine == "diffusion" or models:
        from underpaint.engines.diffusion import DiffusionEngine  # torch is imported only when needed

        diffusion = DiffusionEngine(
            sources=models or ["tiny-random"], models_dirs=models_dirs, device=device, **(guides or {})
        )
        engines.append(diffusion)
        if engine == "diffusion" or (engine == "classical" and models):
            default_model = diffusion.models()[0].id
    return engines, default_model
