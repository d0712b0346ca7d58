"""One live session: the kept copy of the region, the newest frame waiting, and the frames' runs.

A connection's live session lives here, between the event loop (``patch``, ``stop``) and a device's
worker thread (``run_turn``). Latest wins: every frame patches the kept copy at once (no pixels are
lost), and only the newest frame number waits for the model; a frame still waiting when a newer one
arrives is counted as dropped. The session takes turns on its device like a client's jobs: it puts a
``LiveTurn`` in the device's fair queue when a frame waits and none is queued or running. A turn runs
frames back to back while a newer one waits and no other client waits for the device (else it goes
back in line, so an ordinary job of another client runs between two frames); a frame's result is
scaled back, composited and published on the session's finisher thread while the next model call
runs, so a stroke waits for at most the model call in progress, then its own frame. One frame in the
model and one finishing at most: results leave in frame order, never a backlog. No sockets:
``publish`` hands events to the connection.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from underpaint.canvas import live as live_canvas
from underpaint.canvas.geometry import Box
from underpaint.canvas.plan import JobPlan
from underpaint.engines.base import Engine, GenerationInput, JobCancelled, LiveModel, ModelInfo
from underpaint.errors import JobError
from underpaint_protocol import messages as wire

log = logging.getLogger("underpaint.live")

Publish = Callable[[Any, "np.ndarray | None"], None]
"""Send an event (and its image) to the session's connection; callable from any thread."""


@dataclass(eq=False)
class LiveTurn:
    """A live session's place in its device's fair queue: when taken, it runs the newest frame."""

    id: str
    owner: str
    session: LiveSession


