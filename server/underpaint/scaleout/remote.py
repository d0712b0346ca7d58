"""The daemon's side of one engine that runs on Ray Serve replicas.

``RemoteEngine`` fulfils the ordinary engine contract, so the job manager, the canvas pipeline, the
outputs folder and the fairness rules stay one code path: only the ``generate`` call travels. It
streams the job to a replica (preferring one with the model warm), turns the stream back into
progress callbacks and images, and ends the call with ``.cancel()`` when the job's cancel event
is set (Ray stops a streaming call only on an explicit cancel, not when the response is dropped).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
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
    LoraInfo,
    ModelInfo,
    ProgressCallback,
    StepProgress,
)
from underpaint.engines.upscale import Upscaler
from underpaint.errors import JobError
from underpaint.scaleout.replica import EngineEntry, Made, RemoteJob, Stopped, UpscalerFacts

DEVICE = "ray"
"""All remote engines share one device, hence one fair queue in the daemon."""


class RemoteEngine(Engine):
    def __init__(self, entry: EngineEntry, handle: DeploymentHandle) -> None:
        self.name = entry.name
        self.device = DEVICE
        self.uses_canvas_pipeline = entry.uses_canvas_pipeline
        self._models = list(entry.models)
        self._resolutions = entry.resolutions
        self._loras = list(entry.loras)
        self._handle = handle
        self._handles: dict[str, DeploymentHandle] = {}
        """One streaming handle per model, routed to replicas that have it warm."""
        self._params: dict[int, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def models(self) -> list[ModelInfo]:
        return list(self._models)

    def resolution(self, model: str) -> ModelResolution:
        return self._resolutions[model]

    def loras(self) -> list[LoraInfo]:
        """The LoRAs every machine of the cluster has, as the replicas' engines list them (read at start)."""
        return list(self._loras)

    def reproduction_params(self, job: GenerationInput) -> dict[str, Any]:
        """What the replica's engine resolved for ``job``: known once its first image has arrived."""
        with self._lock:
            return dict(self._params.get(id(job), {}))

    def generate(
        self,
        job: GenerationInput,
        batch_count: int,
        on_progress: ProgressCallback,
        cancel: threading.Event,
    ) -> Iterator[np.ndarray]:
        if cancel.is_set():
            raise JobCancelled()
        handle = self._handles.get(job.model)
        if handle is None:
            handle = self._handles[job.model] = self._handle.options(stream=True, multiplexed_model_id=job.model)
        response = cast(DeploymentResponseGenerator, handle.generate.remote(RemoteJob(job, batch_count)))
        _CANCELS.watch(cancel, response)
        try:
            with _ray_failures(cancel):
                for item in response:
                    if isinstance(item, StepProgress):
                        on_progress(item)
                    elif isinstance(item, Made):
                        with self._lock:
                            self._params[id(job)] = item.params
                        yield item.image
                    elif isinstance(item, Stopped):
                        if item.code == "cancelled":
                            raise JobCancelled()
                        raise JobError(item.code, item.message, item.field)
        finally:
            _CANCELS.forget(response)
            with self._lock:
                self._params.pop(id(job), None)


class RemoteUpscaler(Upscaler):
    """A super-resolution model on the replicas. The daemon runs the tiled pass (blending, result tiles,
    storing) and sends each tile's native pass to a replica, one call per tile, preferring one with the
    model warm; cancel is checked by the pass between tiles."""

    def __init__(self, facts: UpscalerFacts, handle: DeploymentHandle) -> None:
        self.id, self.family, self.licence = facts.id, facts.family, facts.licence
        self.scale, self.default_tile = facts.scale, facts.default_tile
        self._handle = handle.options(multiplexed_model_id=facts.id)

    def forward(self, rgb: np.ndarray) -> np.ndarray:
        with _ray_failures(None):
            return cast(np.ndarray, self._handle.upscale_tile.remote(np.ascontiguousarray(rgb)).result())


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
