"""Face restoration (GFPGAN-class models loaded with spandrel) for the selected region.

A restore runs through the canvas pipeline like an inpaint: the selection plus context is cropped and
scaled to the model's working size, the model restores it, and the result is composited back with
the usual soft mask, so only the selection (feathered) changes. The model is loaded safely by
``engines.weights``; a model whose licence is not permissive (CodeFormer: non-commercial) is listed
but every job for it is refused (``licence_refused``) unless its source ends in ``#allow_research``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

from underpaint.canvas.plan import ModelResolution
from underpaint.canvas.resize import resize_exact
from underpaint.engines.base import (
    Engine,
    GenerationInput,
    JobCancelled,
    ModelInfo,
    ProgressCallback,
    StepProgress,
    by_id,
    named,
)
from underpaint.engines.diffusion.device import resolve_device
from underpaint.engines.weights import ALLOW_RESEARCH, licence_of, load_descriptor, parse_source, permissive
from underpaint.errors import JobError
from underpaint.modes import Mode

FACE_PURPOSES = ("FaceSR", "Restoration")


class RestoreModel:
    """One loaded face restoration model."""

    def __init__(self, source: str, device: str) -> None:
        import spandrel

        parsed = parse_source(source)
        descriptor = load_descriptor(parsed.path)
        if not isinstance(descriptor, spandrel.ImageModelDescriptor) or descriptor.purpose not in FACE_PURPOSES:
            raise ValueError(f"{parsed.path.name}: {descriptor.architecture.name} is not a face restoration model")
        self.id = parsed.id
        self.architecture = descriptor.architecture.name
        self.licence = licence_of(descriptor.architecture.id)
        self.refusal = None
        if not permissive(self.licence) and not parsed.allow_research:
            self.refusal = (
                f"{self.id} ({self.architecture}) is licensed {self.licence}: not for this use; pick an "
                f"OSI-licensed model such as GFPGAN, or add {ALLOW_RESEARCH} to its source for research use"
            )
        self.size = max(64, descriptor.size_requirements.minimum or 512)
        """The square side the model works at (GFPGAN: 512)."""
        self.device = device
        self.descriptor: Any = descriptor.to(device).eval()
        self.lock = threading.Lock()

    def restore(self, rgb: np.ndarray) -> np.ndarray:
        """(h, w, 3) uint8 -> restored, same size (the model runs at ``size`` x ``size``)."""
        import torch

        height, width = rgb.shape[:2]
        square = resize_exact(rgb, self.size, self.size)
        image = torch.from_numpy(np.ascontiguousarray(square)).permute(2, 0, 1)[None].float().div(255.0)
        with self.lock, torch.inference_mode():
            out = self.descriptor(image.to(self.device))
        restored = out[0].clamp(0, 1).mul(255.0).round().byte().permute(1, 2, 0).cpu().numpy()
        return resize_exact(restored, width, height)


class RestoreEngine(Engine):
    name = "restore"

    def __init__(self, sources: list[str], device: str = "auto") -> None:
        self.device = resolve_device(device)
        self.loaded = by_id((RestoreModel(source, self.device) for source in sources), "restoration model")

    def models(self) -> list[ModelInfo]:
        return [
            ModelInfo(
                id=model.id,
                engine=self.name,
                family=model.architecture,
                modes=(Mode.RESTORE,),
                description=f"Face restoration ({model.architecture}, {model.licence}) of the selection",
                default_steps=1,
                default_guidance=0.0,
                loaded=True,
                refusal=model.refusal,
            )
            for model in self.loaded.values()
        ]

    def resolution(self, model: str) -> ModelResolution:
        size = named(self.loaded, model, "restoration model").size
        return ModelResolution(size * size, multiple=8, min_side=64, max_side=size * 2)

    def generate(
        self, job: GenerationInput, batch_count: int, on_progress: ProgressCallback, cancel: threading.Event
    ) -> Iterator[np.ndarray]:
        if job.mode is not Mode.RESTORE or job.image is None:
            raise JobError("unsupported_mode", f"a face restoration model cannot {job.mode.value}", "job.mode")
        model = named(self.loaded, job.model, "restoration model")
        if model.refusal is not None:
            raise JobError("licence_refused", model.refusal, "job.model")
        restored: np.ndarray | None = None
        for index in range(batch_count):
            if cancel.is_set():
                raise JobCancelled()
            if restored is None:  # deterministic: every batch item is the same restoration
                restored = model.restore(job.image)
            on_progress(StepProgress(step=index + 1, total=batch_count))
            yield restored

    def close(self) -> None:
        self.loaded.clear()
