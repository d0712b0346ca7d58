"""What the daemon knows about one job, and the messages that describe it: no behaviour, no I/O.

A leaf module: the job manager, the step that runs a job, and every connection import it, and it
imports none of them, so the daemon's import graph runs one way.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from underpaint.canvas.geometry import Box
from underpaint.canvas.plan import BlendSettings, JobPlan
from underpaint.canvas.region import SegmentInputs
from underpaint.daemon.outputs import StoredResult
from underpaint.engines.base import Engine, ModelInfo
from underpaint.engines.upscale import UpscalePlan
from underpaint_protocol import messages as wire


@dataclass(frozen=True)
class Outgoing:
    """A message for a client, with the image it carries as an array (encoded per connection)."""

    message: Any
    pixels: np.ndarray | None = None


Sink = Callable[[Outgoing], None]
"""Where a connection takes the events of its client's jobs."""


class Publish(Protocol):
    """How the step that runs a job reports an event; callable from any thread."""

    def __call__(self, message: Any, pixels: np.ndarray | None = None, /) -> None: ...


@dataclass(eq=False)
class Job:
    """One accepted job: its request, its plan, the pixels it still needs, and where it stands."""

    id: str
    owner: str
    spec: wire.JobSpec
    model: ModelInfo
    engine: Engine
    plan: JobPlan
    seed: int
    steps: int
    guidance: float
    strength: float
    image: np.ndarray | None
    mask: np.ndarray | None
    controls: list[np.ndarray] = field(default_factory=list)
    """RGBA of each ``spec.controls`` item over the control region (see ``canvas.controls``)."""
    references: list[np.ndarray] = field(default_factory=list)
    """RGBA of each ``spec.references`` item, as sent."""
    created: float = field(default_factory=time.time)
    state: str = "queued"
    results: int = 0
    cancel: threading.Event = field(default_factory=threading.Event)
    terminal_event: Any = None
    announced_position: int | None = None
    asked: wire.JobSpec | None = None
    """The job as the client sent it, when its style or ``<lora:...>`` tags rewrote ``spec``."""
    """The last queue position sent to the owner (positions are sent only when they change)."""
    upscale: UpscalePlan | None = None
    """For upscale and refine-upscale: the upscaler, factor and placement (``daemon.upscaling``)."""

    @property
    def device(self) -> str:
        return self.engine.device

    def summary(self, position: int | None) -> wire.JobSummary:
        return wire.JobSummary(
            job_id=self.id,
            state=self.state,  # type: ignore[arg-type]
            mode=self.spec.mode,
            model=self.model.id,
            prompt=self.spec.prompt,
            created=self.created,
            results=self.results,
            position=position,
        )


Execute = Callable[[Job, Publish], int]
"""The one step that runs the engine for a job: make, store and publish every batch item, return
how many were made; raises ``JobCancelled`` or ``JobError``. A worker backend replaces this."""


def to_box(rect: wire.Rect | None) -> Box | None:
    return None if rect is None else Box(rect.x, rect.y, rect.width, rect.height)


def to_wire_rect(box: Box) -> wire.Rect:
    return wire.Rect(x=box.x, y=box.y, width=box.width, height=box.height)


def segment_inputs(spec: wire.JobSpec) -> SegmentInputs:
    """A segment job's prompts in canvas coordinates (``spec.segment`` must be set)."""
    segment = spec.segment
    assert segment is not None
    return SegmentInputs(
        box=to_box(segment.box),
        points=tuple((p.x, p.y) for p in segment.points),
        negative_points=tuple((p.x, p.y) for p in segment.negative_points),
        text=segment.text,
        rough=to_box(spec.selection),
    )


def blend_settings(spec: wire.JobSpec) -> BlendSettings:
    if spec.blend is None:
        return BlendSettings()
    return BlendSettings(**spec.blend.model_dump())


def result_message(item: StoredResult) -> wire.Result:
    """The ``result`` event of a stored item; the connection fills in its attachment."""
    height, width = item.pixels.shape[:2]
    placeholder = wire.AttachmentRef(id="pending", format="rgba8", width=max(width, 1), height=max(height, 1))
    return wire.Result(
        job_id=item.job_id,
        index=item.index,
        layer=wire.Layer(name=item.name, x=item.x, y=item.y, width=width, height=height, image=placeholder),
        canvas=wire.Rect(**item.canvas),
        params=item.params,
        output=item.output,
        upscale=None if item.upscale is None else wire.UpscaleResult(**item.upscale),
    )
