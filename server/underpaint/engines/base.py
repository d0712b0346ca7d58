"""The contract between the daemon and an engine.

An engine only ever sees pixels at *model resolution*: the canvas pipeline (``underpaint.canvas``) has
already cropped, scaled and pre-filled the input, and it alone maps the engine's output back onto the
canvas. That keeps every engine free of placement math.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeVar

import numpy as np

from underpaint.canvas.plan import ModelResolution
from underpaint.errors import JobError
from underpaint.modes import Mode


@dataclass(frozen=True)
class ModelInfo:
    """One model a client may name in a job, as the handshake reports it."""

    id: str
    engine: str
    family: str
    modes: tuple[Mode, ...]
    description: str
    default_steps: int
    default_guidance: float
    loaded: bool = False
    capabilities: tuple[str, ...] = field(default_factory=tuple)
    refusal: str | None = None
    """Why every job for this model is refused (its licence forbids the use), or None."""
    segment_inputs: tuple[str, ...] = ()
    """For segment models: what they start from ("box", "points", "mask", "text")."""
    control_kinds: tuple[str, ...] = ()
    """Control layer kinds the model takes (a ControlNet of its family is configured for each)."""
    reference_modes: tuple[str, ...] = ()
    """Reference image modes it takes (an IP-Adapter of its family is configured)."""


@dataclass(frozen=True)
class SegmentPrompt:
    """A segment job's prompts in the uploaded image's pixels (the daemon moved them from canvas
    coordinates); the rough selection, when sent, is ``GenerationInput.mask``."""

    box: tuple[int, int, int, int] | None = None
    """x, y, width, height."""
    points: tuple[tuple[int, int], ...] = ()
    negative_points: tuple[tuple[int, int], ...] = ()
    text: str | None = None
    threshold: float | None = None
    soften: int | None = None


@dataclass(frozen=True)
class ControlInput:
    """One control layer at model resolution."""

    kind: str
    image: np.ndarray
    """RGBA uint8 (height, width, 4), the same crop and scale as ``GenerationInput.image``."""
    strength: float = 1.0
    start: float = 0.0
    end: float = 1.0
    preprocess: bool = False


@dataclass(frozen=True)
class ReferenceInput:
    """One reference image (IP-Adapter), at the size it was sent."""

    image: np.ndarray
    """RGBA uint8 (h, w, 4)."""
    mode: str = "both"
    weight: float = 0.6


@dataclass(frozen=True)
class GenerationInput:
    """One job as an engine sees it: everything already at model resolution."""

    mode: Mode
    model: str
    prompt: str
    negative_prompt: str
    seed: int
    steps: int
    guidance: float
    strength: float
    width: int
    height: int
    image: np.ndarray | None
    """RGB uint8 (height, width, 3), pre-filled where the model must invent; None for txt2img."""
    mask: np.ndarray | None
    """uint8 (height, width), 255 where the model may change pixels; None means everywhere."""
    previews: bool = True
    segment: SegmentPrompt | None = None
    """Mode ``segment`` only: what to select. Such engines yield uint8 (height, width) masks."""
    loras: tuple[tuple[str, float], ...] = ()
    """LoRAs by name (from the engine's ``loras()``) with their weights."""
    controls: tuple[ControlInput, ...] = ()
    references: tuple[ReferenceInput, ...] = ()


@dataclass(frozen=True)
class LoraInfo:
    """A LoRA a job may name (found in the engine's models folders)."""

    name: str
    triggers: tuple[str, ...] = ()
    base: str = ""
    refused: str | None = None
    """Why a job naming it is refused (a pickle), None when usable."""


@dataclass(frozen=True)
class StepProgress:
    """Reported after every denoising step (``step`` counts from 1 across the whole batch)."""

    step: int
    total: int
    preview: np.ndarray | None = None
    """A small RGB uint8 image of the current state, or None when the engine has none."""


ProgressCallback = Callable[[StepProgress], None]


class JobCancelled(Exception):
    """Raised inside an engine when the job's cancel event is set; the daemon reports `cancelled`."""


def no_progress(progress: StepProgress) -> None:
    """Live frames report no steps: the frame's result is the only thing a host waits for."""


class LiveModel:
    """One live session's model: set up once (``Engine.open_live``), then ``frame`` per frame.

    This default runs the engine's ordinary ``generate`` for each frame (engines whose setup costs
    nothing, like the classical fill); an engine with per-session work to save (the diffusion engine:
    pipeline, scheduler, prompt embeddings) returns its own subclass. Runs on a worker thread.
    """

    def __init__(self, engine: Engine, job: GenerationInput) -> None:
        self.engine = engine
        self.job = replace(job, previews=False)

    def frame(self, image: np.ndarray, cancel: threading.Event) -> np.ndarray:
        """The model's RGB uint8 picture for ``image`` (RGB uint8 at model size); raises
        :class:`JobCancelled` when ``cancel`` is set, :class:`~underpaint.errors.JobError` on failure."""
        frame_job = replace(self.job, image=image)
        made = list(self.engine.generate(frame_job, 1, no_progress, cancel))  # all of it: the engine's lock ends
        return made[0]

    def params(self) -> dict[str, Any]:
        """What the engine resolved for the session (steps, guidance, scheduler...)."""
        return self.engine.reproduction_params(self.job)


class Engine(ABC):
    """A way of turning a prepared job into pixels.

    ``generate`` runs on the daemon's worker thread for ``device``, never on the event loop, and
    may block for as long as the work takes.
    """

    name: str
    device: str = "cpu"
    uses_canvas_pipeline: bool = True
    """False only for diagnostic engines: they get the uploaded RGBA region as ``image`` and each
    yielded array becomes the layer as it is, placed at the uploaded region."""

    @abstractmethod
    def models(self) -> list[ModelInfo]:
        """The models this engine can run now (ids are unique across the daemon)."""

    @abstractmethod
    def resolution(self, model: str) -> ModelResolution:
        """The pixel budget and size rules the canvas pipeline must respect for ``model``."""

    @abstractmethod
    def generate(
        self,
        job: GenerationInput,
        batch_count: int,
        on_progress: ProgressCallback,
        cancel: threading.Event,
    ) -> Iterator[np.ndarray]:
        """Yield ``batch_count`` RGB uint8 images of (job.height, job.width, 3), item k from seed + k.

        Must check ``cancel`` at least once per step and raise :class:`JobCancelled` when it is set,
        without decoding the cancelled work. Failures the client can act on raise
        :class:`underpaint.errors.JobError`.
        """

    def live_decoder(self, model: str) -> str | None:
        """What decodes ``model``'s live frames from latents: ``vae`` or a fast decoder's source; None
        for engines without latents."""
        return None

    def open_live(self, job: GenerationInput) -> LiveModel:
        """Set up a live session (``job.image`` is a placeholder until the first frame); on a worker thread."""
        return LiveModel(self, job)

    def loras(self) -> list[LoraInfo]:
        """The LoRAs jobs may name on this engine's models (engines without LoRA support: none)."""
        return []

    def reproduction_params(self, job: GenerationInput) -> dict[str, Any]:
        """What the engine resolved beyond the request (clamped steps, scheduler, dtype, ...).

        Stored with every result so that it can be made again; engines without such choices add nothing.
        """
        return {}

    def close(self) -> None:  # noqa: B027 - optional hook, most engines hold nothing
        """Free what the engine holds (models, GPU memory)."""


class _Named(Protocol):
    @property
    def id(self) -> str: ...


Loaded = TypeVar("Loaded", bound=_Named)


def by_id(models: Iterable[Loaded], kind: str) -> dict[str, Loaded]:
    """An engine's loaded weight files by model id: two files of one id would make a job's choice
    ambiguous, so that is a start-up error naming ``kind`` (e.g. "restoration model")."""
    loaded: dict[str, Loaded] = {}
    for model in models:
        if model.id in loaded:
            raise ValueError(f"two {kind}s are named {model.id!r}")
        loaded[model.id] = model
    return loaded


def named(loaded: Mapping[str, Loaded], model: str, kind: str) -> Loaded:
    """The loaded model a job names, or the client's ``unknown_model`` error on ``job.model``."""
    if model not in loaded:
        raise JobError("unknown_model", f"no {kind} {model!r}", "job.model")
    return loaded[model]


def fill_input(job: GenerationInput, engine: str) -> tuple[np.ndarray, np.ndarray]:
    """The image and mask of a fill engine's job (no mask: all of it), which only inpaint and outpaint
    have; other modes are refused pointing at the diffusion engine (``engine`` says which refuses)."""
    if job.mode not in (Mode.INPAINT, Mode.OUTPAINT) or job.image is None:
        raise JobError(
            "unsupported_mode",
            f"{job.mode.value} needs a diffusion model; {engine} only fills selections",
            "job.mode",
        )
    mask = job.mask if job.mask is not None else np.full(job.image.shape[:2], 255, np.uint8)
    return job.image, mask
