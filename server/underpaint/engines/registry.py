"""Which engines a daemon runs, from the command line's --engine, --model and --device."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from underpaint.canvas.fill import use_learned_fill
from underpaint.engines.base import Engine
from underpaint.engines.classical import CLASSICAL_MODEL, ClassicalEngine
from underpaint.engines.echo import ECHO_MODEL, EchoEngine
from underpaint.engines.segment.classical import RefineEngine
from underpaint.engines.upscale import UpscaleEngine

#: Model sources naming a learned fill model (engines.erase; the rest is its path).
SCHEME = "erase:"
#: Model sources naming a super-resolution model (engines.upscale) and a face restoration model
#: (engines.restore): ``upscale:PATH[#allow_research]``, ``restore:PATH[#allow_research]``.
UPSCALE_SCHEME = "upscale:"
RESTORE_SCHEME = "restore:"
WEIGHT_SCHEMES = (SCHEME, UPSCALE_SCHEME, RESTORE_SCHEME)
"""Model sources naming one weights file of a spandrel model, not a diffusion model."""

ENGINE_NAMES = ("classical", "diffusion", "echo")


def build_engines(
    engine: str,
    models: list[str],
    models_dirs: list[Path],
    device: str,
    segment_models: list[str] | None = None,
    guides: dict[str, Any] | None = None,
) -> tuple[list[Engine], str]:
    """The engines to serve and the default model id.

    The classical engine and the classical upscaler are always there (content-aware fill and
    resampling work on every machine); super-resolution and face restoration models join when named
    as ``upscale:PATH`` and ``restore:PATH``; learned fill
    models join when named as ``erase:PATH[#allow_research]`` (they also become the ``learned``
    pre-fill); the diffusion engine joins when asked for or when other models are named; ``echo`` is
    for diagnostics. ``refine`` (GrabCut) always selects objects; ``segment_models`` (SAM, SAM 2,
    CLIPSeg, ``CLIPSEG+SAM`` pairs, the tiny ones) join it. ``guides``: the diffusion engine's
    ``controls``, ``adapters``, ``depth_model`` and ``live_decoders``.
    """
    upscale_sources = [m.removeprefix(UPSCALE_SCHEME) for m in models if m.startswith(UPSCALE_SCHEME)]
    restore_sources = [m.removeprefix(RESTORE_SCHEME) for m in models if m.startswith(RESTORE_SCHEME)]
    models = [m for m in models if not m.startswith((UPSCALE_SCHEME, RESTORE_SCHEME))]
    engines: list[Engine] = [ClassicalEngine(), RefineEngine(), UpscaleEngine(upscale_sources, device)]
    if restore_sources:
        from underpaint.engines.restore import RestoreEngine  # torch and spandrel only when asked for

        engines.append(RestoreEngine(restore_sources, device))
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
    if segment_models:
        from underpaint.engines.diffusion.device import resolve_device
        from underpaint.engines.segment.learned import LearnedSegmentEngine  # torch and transformers

        engines.append(LearnedSegmentEngine(segment_models, resolve_device(device)))
    return engines, default_model
