"""A diagnostic engine that returns the uploaded pixels untouched.

Started with ``underpaint serve --engine echo``; ``bench/transfer.py`` uses it to measure what the
daemon itself costs (protocol, queue, worker hand-off, result delivery) with no image work at all.
It is the one engine that skips the canvas pipeline: its layer is exactly the uploaded region.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np

from underpaint.canvas.plan import ModelResolution
from underpaint.engines.base import Engine, GenerationInput, ModelInfo, ProgressCallback
from underpaint.modes import Mode

ECHO_MODEL = "echo"


class EchoEngine(Engine):
    name = "echo"
    device = "cpu"
    uses_canvas_pipeline = False

    def models(self) -> list[ModelInfo]:
        return [
            ModelInfo(
                id=ECHO_MODEL,
                engine=self.name,
                family="diagnostic",
                modes=(Mode.IMG2IMG,),
                description="Diagnostics: returns the uploaded image as the result",
                default_steps=1,
                default_guidance=0.0,
                loaded=True,
            )
        ]

    def resolution(self, model: str) -> ModelResolution:
        return ModelResolution(pixel_budget=1 << 30, multiple=1, min_side=1, max_side=65536, upscale_small=False)

    def generate(
        self,
        job: GenerationInput,
        batch_count: int,
        on_progress: ProgressCallback,
        cancel: threading.Event,
    ) -> Iterator[np.ndarray]:
        for _ in range(batch_count):
            yield job.image if job.image is not None else np.zeros((job.height, job.width, 4), np.uint8)
