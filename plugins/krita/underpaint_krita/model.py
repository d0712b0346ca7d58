"""The docker's state and behaviour, without widgets and without Qt.

``DockerModel`` holds what the docker shows (connection, models, queue, progress, preview, errors)
and does what its buttons do. Threads: the shared ``UnderpaintClient`` does all network I/O on its
own thread, and the few calls that send (plan, submit, cancel, close) run on one worker thread of
this model. Everything that comes back -- client events, state changes, finished futures -- is
handed to ``post``, which runs it on the UI thread (a queued Qt signal in Krita, a plain queue in
tests). So the model's state is only ever touched on the UI thread, and that thread never waits.
"""

from __future__ import annotations

import contextlib
import random
import traceback
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from underpaint_protocol.client import DaemonError, NotConnected, UnderpaintClient
from underpaint_protocol.jobs import build_job, choose_mode
from underpaint_protocol.session import Event, ImageData

from .glue import DocumentClosed, KritaGlue, Pasted, UserError

CLIENT_NAME = "underpaint-krita"
CLIENT_VERSION = "0.1.0"
DEFAULT_URL = "ws://127.0.0.1:7860"
TERMINAL = ("finished", "failed", "cancelled")
START_HINT = (
    "Start it in a terminal with `underpaint serve` (add `--model PATH` for a diffusion model), "
    "or check the address, then press Connect."
)


class Settings:
    """Remembered values (Krita: Krita.instance().readSetting/writeSetting in group 'underpaint')."""

    def __init__(self, read: Callable[[str, str], str], write: Callable[[str, str], None]) -> None:
        self._read, self._write = read, write

    def get(self, key: str, default: str = "") -> str:
        try:
            return str(self._read(key, default))
        except Exception:
            return default

    def set(self, key: str, value: str) -> None:
        with contextlib.suppress(Exception):
            self._write(key, value)


@dataclass
class JobEntry:
    """One line of the queue."""

    key: str  # job_id once accepted, a local ticket before
    prompt: str
    mode: str
    batch: int
    doc_key: str
    doc_name: str
    canvas: tuple[int, int]
    job: dict[str, Any]
    state: str = "planning"  # planning, uploading, queued, running, finished, failed, cancelled
    job_id: str | None = None
    seed: int | None = None
    position: int | None = None
    step: int = 0
    total: int = 0
    results: list[tuple[dict[str, Any], ImageData]] = field(default_factory=list)
    applied: int = 0
    pasting: bool = False
    pasted: list[Pasted] = field(default_factory=list)
    note: str = ""
    upload: dict[str, int] | None = None  # the region the daemon planned and the plugin read
    cancel_requested: bool = False

    @property
    def active(self) -> bool:
        return self.state not in TERMINAL

    @property
    def settled(self) -> bool:
        """Ended, and every result that came is pasted (or was dropped with a message)."""
        return not self.active and not self.pasting and self.applied == len(self.results)

    def label(self) -> str:
        text = self.prompt or "(no prompt)"
        where = f" #{self.position}" if self.state == "queued" and self.position else ""
        progress = f" {self.step}/{self.total}" if self.state == "running" and self.total else ""
        seed = f" seed {self.seed}" if self.seed is not None else ""
        note = f" - {self.note}" if self.note else ""
        return f"[{self.state}{where}{progress}] {self.mode}: {text[:40]}{seed}{note}"