class LiveSession:
    """The daemon's side of one connection's live session (see the module docstring)."""

    def __init__(
        self,
        session_id: str,
        owner: str,
        model: ModelInfo,
        engine: Engine,
        plan: JobPlan,
        generation: GenerationInput,
        mask: np.ndarray | None,
        publish: Publish,
        layer_name: str,
    ) -> None:
        self.id = session_id
        self.owner = owner
        self.model = model
        self.engine = engine
        self.plan = plan
        self.generation = generation
        self.publish = publish
        self.layer_name = layer_name
        self.region: Box = plan.upload
        self.turn = LiveTurn(session_id, owner, self)
        self.cancel = threading.Event()
        """Set by ``stop``: a frame in the model is abandoned at its next step."""
        self._mask = mask
        self._lock = threading.Lock()
        self._kept = np.zeros((self.region.height, self.region.width, 4), np.uint8)
        self._pending: tuple[int, float] | None = None
        """The newest frame not yet taken by the model: its seq and when it arrived."""
        self._queued = False
        self._running = False
        self.stopped = False
        self.frames = 0
        self.dropped = 0
        self.results = 0
        self._live_plan: live_canvas.LivePlan | None = None
        self._model: LiveModel | None = None
        self._finisher = ThreadPoolExecutor(1, thread_name_prefix=f"live-{session_id[:8]}")
        """Scales back, composites and publishes a frame's result while the next frame's model runs
        (one thread: results leave in frame order)."""
        self._finishing: Future[None] | None = None

    # ------------------------------------------------------------ event loop side

    def patch(self, seq: int, rect: Box, pixels: np.ndarray) -> bool:
        """Copy a frame into the kept region (``rect`` inside it, checked by the connection's rules) and
        make it the frame waiting; True when the caller must queue ``turn`` on the device."""
        with self._lock:
            if self.stopped:
                return False
            self._kept[rect.slices(self.region)] = pixels
            self.frames += 1
            if self._pending is not None:
                self.dropped += 1
            self._pending = (seq, time.perf_counter())
            if self._queued or self._running:
                return False
            self._queued = True
            return True

    def stop(self) -> bool:
        """End the session: nothing waiting runs, a running frame stops at its next step. False when
        it had ended already."""
        with self._lock:
            if self.stopped:
                return False
            self.stopped = True
            self._pending = None
            if not self._running:  # a running turn shuts the finisher down when it ends
                self._finisher.shutdown(wait=False)
        self.cancel.set()
        return True

    def stopped_message(self, reason: str, request_id: str | None = None, error: JobError | None = None) -> Any:
        return wire.LiveStopped(
            session_id=self.id,
            request_id=request_id,
            reason=reason,  # type: ignore[arg-type]
            frames=self.frames,
            results=self.results,
            dropped=self.dropped,
            code=error.code if error is not None else None,
            message=error.message if error is not None else None,
        )

    # ------------------------------------------------------------ worker side

    def run_turn(self, alone: Callable[[], bool] = lambda: True) -> bool:
        """Run the newest frame (on a worker thread), and the next one at once while one waits and
        ``alone()`` says nobody else waits for the device; True when a frame still waits and the
        caller must queue ``turn`` again (after the other clients). When a newer frame waits, a
        frame's result is scaled back, composited and published by the session's finisher thread
        while the next frame's model call runs; the turn ends once its last result has left. A
        failure ends the session with ``live_stopped`` (reason ``failed``)."""
        try:
            ran = False
            while True:
                if ran and self._waiting() and not alone():
                    break  # another client's job runs first: back in line
                taken = self._take()
                if taken is None:
                    self._settle()
                    if self._waiting():
                        continue  # came while the last result was finishing
                    break
                ran = True
                if not self._run(*taken):
                    break
            self._settle()
        finally:
            with self._lock:
                self._running = False
                again = not self.stopped and self._pending is not None and not self._queued
                self._queued = self._queued or again
                if self.stopped:
                    self._finisher.shutdown(wait=False)
        return again

    def _waiting(self) -> bool:
        with self._lock:
            return not self.stopped and self._pending is not None

    def _take(self) -> tuple[int, float, np.ndarray] | None:
        """The newest frame (its seq, arrival time and a copy of the kept region), or None."""
        with self._lock:
            self._queued = False
            if self.stopped or self._pending is None:
                return None
            seq, arrived = self._pending
            self._pending = None
            self._running = True
            return seq, arrived, self._kept.copy()

    def _run(self, seq: int, arrived: float, region: np.ndarray) -> bool:
        """One frame's model call, its result handed to the finisher; False when the session ended."""
        try:
            generated = self._generate(region)
        except JobCancelled:
            return False  # stopped: the stop already answered
        except JobError as error:
            log.warning("live session %s failed: %s (%s)", self.id[:8], error.message, error.code)
            self._fail(error)
            return False
        except MemoryError:
            self._fail(JobError("out_of_memory", "the daemon ran out of memory"))
            return False
        except Exception as error:  # an engine bug must not kill the worker
            log.exception("live session %s crashed", self.id[:8])
            self._fail(JobError("engine_failed", f"{type(error).__name__}: {error}"))
            return False
        self._settle()  # at most one result finishing while the next model call runs: no backlog
        with self._lock:
            if self.stopped:
                return False
            if self._pending is not None:  # a newer frame waits: its model call starts at once
                self._finishing = self._finisher.submit(self._finish, seq, arrived, generated)
                return True
        self._finish(seq, arrived, generated)  # nothing waits: no hand-over to pay for
        return True

    def _generate(self, region: np.ndarray) -> np.ndarray:
        if self._model is None:  # the session's one-time work, on the worker (a model may load)
            self._live_plan = live_canvas.prepare_live(self.plan, self._mask)
            self.generation = replace(self.generation, mask=self._live_plan.denoise)
            self._model = self.engine.open_live(self.generation)
        assert self._live_plan is not None
        generated = self._model.frame(live_canvas.model_input(self._live_plan, region), self.cancel)
        if self.cancel.is_set():
            raise JobCancelled()
        return generated

    def _settle(self) -> None:
        """Wait until the result handed to the finisher has left (or was dropped by a stop)."""
        finishing, self._finishing = self._finishing, None
        if finishing is not None:
            finishing.result()

    def _finish(self, seq: int, arrived: float, generated: np.ndarray) -> None:
        """Scale the model's picture back, composite it and publish it (on the finisher thread while
        the next frame runs, else on the worker)."""
        live_plan = self._live_plan
        assert live_plan is not None
        try:
            layer = live_canvas.live_layer(live_plan, generated)
        except MemoryError:
            self._fail(JobError("out_of_memory", "the daemon ran out of memory"))
            return
        except Exception as error:  # a bug must not leave the session half alive
            log.exception("live session %s crashed", self.id[:8])
            self._fail(JobError("engine_failed", f"{type(error).__name__}: {error}"))
            return
        with self._lock:
            if self.stopped:
                return
            self.results += 1
            message = wire.LiveResult(
                session_id=self.id,
                seq=seq,
                layer=wire.Layer(
                    name=self.layer_name,
                    x=layer.x,
                    y=layer.y,
                    width=max(layer.width, 1),
                    height=max(layer.height, 1),
                    image=wire.AttachmentRef(
                        id="pending", format="rgba8", width=max(layer.width, 1), height=max(layer.height, 1)
                    ),
                ),
                frames=self.frames,
                dropped=self.dropped,
                latency_ms=round((time.perf_counter() - arrived) * 1000, 2),
            )
        self.publish(message, layer.pixels)

    def _fail(self, error: JobError) -> None:
        if self.stop():
            self.publish(self.stopped_message("failed", error=error), None)
