"""A real Engine for daemon tests whose speed the test controls.

It is not a stand-in for a host API: it implements the engine contract fully (steps, progress,
previews, cancel) and returns the model-resolution input as its output, so tests can check exactly
what comes back, and make a job last long enough to cancel it or to drop a socket under it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np

from underpaint.canvas.plan import ModelResolution
from underpaint.engines.base import Engine, GenerationInput, JobCancelled, ModelInfo, ProgressCallback, StepProgress
from underpaint.modes import Mode

PACED_MODEL = "paced"


class PacedEngine(Engine):
    name = "paced"
    device = "cpu"

    def __init__(self, step_seconds: float = 0.02, steps: int = 5) -> None:
        self.step_seconds = step_seconds
        self.steps = steps
        self.generated = 0

    def models(self) -> list[ModelInfo]:
        return [
            ModelInfo(
                id=PACED_MODEL,
                engine=self.name,
                family="test",
                modes=tuple(m for m in Mode if m is not Mode.SEGMENT),
                description="test engine: waits per step, returns its input",
                default_steps=self.steps,
                default_guidance=1.0,
                loaded=True,
            )
        ]

    def resolution(self, model: str) -> ModelResolution:
        return ModelResolution(pixel_budget=256 * 256, multiple=8, min_side=64, max_side=1024)

    def generate(
        self, job: GenerationInput, batch_count: int, on_progress: ProgressCallback, cancel: threading.Event
    ) -> Iterator[np.ndarray]:
        total = job.steps * batch_count
        for item in range(batch_count):
            for step in range(job.steps):
                time.sleep(self.step_seconds)
                if cancel.is_set():
                    raise JobCancelled()
                preview = np.full((8, 8, 3), (item * 40) % 256, np.uint8)
                on_progress(StepProgress(item * job.steps + step + 1, total, preview))
            self.generated += 1
            if job.image is not None:
                yield job.image.copy()
            else:
                yield np.full((job.height, job.width, 3), (job.seed + item) % 256, np.uint8)