class DockerModel:
    def __init__(
        self,
        glue: KritaGlue,
        post: Callable[[Callable[[], None]], None],
        settings: Settings,
        *,
        host: tuple[str, str] = ("krita", ""),
        client_factory: Callable[..., UnderpaintClient] = UnderpaintClient,
        connect_timeout: float = 5.0,
    ) -> None:
        self.glue = glue
        self.post = post
        self.settings = settings
        self.host = host
        self.client_factory = client_factory
        self.connect_timeout = connect_timeout
        self._listeners: list[Callable[[], None]] = []
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="underpaint-send")
        self.client: UnderpaintClient | None = None
        self._generation = 0
        self._tickets = 0
        self._early: dict[str, list[Event]] = {}
        # what the user set
        self.url = settings.get("url", DEFAULT_URL) or DEFAULT_URL
        self.token = settings.get("token", "")
        self.model_id = settings.get("model", "")
        self.prompt = ""
        self.negative_prompt = ""
        self.strength = 1.0
        self.steps = 0  # 0: the model's default
        self.seed_random = True
        self.seed = 0
        self.batch = 1
        self.extend = (0, 0, 0, 0)
        # what the docker shows
        self.connection = "disconnected"  # disconnected, connecting, connected, reconnecting
        self.status = f"Not connected. {START_HINT}"
        self.error = ""
        self.models: list[dict[str, Any]] = []
        self.max_batch = 16
        self.jobs: list[JobEntry] = []
        self.preview: ImageData | None = None
        self.progress: tuple[int, int] = (0, 0)

    # ---------------------------------------------------------------- observing

    def subscribe(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def changed(self) -> None:
        for listener in list(self._listeners):
            try:
                listener()
            except Exception:
                traceback.print_exc()

    def show_error(self, message: str) -> None:
        self.error = message
        self.changed()

    def job(self, key: str) -> JobEntry | None:
        return next((entry for entry in self.jobs if entry.key == key or entry.job_id == key), None)

    @property
    def busy(self) -> bool:
        return any(entry.active for entry in self.jobs)

    def mode_hint(self) -> str:
        """The mode Generate would use now (for the docker's label)."""
        try:
            snap = self.glue.snapshot()
        except UserError:
            return ""
        return choose_mode(snap.width, snap.height, snap.selection, self.strength)

    # ---------------------------------------------------------------- threads

    def _send(self, call: Callable[[], Any], then: Callable[[Future[Any]], None]) -> None:
        """Run ``call`` on the worker; ``then(future)`` runs on the UI thread when its future is done.

        ``call`` either returns a Future (a client request) or a plain value."""

        def on_worker() -> None:
            try:
                outcome = call()
            except Exception as error:
                failed: Future[Any] = Future()
                failed.set_exception(error)
                self.post(lambda: then(failed))
                return
            if isinstance(outcome, Future):
                outcome.add_done_callback(lambda done: self.post(lambda: then(done)))
            else:
                finished: Future[Any] = Future()
                finished.set_result(outcome)
                self.post(lambda: then(finished))

        self._worker.submit(on_worker)

    # ---------------------------------------------------------------- connection

    def connect(self) -> None:
        """(Re)connect with the address and token in the fields; remembers them."""
        self.settings.set("url", self.url)
        self.settings.set("token", self.token)
        old, self.client = self.client, None
        self._generation += 1
        generation = self._generation

        def on_event(event: Event) -> None:  # client thread
            self.post(lambda: self._on_event(generation, event))

        def on_state(state: str, detail: str) -> None:  # client thread
            self.post(lambda: self._on_state(generation, state, detail))

        client = self.client_factory(
            self.url.strip(),
            token=self.token.strip() or None,
            client_name=CLIENT_NAME,
            client_version=CLIENT_VERSION,
            host=self.host,
            result_format="bgra8",
            previews=True,
            on_event=on_event,
            on_state=on_state,
        )
        self.connection = "connecting"
        self.status = f"Connecting to {self.url} ..."
        self.error = ""
        self.changed()

        def open_client() -> dict[str, Any]:
            if old is not None:
                old.close()
            return client.connect(timeout=self.connect_timeout)

        self._send(open_client, lambda done: self._connected(generation, client, done))

    def _connected(self, generation: int, client: UnderpaintClient, done: Future[Any]) -> None:
        if generation != self._generation:
            return
        error = done.exception()
        if error is None:
            self.client = client
            self._welcome(done.result())
            return
        self.connection = "disconnected"
        if isinstance(error, DaemonError) and error.code == "unauthorized":
            self.status = (
                "The daemon refused the token. Paste the one `underpaint token` prints into Token, then Connect."
            )
        elif isinstance(error, DaemonError):
            self.status = f"The daemon refused the connection: {error}"
        else:
            self.status = f"The underpaint daemon is not running at {self.url} ({error}). {START_HINT}"
        self.changed()

    def _welcome(self, welcome: dict[str, Any]) -> None:
        self.connection = "connected"
        self.models = list(welcome.get("models", []))
        self.max_batch = int(welcome.get("limits", {}).get("max_batch", 16))
        ids = [str(m.get("id")) for m in self.models]
        if self.model_id not in ids:
            self.model_id = str(welcome.get("default_model") or (ids[0] if ids else ""))
        server = welcome.get("server", {})
        self.status = f"Connected to {server.get('name', 'underpaint')} {server.get('version', '')} at {self.url}"
        self.changed()

    def _on_state(self, generation: int, state: str, detail: str) -> None:
        if generation != self._generation or self.client is None:
            return  # the first connect reports through _connected
        if state == "connected":
            welcome = self.client.welcome or {}
            self._welcome(welcome)
            return
        if state == "reconnecting":
            self.connection = "reconnecting"
            self.status = (
                "Connection to the daemon lost; reconnecting. Running jobs go on in the daemon and "
                "their results are fetched when it is back."
            )
        else:
            self.connection = "reconnecting"
            self.status = f"The daemon at {self.url} is not reachable ({detail}); retrying. {START_HINT}"
        self.changed()

    def close(self, wait: bool = False) -> None:
        """Krita is quitting: drop the connection (without waiting on the UI thread unless ``wait``)."""
        self._generation += 1
        client, self.client = self.client, None
        if client is not None:
            self._worker.submit(client.close)
        self._worker.shutdown(wait=wait)

    # ---------------------------------------------------------------- generating

    def set_model(self, model_id: str) -> None:
        self.model_id = model_id
        self.settings.set("model", model_id)

    def generate(self, expand: bool = False) -> JobEntry | None:
        """Start a job from the active document and the fields (the Generate / Expand buttons)."""
        self.error = ""
        client = self.client
        if client is None or self.connection != "connected":
            self.show_error(f"Not connected to the daemon. {START_HINT}")
            return None
        try:
            snap = self.glue.snapshot()
        except UserError as error:
            self.show_error(str(error))
            return None
        extend = self.extend if expand else None
        if expand and not any(self.extend):
            self.show_error("Set how many pixels to add on at least one side, then Expand.")
            return None
        seed = random.randrange(0, 2**31) if self.seed_random else int(self.seed)
        job = build_job(
            snap.width,
            snap.height,
            snap.selection,
            prompt=self.prompt,
            negative_prompt=self.negative_prompt,
            strength=float(self.strength),
            seed=seed,
            batch=int(self.batch),
            model=self.model_id or None,
            steps=int(self.steps) or None,
            extend=extend,
        )
        self._tickets += 1
        entry = JobEntry(
            key=f"local-{self._tickets}",
            prompt=self.prompt,
            mode=str(job["mode"]),
            batch=int(self.batch),
            doc_key=snap.key,
            doc_name=snap.name,
            canvas=(snap.width, snap.height),
            job=job,
            seed=seed,
        )
        self.jobs.append(entry)
        self.changed()
        self._send(lambda: client.plan(job), lambda done: self._planned(client, entry, done))
        return entry

    def _fail(self, entry: JobEntry, message: str) -> None:
        entry.state = "failed"
        entry.note = message
        self.error = message
        self.changed()

    def _planned(self, client: UnderpaintClient, entry: JobEntry, done: Future[Any]) -> None:
        error = done.exception()
        if error is not None:
            self._fail(entry, _describe(error))
            return
        if entry.cancel_requested:
            entry.state = "cancelled"
            self.changed()
            return
        planned = done.result()
        upload = planned["upload"]
        region = image = mask = None
        try:
            if self.glue.size(entry.doc_key) != entry.canvas:
                raise UserError("the image was resized before the job was sent; Generate again")
            if upload["width"] > 0 and upload["height"] > 0:
                region = {k: int(upload[k]) for k in ("x", "y", "width", "height")}
                image = self.glue.read_image(entry.doc_key, region)
                if "selection" in entry.job:
                    mask = self.glue.read_mask(entry.doc_key, region)
        except UserError as failure:
            self._fail(entry, str(failure))
            return
        except Exception as failure:  # a Krita API surprise: show it, never a traceback dialog
            traceback.print_exc()
            self._fail(entry, f"could not read the image from Krita: {failure}")
            return
        entry.state = "uploading"
        entry.upload = region
        self.changed()
        job = entry.job
        self._send(lambda: client.submit(job, region, image, mask), lambda done: self._accepted(client, entry, done))

    def _accepted(self, client: UnderpaintClient, entry: JobEntry, done: Future[Any]) -> None:
        error = done.exception()
        if error is not None:
            self._fail(entry, _describe(error))
            return
        accepted = done.result()
        entry.job_id = str(accepted["job_id"])
        entry.key = entry.job_id
        entry.seed = int(accepted.get("seed", entry.seed or 0))
        if entry.state == "uploading":
            entry.state = "queued"
        if entry.cancel_requested:
            self._send(lambda: client.cancel(entry.key), self._ignore)
        self.changed()
        for event in self._early.pop(entry.job_id, []):
            self._handle(entry, event)

    @staticmethod
    def _ignore(done: Future[Any]) -> None:
        done.exception()

    def cancel(self, key: str | None = None) -> None:
        """Cancel one job (the queue's selection) or, without ``key``, every job still running."""
        entries = [e for e in self.jobs if e.active and (key is None or key in (e.key, e.job_id))]
        client = self.client
        for entry in entries:
            entry.cancel_requested = True
            if entry.job_id is not None and client is not None:
                job_id = entry.job_id
                self._send(lambda job_id=job_id: client.cancel(job_id), self._cancel_sent)  # type: ignore[misc]
        self.changed()

    def _cancel_sent(self, done: Future[Any]) -> None:
        error = done.exception()
        if error is not None:
            self.show_error(f"Cancel did not reach the daemon: {_describe(error)}")

    # ---------------------------------------------------------------- events (UI thread)

    def _on_event(self, generation: int, event: Event) -> None:
        if generation != self._generation:
            return
        if event.type == "error":
            if event.message.get("request_id") is None:  # answers to requests go to their futures
                self.show_error(_describe(DaemonError(event.message)))
            return
        job_id = event.job_id
        if job_id is None:
            return
        entry = self.job(job_id)
        if entry is None:
            if event.type != "accepted":
                self._early.setdefault(job_id, []).append(event)
            return
        self._handle(entry, event)

    def _handle(self, entry: JobEntry, event: Event) -> None:
        kind, message = event.type, event.message
        if kind == "queued":
            entry.state, entry.position = "queued", message.get("position")
        elif kind == "started":
            entry.state = "running"
        elif kind == "progress":
            entry.state = "running"
            entry.step, entry.total = int(message.get("step", 0)), int(message.get("total", 0))
            self.progress = (entry.step, entry.total)
            if event.image is not None:
                self.preview = event.image
        elif kind == "result" and event.image is not None:
            entry.results.append((message, event.image))
            if len(entry.results) >= entry.batch:
                self._paste(entry)
        elif kind in TERMINAL:
            entry.state = kind
            self._paste(entry)
            if kind == "failed":
                self.error = f"The job failed: {message.get('message', '')} ({message.get('code', '')})"
                entry.note = str(message.get("code", "failed"))
            if not self.busy:
                self.progress, self.preview = (0, 0), None
        self.changed()

    def _paste(self, entry: JobEntry) -> None:
        """Paste the results not pasted yet (a batch waits for all items: one group, one undo step).

        Krita's waitForDone() inside a paste may run queued callbacks (this one again, for the
        job's `finished`): ``entry.pasting`` keeps that from pasting twice, and the loop picks up
        results that arrived meanwhile."""
        if entry.pasting:
            return
        entry.pasting = True
        try:
            while len(entry.results) > entry.applied:
                todo = entry.results[entry.applied :]
                self._paste_items(entry, todo)
                entry.applied += len(todo)
        finally:
            entry.pasting = False

    def _paste_items(self, entry: JobEntry, todo: list[tuple[dict[str, Any], ImageData]]) -> None:
        seeds = [int(message.get("params", {}).get("seed", 0)) for message, _ in todo]
        name = entry.prompt or entry.mode
        group = f"{name[:60]} [seeds {seeds[0]}-{seeds[-1]}]" if len(seeds) > 1 else name
        try:
            entry.pasted += self.glue.apply(entry.doc_key, entry.canvas, todo, group)
        except DocumentClosed:
            outputs = [str(message.get("output")) for message, _ in todo if message.get("output")]
            where = f" They are saved in {', '.join(outputs)}." if outputs else ""
            entry.note = "document closed"
            self.error = f"The document of this job was closed; its results were not pasted.{where}"
        except UserError as error:
            entry.note = "not pasted"
            self.error = str(error)
        except Exception as error:
            traceback.print_exc()
            entry.note = "not pasted"
            self.error = f"Could not paste the result: {error}"


def _describe(error: BaseException) -> str:
    if isinstance(error, DaemonError):
        field = f" ({error.field})" if error.field else ""
        return f"The daemon refused the job: {error}{field} [{error.code}]"
    if isinstance(error, NotConnected):
        return f"Lost the connection to the daemon: {error}"
    return f"{type(error).__name__}: {error}"
