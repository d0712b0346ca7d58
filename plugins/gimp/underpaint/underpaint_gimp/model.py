"""The plug-in's state, free of GIMP and GTK: the connection, the jobs in flight, where results go.

The host side is a :class:`Canvas` (GIMP: ``canvas.GimpCanvas``; tests: an in-memory fake). All
decisions about modes, crops and placement come from the shared ``underpaint_protocol.jobs``; this
module only sequences them: plan -> read exactly the planned region -> submit -> paste each result
(canvas growth once per job, one group per batch job, one undo group per paste).

Threading: the protocol client calls back on its own thread. Everything that touches the host or
this model's state is handed to ``dispatch`` (GLib.idle_add in the panel, a queue drained by the
procedure's main loop in batch mode), so it all runs on the host's main thread. Nothing here waits
on the daemon except :meth:`Controller.connect`, which the panel calls from a worker thread.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol

from underpaint_protocol.client import DaemonError, NotConnected, UnderpaintClient
from underpaint_protocol.jobs import Bounds, build_job, placement
from underpaint_protocol.session import Event, ImageData

from . import VERSION

Dispatch = Callable[[Callable[[], None]], None]

TERMINAL = ("finished", "failed", "cancelled")
START_DAEMON = "Start it with `underpaint serve` in a terminal"


class UserError(Exception):
    """Something to show the user as a message (never a traceback)."""


class Canvas(Protocol):
    """The host image a job reads from and pastes into. Called on the host's main thread only."""

    def is_valid(self) -> bool: ...

    def size(self) -> tuple[int, int]: ...

    def selection(self) -> Bounds | None:
        """Bounds of the non-empty selection, or None."""

    def read_image(self, rect: Bounds) -> ImageData:
        """The merged visible image over ``rect`` as rgba8."""

    def read_mask(self, rect: Bounds) -> ImageData:
        """The (soft) selection over ``rect`` as gray8."""

    def anchor(self) -> Any:
        """Remember where results go: above the layer that is active now."""

    def begin_paste(self) -> None: ...

    def end_paste(self) -> None: ...

    def resize(self, width: int, height: int, offset_x: int, offset_y: int) -> None: ...

    def add_group(self, name: str, anchor: Any) -> Any: ...

    def add_layer(self, name: str, image: ImageData, x: int, y: int, anchor: Any, group: Any) -> Any: ...

    def flush(self) -> None: ...


@dataclass
class Request:
    """What the user asked for; ``mode`` None lets the selection decide (as in every host)."""

    prompt: str = ""
    negative_prompt: str = ""
    strength: float = 1.0
    seed: int | None = None
    batch: int = 1
    model: str | None = None
    mode: str | None = None
    extend: tuple[int, int, int, int] | None = None
    steps: int | None = None
    guidance: float | None = None


@dataclass
class Job:
    canvas: Canvas
    request: Request
    job: dict[str, Any]
    width: int
    height: int
    anchor: Any
    job_id: str | None = None
    seed: int | None = None
    state: str = "planning"
    """planning, uploading, queued, running, then finished, failed or cancelled."""
    position: int | None = None
    step: int = 0
    total: int = 0
    results: int = 0
    layers: list[Any] = field(default_factory=list)
    group: Any = None
    resized: bool = False
    error: str | None = None
    cancel_requested: bool = False
    placements: list[Any] = field(default_factory=list)

    @property
    def mode(self) -> str:
        return str(self.job["mode"])

    @property
    def batch(self) -> int:
        return int(self.job.get("batch", 1))

    @property
    def done(self) -> bool:
        return self.state in TERMINAL

    @property
    def fraction(self) -> float:
        if self.state == "finished":
            return 1.0
        steps = self.step / self.total if self.total else 0.0
        return min(1.0, max(steps, self.results / max(1, self.batch)))

    def describe(self) -> str:
        if self.state == "planning":
            return "planning…"
        if self.state == "uploading":
            return "sending the image…"
        if self.state == "queued":
            return f"queued (position {self.position})" if self.position else "queued"
        if self.state == "running":
            if self.total:
                return f"{self.mode}: step {self.step} of {self.total}"
            return f"{self.mode}: running"
        if self.state == "finished":
            return f"{self.mode}: done, {self.results} layer{'s' if self.results != 1 else ''}"
        if self.state == "failed":
            return f"{self.mode} failed: {self.error}"
        return f"{self.mode}: cancelled"


class Listener:
    """What the UI hears (on the main thread). The default does nothing; override what you need."""

    def state_changed(self, state: str, detail: str) -> None:
        pass

    def job_changed(self, job: Job) -> None:
        pass

    def preview(self, job: Job, image: ImageData) -> None:
        pass

    def error(self, text: str) -> None:
        pass


