"""The daemon's side of one engine that runs on Ray Serve replicas.

``RemoteEngine`` fulfils the ordinary engine contract, so the job manager, the canvas pipeline, the
outputs folder and the fairness rules stay one code path: only the ``generate`` call travels. It
streams the job to a replica (preferring one with the model warm), turns the stream back into
progress callbacks and images, and ends the call with ``.cancel()`` when the job's cancel event
is set (Ray stops a streaming call only on an explicit cancel, not when the response is dropped).
Its live sessions (``RemoteLive``) send each frame the same way; the replica keeps the session set up.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any, cast

import numpy as np
from ray.exceptions import RayActorError
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError, RequestCancelledError
from ray.serve.handle import DeploymentHandle, DeploymentResponseGenerator

from underpaint.canvas.plan import ModelResolution
from underpaint.engines.base import (
    Engine,
    GenerationInput,
    JobCancelled,
    LiveModel,
    LoraInfo,
    ModelInfo,
    ProgressCallback,
    StepProgress,
)
from underpaint.engines.upscale import Upscaler
from underpaint.errors import JobError
from underpaint.scaleout.replica import EngineEntry, LiveFrame, Made, RemoteJob, Stopped, UpscalerFacts

DEVICE = "ray"
"""All remote engines share one device, hence one fair queue in the daemon."""


class RemoteEngine(Engine):
    def __init__(self, entry: EngineEntry, handle: DeploymentHandle) -> None:
        self.name = entry.name
        self.device = DEVICE
        self.uses_canvas_pipeline = entry.uses_canvas_pipeline
        self._models = list(entry.models)
        self._resolutions = entry.resolutions
        self._live_decoders = entry.live_decoders
        self._loras = list(entry.loras)
        self._handle = handle
        self._handles: dict[str, DeploymentHandle] = {}
        """One streaming handle per model, routed to replicas that have it warm."""
        self._params: dict[int, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def models(self) -> list[ModelInfo]:
        return list(self._models)

    def live_decoder(self, model: str) -> str | None:
        return self._live_decoders.get(model)

    def resolution(self, model: str) -> ModelResolution:
        return self._resolutions[model]

    def loras(self) -> list[LoraInfo]:
        """The LoRAs every machine of the cluster has, as the replicas' engines list them."""
        return list(self._loras)

    def offer_loras(self, loras: list[LoraInfo]) -> None:
        """What the replicas reported last (from the status thread; the list is replaced, never changed)."""
        self._loras = list(loras)

    def reproduction_params(self, job: GenerationInput) -> dict[str, Any]:
        """What the replica's engine resolved for ``job``: known once its first image has arrived."""
        with self._lock:
            return dict(self._params.get(id(job), {}))

    def handle_for(self, model: str) -> DeploymentHandle:
        """The streaming handle for ``model``'s calls, routed to replicas that have it warm."""
        handle = self._handles.get(model)
        if handle is None:
            handle = self._handles[model] = self._handle.options(stream=True, multiplexed_model_id=model)
        return handle

    def generate(
        self,
        job: GenerationInput,
        batch_count: int,
        on_progress: ProgressCallback,
        cancel: threading.Event,
    ) -> Iterator[np.ndarray]:
        if cancel.is_set():
            raise JobCancelled()
        try:
            for item in _stream(self.handle_for(job.model), "generate", RemoteJob(job, batch_count), cancel):
                if isinstance(item, StepProgress):
                    on_progress(item)
                else:
                    with self._lock:
                        self._params[id(job)] = item.params
                    yield item.image
        finally:
            with self._lock:
                self._params.pop(id(job), None)

    def open_live(self, job: GenerationInput) -> LiveModel:
        return RemoteLive(self, job)


