"""Learned fill ("erase") models loaded with spandrel: LaMa, MAT and whatever inpainting architecture it
detects.

A learned fill removes objects and extends backgrounds without a prompt far better than the classical
fill, and it is the best pre-fill for the diffusion engine (``blend.prefill = "learned"``). Weights are
read only in forms that cannot run code: ``.safetensors``, or ``.pth``/``.ckpt`` through
``torch.load(weights_only=True)``; the state dict then goes to spandrel, which detects the architecture.
Licences are respected as for other downloaded models: a research-only architecture (MAT, CC BY-NC) is
refused unless its source ends in ``#allow_research``, the user's explicit opt-in.
"""

from __future__ import annotations

import contextlib
import pickle
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from underpaint.canvas.plan import ModelResolution
from underpaint.engines.base import Engine, GenerationInput, JobCancelled, ModelInfo, ProgressCallback, StepProgress
from underpaint.engines.diffusion.device import resolve_device
from underpaint.errors import JobError
from underpaint.modes import Mode

ALLOW_RESEARCH = "#allow_research"
#: Licence of each architecture spandrel may detect; absent ones are taken as research-only (refused
#: without the opt-in), so a new architecture is never used commercially by accident.
LICENCES = {"LaMa": "Apache-2.0", "MAT": "CC-BY-NC-4.0"}
PERMISSIVE = frozenset({"Apache-2.0", "MIT", "BSD-3-Clause"})
SAFE_SUFFIXES = (".safetensors", ".pth", ".ckpt")
#: Native working size: LaMa was trained at 256-512 px and is fully convolutional; larger crops are
#: scaled down to this many pixels by the canvas pipeline, smaller ones run 1:1.
PIXEL_BUDGET = 512 * 512


class UnsafeWeights(ValueError):
    """The file could hold code (a pickle with objects, TorchScript), so it is not read."""


@dataclass(frozen=True)
class FillSource:
    path: Path
    allow_research: bool


def parse_source(text: str) -> FillSource:
    """``PATH[#allow_research]`` to a source."""
    body = text
    allow = body.endswith(ALLOW_RESEARCH)
    return FillSource(Path(body.removesuffix(ALLOW_RESEARCH)).expanduser(), allow)


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a weights file, read without running any code it might carry."""
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    if suffix not in SAFE_SUFFIXES:
        raise UnsafeWeights(f"{path.name}: only {', '.join(SAFE_SUFFIXES)} weights are read")
    try:
        loaded = torch.load(str(path), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, zipfile.BadZipFile) as exc:
        raise UnsafeWeights(f"{path.name}: not a plain tensor file ({exc.__class__.__name__}); not loaded") from exc
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict):
        raise UnsafeWeights(f"{path.name}: holds no state dict")
    return loaded


class LearnedFillModel:
    """One loaded spandrel inpainting model."""

    def __init__(self, source: FillSource, device: str) -> None:
        import spandrel

        with contextlib.suppress(ImportError):  # MAT lives there; installed only by users who want it
            import spandrel_extra_arches

            spandrel_extra_arches.install(ignore_duplicates=True)
        descriptor = spandrel.ModelLoader(device="cpu").load_from_state_dict(
            spandrel.canonicalize_state_dict(load_state_dict(source.path))
        )
        if not isinstance(descriptor, spandrel.MaskedImageModelDescriptor) or descriptor.purpose != "Inpainting":
            raise ValueError(f"{source.path.name}: {descriptor.architecture.name} is not an inpainting model")
        self.architecture = descriptor.architecture.name
        self.licence = LICENCES.get(self.architecture, "unknown (research only)")
        if self.licence not in PERMISSIVE and not source.allow_research:
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
        self.loaded: dict[str, LearnedFillModel] = {}
        for text in sources:
            model = LearnedFillModel(parse_source(text), self.device)
            if model.id in self.loaded:
                raise ValueError(f"two learned fill models are named {model.id!r}")
            self.loaded[model.id] = model

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

    def _model(self, model: str) -> LearnedFillModel:
        if model not in self.loaded:
            raise JobError("unknown_model", f"no learned fill model {model!r}", "job.model")
        return self.loaded[model]

    def resolution(self, model: str) -> ModelResolution:
        m = self._model(model)
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
        if job.mode not in (Mode.INPAINT, Mode.OUTPAINT) or job.image is None:
            raise JobError(
                "unsupported_mode",
                f"{job.mode.value} needs a diffusion model; a learned fill model only fills selections",
                "job.mode",
            )
        model = self._model(job.model)
        mask = job.mask if job.mask is not None else np.full(job.image.shape[:2], 255, np.uint8)
        filled: np.ndarray | None = None
        for index in range(batch_count):
            if cancel.is_set():
                raise JobCancelled()
            if filled is None:  # deterministic: every batch item is the same fill
                filled = model.fill(job.image, hole_of(mask))
            on_progress(StepProgress(step=index + 1, total=batch_count))
            yield filled

    def close(self) -> None:
        self.loaded.clear()