def friendly(error: BaseException, url: str = "") -> str:
    """A sentence for the user about a failure talking to the daemon."""
    if isinstance(error, UserError):
        return str(error)
    if isinstance(error, NotConnected):
        where = f" at {url}" if url else ""
        return f"The underpaint daemon is not running{where}. {START_DAEMON} (or check the server address)."
    if isinstance(error, DaemonError):
        if error.code == "unauthorized":
            return (
                f"The daemon{' at ' + url if url else ''} refused the token. "
                "Run `underpaint token` and paste what it prints into Token."
            )
        if error.code == "unsupported_protocol":
            return "This plug-in and the daemon speak different protocol versions: update both."
        return f"{error} ({error.code})"
    return f"{type(error).__name__}: {error}"


def group_name(job: Job) -> str:
    label = (job.request.prompt or job.mode).strip().replace("\n", " ")
    if len(label) > 60:
        label = label[:59] + "…"
    if job.seed is None:
        return label
    return f"{label} [seeds {job.seed}-{job.seed + job.batch - 1}]"


class Controller:
    def __init__(
        self,
        dispatch: Dispatch,
        listener: Listener | None = None,
        *,
        host: tuple[str, str] = ("gimp", ""),
        client_factory: Callable[..., UnderpaintClient] = UnderpaintClient,
    ) -> None:
        self.dispatch = dispatch
        self.listener = listener or Listener()
        self.host = host
        self.client_factory = client_factory
        self.client: UnderpaintClient | None = None
        self.url = ""
        self.token = ""
        self.welcome: dict[str, Any] | None = None
        self.state = "disconnected"
        self.detail = ""
        self.jobs: list[Job] = []
        self._by_id: dict[str, Job] = {}
        self._orphans: dict[str, list[Event]] = {}
        self._generation = 0
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- connection

    def connect(self, url: str, token: str = "", timeout: float = 10.0) -> dict[str, Any]:
        """Connect (blocking; the panel calls it from a worker thread). Raises UserError."""
        with self._lock:
            client = self.client
            if client is not None and client.connected and (url, token) == (self.url, self.token):
                assert client.welcome is not None
                return client.welcome
            self._generation += 1
            generation = self._generation
        return self._connect(url, token, timeout, generation)

    def _connect(self, url: str, token: str, timeout: float, generation: int) -> dict[str, Any]:
        probe(url)
        with self._lock:
            old, self.client = self.client, None
        if old is not None:
            old.close()
        client = self.client_factory(
            url,
            token=token or None,
            client_name="underpaint-gimp",
            client_version=VERSION,
            host=self.host,
            result_format="rgba8",
            previews=True,
            on_event=lambda event: self._post(lambda: self._handle(event)),
            on_state=lambda state, detail: self._post(lambda: self._client_state(generation, state, detail)),
        )
        try:
            welcome = client.connect(timeout)
        except Exception as error:
            client.close()
            raise UserError(friendly(error, url)) from None
        with self._lock:
            if generation != self._generation:  # the settings changed meanwhile
                client.close()
                raise UserError("the connection settings changed")
            self.client, self.url, self.token, self.welcome = client, url, token, welcome
        self._post(lambda: self._set_state("connected", f"Connected to {url}"))
        return welcome

    def connect_in_background(self, url: str, token: str = "", retry: float = 3.0) -> None:
        """Keep trying to connect until it works or the settings change (the panel's way)."""
        with self._lock:
            self._generation += 1
            generation = self._generation
        self.url, self.token = url, token

        def current() -> bool:
            with self._lock:
                return generation == self._generation

        def attempt() -> None:
            self._post(lambda: self._set_state("connecting", f"Connecting to {url}…"))
            while current():
                try:
                    self._connect(url, token, 4.0, generation)
                    return
                except UserError as error:
                    text = str(error)
                    if not current():
                        return
                    self._post(lambda text=text: self._set_state("disconnected", text))
                    if "token" in text or "protocol" in text:
                        return  # retrying cannot help
                time.sleep(retry)

        threading.Thread(target=attempt, name="underpaint-connect", daemon=True).start()

    def close(self) -> None:
        with self._lock:
            self._generation += 1
            client, self.client = self.client, None
        if client is not None:
            client.close()

    @property
    def connected(self) -> bool:
        return self.client is not None and self.client.connected

    def models(self) -> list[dict[str, Any]]:
        return list((self.welcome or {}).get("models", []))

    def default_model(self) -> str | None:
        value = (self.welcome or {}).get("default_model")
        return str(value) if value else None

    def _client_state(self, generation: int, state: str, detail: str) -> None:
        if generation != self._generation or self.client is None:
            return  # a client we already replaced
        if state == "connected":
            self._set_state("connected", f"Connected to {self.url}")
        elif state == "reconnecting":
            self._set_state("reconnecting", f"Lost the daemon at {self.url}; reconnecting…")
        else:
            self._set_state(
                "reconnecting",
                f"The underpaint daemon at {self.url} is not answering; retrying. {START_DAEMON} if it stopped.",
            )

    def _set_state(self, state: str, detail: str) -> None:
        self.state, self.detail = state, detail
        self.listener.state_changed(state, detail)

    # ---------------------------------------------------------------- jobs

    @property
    def active(self) -> list[Job]:
        return [job for job in self.jobs if not job.done]

    @property
    def busy(self) -> bool:
        return bool(self.active)

    def generate(self, canvas: Canvas, request: Request) -> Job:
        """Start a job on ``canvas`` (main thread). Raises UserError when it cannot start."""
        client = self.client
        if client is None or not client.connected:
            raise UserError(self.detail if self.state != "connected" and self.detail else friendly(NotConnected()))
        if not canvas.is_valid():
            raise UserError("The image is no longer open.")
        width, height = canvas.size()
        extend = request.extend if request.extend is not None and any(request.extend) else None
        if request.mode == "outpaint" and extend is None:
            raise UserError("Outpaint needs at least one side to expand by more than 0 pixels.")
        if any(value < 0 for value in extend or ()):
            raise UserError("Expand extents cannot be negative.")
        selection = None if extend is not None else canvas.selection()
        if request.mode == "inpaint" and selection is None:
            raise UserError("Select the area to inpaint first (any selection tool; soft edges are kept).")
        job_dict = build_job(
            width,
            height,
            selection,
            prompt=request.prompt,
            negative_prompt=request.negative_prompt,
            strength=request.strength,
            seed=request.seed,
            batch=request.batch,
            model=request.model or None,
            steps=request.steps,
            guidance=request.guidance,
            extend=extend,
            mode=request.mode,
        )
        job = Job(canvas, request, job_dict, width, height, canvas.anchor())
        self.jobs.append(job)
        self.listener.job_changed(job)
        self._in_background(lambda: self._chain(client.plan(job_dict), job, self._planned))
        return job

    def cancel(self, job: Job | None = None) -> None:
        for target in [job] if job is not None else self.active:
            if target.done:
                continue
            target.cancel_requested = True
            if target.job_id is not None and self.client is not None:
                client, job_id = self.client, target.job_id
                self._in_background(lambda client=client, job_id=job_id: _quietly(lambda: client.cancel(job_id)))
            elif target.state == "planning":
                self._end(target, "cancelled")

    def _planned(self, job: Job, planned: dict[str, Any]) -> None:
        if job.cancel_requested:
            return self._end(job, "cancelled")
        if not job.canvas.is_valid():
            return self._fail(job, "the image was closed")
        upload = Bounds(**{key: int(planned["upload"][key]) for key in ("x", "y", "width", "height")})
        image = mask = region = None
        if upload.width > 0 and upload.height > 0:
            region = upload.as_dict()
            image = job.canvas.read_image(upload)
            if "selection" in job.job:
                mask = job.canvas.read_mask(upload)
        job.state = "uploading"
        self.listener.job_changed(job)
        client = self.client
        if client is None:
            return self._fail(job, friendly(NotConnected(), self.url))
        self._in_background(lambda: self._chain(client.submit(job.job, region, image, mask), job, self._accepted))

    def _accepted(self, job: Job, accepted: dict[str, Any]) -> None:
        job_id = str(accepted["job_id"])
        job.job_id = job_id
        job.seed = int(accepted["seed"])
        job.state = "queued"
        self._by_id[job_id] = job
        self.listener.job_changed(job)
        if job.cancel_requested:
            self.cancel(job)
        for event in self._orphans.pop(job_id, []):
            self._handle(event)

    def _handle(self, event: Event) -> None:
        job_id = event.job_id
        if job_id is None:
            return
        job = self._by_id.get(job_id)
        if job is None:
            if event.type != "accepted":  # events can overtake the submit's answer; keep them
                self._orphans.setdefault(job_id, []).append(event)
            return
        if job.done:
            return
        message = event.message
        kind = event.type
        if kind == "queued":
            job.state, job.position = "queued", message.get("position")
        elif kind == "started":
            job.state = "running"
        elif kind == "progress":
            job.state = "running"
            job.step, job.total = int(message.get("step", 0)), int(message.get("total", 0))
            if event.image is not None:
                self.listener.preview(job, event.image)
        elif kind == "result":
            self._paste(job, event)
        elif kind == "finished":
            self._end(job, "finished")
            return
        elif kind == "failed":
            self._fail(job, f"{message.get('message', 'the job failed')} ({message.get('code', 'failed')})")
            return
        elif kind == "cancelled":
            self._end(job, "cancelled")
            return
        self.listener.job_changed(job)

    def _paste(self, job: Job, event: Event) -> None:
        if event.image is None:
            return
        canvas = job.canvas
        if not canvas.is_valid():
            job.error = "the image was closed before the result arrived"
            self.listener.error(f"underpaint: {job.error}.")
            return
        where = placement(event.message, job.width, job.height)
        image = event.image
        if (image.width, image.height) != (where.width, where.height):
            raise UserError(
                f"the daemon sent a {image.width}x{image.height} image for a {where.width}x{where.height} layer"
            )
        name = str(event.message["layer"].get("name") or group_name(job))
        canvas.begin_paste()
        try:
            if where.grows and not job.resized:
                canvas.resize(where.new_width, where.new_height, where.offset_x, where.offset_y)
                job.resized = True
            if job.batch > 1 and job.group is None:
                job.group = canvas.add_group(group_name(job), job.anchor)
            layer = canvas.add_layer(name, image, where.x, where.y, job.anchor, job.group)
        finally:
            canvas.end_paste()
        canvas.flush()
        job.layers.append(layer)
        job.placements.append(where)
        job.results += 1

    def _end(self, job: Job, state: str) -> None:
        if job.done:
            return
        job.state = state
        self.listener.job_changed(job)

    def _fail(self, job: Job, text: str) -> None:
        if job.done:
            return
        job.error = text
        job.state = "failed"
        self.listener.job_changed(job)
        self.listener.error(f"underpaint: {job.describe()}")

    # ---------------------------------------------------------------- plumbing

    def _post(self, fn: Callable[[], None]) -> None:
        self.dispatch(lambda: self._guard(fn))

    def _guard(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception as error:  # shown to the user, never a traceback in their face
            self.listener.error(f"underpaint: {friendly(error, self.url)}")

    def _chain(self, future: Future[Any], job: Job, then: Callable[[Job, Any], None]) -> None:
        def done(result: Future[Any]) -> None:
            error = result.exception()
            if error is not None:
                self._post(lambda: self._fail(job, friendly(error, self.url)))
            else:
                self._post(lambda: then(job, result.result()))

        future.add_done_callback(done)

    def _in_background(self, fn: Callable[[], None]) -> None:
        """Sends happen off the main thread so a slow socket never freezes the host."""

        def run() -> None:
            try:
                fn()
            except Exception as error:
                text = f"underpaint: {friendly(error, self.url)}"
                self._post(lambda: self.listener.error(text))

        threading.Thread(target=run, name="underpaint-send", daemon=True).start()


def probe(url: str, timeout: float = 2.0) -> None:
    """Fail at once (UserError) when nothing listens at ``url``, instead of retrying until a timeout."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise UserError(f"{url!r} is not a daemon address; it looks like ws://127.0.0.1:7860")
    try:
        port = parts.port or (443 if parts.scheme == "wss" else 80)
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            pass
    except (OSError, ValueError):
        raise UserError(friendly(NotConnected(), url)) from None


def _quietly(fn: Callable[[], None]) -> None:
    with contextlib.suppress(NotConnected, OSError):
        fn()


def wait_for(jobs: list[Job], pump: Callable[[float], bool], timeout: float) -> None:
    """Batch mode: run dispatched work on this (main) thread until ``jobs`` end.

    ``pump(seconds)`` runs queued work for at most that long and returns whether it ran any.
    Raises UserError on timeout.
    """
    deadline = time.monotonic() + timeout
    while not all(job.done for job in jobs):
        if time.monotonic() > deadline:
            raise UserError(f"the job did not finish within {timeout:g} s")
        pump(0.1)


def queue_pump(work: queue.Queue[Callable[[], None]]) -> Callable[[float], bool]:
    """A ``pump`` for :func:`wait_for` over the queue that ``dispatch`` (``work.put``) fills."""

    def pump(seconds: float) -> bool:
        try:
            fn = work.get(timeout=seconds)
        except queue.Empty:
            return False
        fn()
        while True:
            try:
                fn = work.get_nowait()
            except queue.Empty:
                return True
            fn()

    return pump
