"""The engine that needs no weights: content-aware fill from the surroundings.

It is the daemon's embedded default so that inpaint (remove an object, close a gap) and outpaint
(extend a background) work offline and instantly on any machine. It cannot invent new content, so
txt2img and img2img are refused with a pointer to the diffusion engine.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np

from underpaint.canvas import content_aware_fill
from underpaint.canvas.patchmatch import Cancelled as FillCancelled
from underpaint.canvas.plan import ModelResolution
from underpaint.engines.base import (
    Engine,
    GenerationInput,
    JobCancelled,
    ModelInfo,
    ProgressCallback,
    StepProgress,
    fill_input,
)
from underpaint.modes import Mode

CLASSICAL_MODEL = "classical"


class ClassicalEngine(Engine):
    name = "classical"
    device = "cpu"

    def models(self) -> list[ModelInfo]:
        return [
            ModelInfo(
                id=CLASSICAL_MODEL,
                engine=self.name,
                family="classical",
                modes=(Mode.INPAINT, Mode.OUTPAINT),
                description="Content-aware fill from the surroundings (OpenCV); no weights, instant",
                default_steps=1,
                default_guidance=0.0,
                loaded=True,
            )
        ]

    def resolution(self, model: str) -> ModelResolution:
        # Work at the crop's own resolution up to ~2 MP: filling needs no fixed model size.
        return ModelResolution(pixel_budget=2048 * 1024, multiple=1, min_side=1, max_side=4096, upscale_small=False)

    def generate(
        self,
        job: GenerationInput,
        batch_count: int,
        on_progress: ProgressCallback,
        cancel: threading.Event,
    ) -> Iterator[np.ndarray]:
        image, mask = fill_input(job, "the classical engine")
        for index in range(batch_count):
            if cancel.is_set():
                raise JobCancelled()
            try:
                filled = content_aware_fill(image, mask, seed=job.seed + index, cancel=cancel)
            except FillCancelled:
                raise JobCancelled() from None
            on_progress(StepProgress(step=index + 1, total=batch_count))
            yield filled
