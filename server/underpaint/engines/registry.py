"""Which engines a daemon runs, from the command line's --engine, --model and --device."""

from __future__ import annotations

from pathlib import Path

from underpaint.engines.base import Engine
from underpaint.engines.classical import CLASSICAL_MODEL, ClassicalEngine
from underpaint.engines.echo import ECHO_MODEL, EchoEngine

ENGINE_NAMES = ("classical", "diffusion", "echo")


def build_engines(engine: str, models: list[str], models_dirs: list[Path], device: str) -> tuple[list[Engine], str]:
    """The engines to serve and the default model id.

    The classical engine is always there (content-aware fill works on every machine); the
    diffusion engine joins when asked for or when models are named; ``echo`` is for diagnostics.
    """
    engines: list[Engine] = [ClassicalEngine()]
    default_model = CLASSICAL_MODEL
    if engine == "echo":
        engines.append(EchoEngine())
        default_model = ECHO_MODEL
    if engine == "diffusion" or models:
        from underpaint.engines.diffusion import DiffusionEngine  # torch is imported only when needed

        diffusion = DiffusionEngine(sources=models or ["tiny-random"], models_dirs=models_dirs, device=device)
        engines.append(diffusion)
        if engine == "diffusion" or (engine == "classical" and models):
            default_model = diffusion.models()[0].id
    return engines, default_model
