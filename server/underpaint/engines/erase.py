"""Learned fill ("erase") models loaded with spandrel: LaMa, MAT and whatever inpainting architecture it
detects.

A learned fill removes objects and extends backgrounds without a prompt far better than the classical
fill, and it is the best pre-fill for the diffusion engine (``blend.prefill = "learned"``). Weights are
read as ``engines.weights`` reads every spandrel model (never running pickled code); a research-only
architecture (MAT, CC BY-NC) is refused unless its source ends in ``#allow_research``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np
import torch

from underpaint.canvas.plan import ModelResolution
from underpaint.engines.base import (
    Engine,
    GenerationInput,
    JobCancelled,
    ModelInfo,
    ProgressCallback,
    StepProgress,
    by_id,
    fill_input,
    named,
)
from underpaint.engines.diffusion.device import resolve_device
from underpaint.engines.weights import (
    ALLOW_RESEARCH,
    WeightsSource,
    licence_of,
    load_descriptor,
    parse_source,
    permissive,
)
from underpaint.modes import Mode

#: Native working size: LaMa was trained at 256-512 px and is fully convolutional; larger crops are
#: scaled down to this many pixels by the canvas pipeline, smaller ones run 1:1.
PIXEL_BUDGET = 512 * 512


class LearnedFillModel:
    """One loaded spandrel inpainting model."""

    def __init__(self, source: WeightsSource, device: str) -> None:
        import spandrel

        descriptor = load_descriptor(source.path)
        if not isinstance(descriptor, spandrel.MaskedImageModelDescriptor) or descriptor.purpose != "Inpainting":
            raise ValueError(f"{source.path.name}: {descriptor.architecture.name} is not an inpainting model")
        self.architecture = descriptor.architecture.name
        self.licence = licence_of(self.architecture)
        if not permissive(self.licence) and not source.allow_research:
            raise ValueError(
                f"{source.path.name}: {self.architecture} is licensed {self.licence}, for research only; "
                f"add {ALLOW_RESEARCH} to the model source to use it anyway"
            )
        self.id = source.path.stem
        self.device = device
        self.descriptor = descriptor.to(device).eval()
        self.multiple = max(8, descriptor.size_requirements.multiple_of)
        self.minimum = max(64, descriptor.size_requirements.minimum)
        self.lock = threading.Lock()  # one forward at a time: the prefill may come from another thread

    def fill(self, image_rgb: np.ndarray, hole: np.ndarray) -> np.ndarray:
        """``image_rgb`` uint8 (h, w, 3) with ``hole`` (bool (h, w)) filled by the model; other pixels kept."""
        image = torch.from_numpy(np.ascontiguousarray(image_rgb)).permute(2, 0, 1)[None].float().div(255.0)
        mask = torch.from_numpy(np.ascontiguousarray(hole)).float()[None, None]
        with self.lock, torch.inference_mode():
            out = self.descriptor(image.to(self.device), mask.to(self.device))
        filled = out[0].clamp(0, 1).mul(255.0).round().byte().permute(1, 2, 0).cpu().numpy()
        return np.where(hole[..., None], filled, image_rgb)


def hole_of(mask: np.ndarray) -> np.ndarray:
    """What the model fills: the mask's 255 part when it has one (softer pixels are the original,
    blended later by the composite), else every masked pixel; as the classical fill does."""
    return mask >= 255 if (mask >= 255).any() else mask > 0


class LearnedFillEngine(Engine):
    name = "erase"

    def __init__(self, sources: list[str], device: str = "auto") -> None:
        self.device = resolve_device(device)
        models = (LearnedFillModel(parse_source(text), self.device) for text in sources)
        self.loaded = by_id(models, "learned fill model")

    def models(self) -> list[ModelInfo]:
        return [
            ModelInfo(
                id=model.id,
                engine=self.name,
                family=model.architecture,
                modes=(Mode.INPAINT, Mode.OUTPAINT),
                description=f"Learned fill ({model.architecture}, {model.licence}); no prompt, also a pre-fill",
                default_steps=1,
                default_guidance=0.0,
                loaded=True,
                capabilities=("prefill",),
            )
            for model in self.loaded.values()
        ]

    def resolution(self, model: str) -> ModelResolution:
        m = named(self.loaded, model, "learned fill model")
        return ModelResolution(PIXEL_BUDGET, multiple=m.multiple, min_side=m.minimum, upscale_small=False)

    def prefill(self, image_rgb: np.ndarray, unknown: np.ndarray) -> np.ndarray:
        """The first model's fill of ``unknown``: the diffusion pre-fill ``learned``."""
        return next(iter(self.loaded.values())).fill(image_rgb, unknown)

    def generate(
        self,
        job: GenerationInput,
        batch_count: int,
        on_progress: ProgressCallback,
        cancel: threading.Event,
    ) -> Iterator[np.ndarray]:
        image, mask = fill_input(job, "a learned fill model")
        model = named(self.loaded, job.model, "learned fill model")
        filled: np.ndarray | None = None
        for index in range(batch_count):
            if cancel.is_set():
                raise JobCancelled()
            if filled is None:  # deterministic: every batch item is the same fill
                filled = model.fill(image, hole_of(mask))
            on_progress(StepProgress(step=index + 1, total=batch_count))
            yield filled

    def close(self) -> None:
        self.loaded.clear()