class RemoteLive(LiveModel):
    """A live session whose frames run on the replicas, one call each, tagged with the session's id: the
    replica keeps the session's live model (``Engine.open_live``: pipeline, prompt embeddings) for its
    later frames, and a frame routed to a replica without it sets it up there."""

    def __init__(self, engine: RemoteEngine, job: GenerationInput) -> None:
        super().__init__(engine, job)
        self.session = uuid.uuid4().hex
        self._handle = engine.handle_for(job.model)
        self._job = replace(self.job, image=None)  # each frame carries its own picture
        self._params: dict[str, Any] = {}

    def frame(self, image: np.ndarray, cancel: threading.Event) -> np.ndarray:
        if cancel.is_set():
            raise JobCancelled()
        made = [
            item
            for item in _stream(self._handle, "live_frame", LiveFrame(self.session, self._job, image), cancel)
            if isinstance(item, Made)
        ]
        if not made:
            raise JobError("worker_lost", "the Ray worker ended a live frame without its picture")
        self._params = made[0].params
        return made[0].image

    def params(self) -> dict[str, Any]:
        """What the replica's engine resolved for the session: known once a frame has come back."""
        return dict(self._params)


def _stream(
    handle: DeploymentHandle, method: str, request: RemoteJob | LiveFrame, cancel: threading.Event
) -> Iterator[StepProgress | Made]:
    """What a replica streams for one call; its ``Stopped`` raised as the engine's error. The call is
    cancelled (``.cancel()``) once ``cancel`` is set."""
    response = cast(DeploymentResponseGenerator, getattr(handle, method).remote(request))
    _CANCELS.watch(cancel, response)
    try:
        with _ray_failures(cancel):
            for item in response:
                if isinstance(item, Stopped):
                    if item.code == "cancelled":
                        raise JobCancelled()
                    raise JobError(item.code, item.message, item.field)
                yield item
    finally:
        _CANCELS.forget(response)


class RemoteUpscaler(Upscaler):
    """A super-resolution model on the replicas. The daemon runs the tiled pass (blending, result tiles,
    storing) and sends each tile's native pass to a replica, one call per tile, preferring one with the
    model warm; cancel is checked by the pass between tiles."""

    def __init__(self, facts: UpscalerFacts, handle: DeploymentHandle) -> None:
        self.id, self.family, self.licence = facts.id, facts.family, facts.licence
        self.scale, self.default_tile = facts.scale, facts.default_tile
        self._handle = handle.options(multiplexed_model_id=facts.id)

    def forward(self, rgb: np.ndarray) -> np.ndarray:
        """The tile's pass on a replica. A large tile comes back read-only (a view of Ray's object
        store), and the tiled pass weighs its blend bands in place: such a tile is copied."""
        with _ray_failures(None):
            made = cast(np.ndarray, self._handle.upscale_tile.remote(np.ascontiguousarray(rgb)).result())
        return np.require(made, requirements="W")


@contextlib.contextmanager
def _ray_failures(cancel: threading.Event | None) -> Iterator[None]:
    """Ray's failures of a call to a replica as the job's errors."""
    try:
        yield
    except RequestCancelledError:
        raise JobCancelled() from None
    except RayActorError as error:
        if cancel is not None and cancel.is_set():
            raise JobCancelled() from None
        raise JobError(
            "worker_lost",
            f"the Ray worker running this job stopped ({type(error).__name__}); submit the job again",
        ) from None
    except BackPressureError:
        raise JobError("queue_full", "every Ray worker is busy and their queue is full; try again later") from None
    except DeploymentUnavailableError as error:
        raise JobError("worker_lost", f"no Ray worker is available: {error}") from None


class _CancelWatch:
    """One thread for every running remote job: it ends a job's streaming call (``.cancel()``) once
    the job's cancel event is set; no thread is started per job."""

    PERIOD = 0.05
    """How often cancel events are looked at while jobs run (a replica stops within a step after)."""

    def __init__(self) -> None:
        self._watched: dict[int, tuple[threading.Event, DeploymentResponseGenerator]] = {}
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def watch(self, cancel: threading.Event, response: DeploymentResponseGenerator) -> None:
        with self._changed:
            self._watched[id(response)] = (cancel, response)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="underpaint-cancel-watch", daemon=True)
                self._thread.start()
            self._changed.notify()

    def forget(self, response: DeploymentResponseGenerator) -> None:
        with self._changed:
            self._watched.pop(id(response), None)

    def _run(self) -> None:
        while True:
            with self._changed:
                if not self._watched:
                    self._changed.wait()
                cancelled = [key for key, (cancel, _) in self._watched.items() if cancel.is_set()]
                responses = [self._watched.pop(key)[1] for key in cancelled]
            for response in responses:
                response.cancel()
            time.sleep(self.PERIOD)


_CANCELS = _CancelWatch()
