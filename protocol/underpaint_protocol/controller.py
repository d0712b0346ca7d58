"""A job's whole client-side life, once for every host: connect, plan, read, submit, follow, paste.

A host (the Krita docker, the GIMP panel and procedures, the CLI) implements :class:`Host` and
:class:`Canvas` -- canvas size and selection, read a region's pixels and mask, grow the canvas, paste
layers or a group, redraw -- and hands user actions to :class:`Controller`. Everything else lives
here: connection state and the sentence that explains it, building the job from what the user did
(``jobs.build_job``), plan -> read exactly the planned region -> submit, routing of accepted / queued
/ progress / result / end, cancel at any point (before ``accepted`` too), reconnect and catch-up
(the client's), batch group names, and the wording of every error.

Threads: the controller's state is only touched on the host's UI thread. Network I/O happens on the
client's threads (one receiving, one sending: the one ordered send path); whatever they report is
handed to ``post``, which the host makes run on its UI thread (a queued Qt signal, ``GLib.idle_add``,
or :class:`WorkQueue` for scripts). Connecting, the only call that waits, runs on a short-lived
thread. So the state machine runs without sockets in tests: give it a fake client and an inline
``post``. Standard library and ``websockets`` only; Python 3.10+.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import queue
import threading
import time
import urllib.parse
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from underpaint_protocol.client import DaemonError, NotConnected, UnderpaintClient
from underpaint_protocol.constants import (
    DEFAULT_PORT,
    DEFAULT_URL,
    GENERATE_MODES,
    RECONNECT_DELAYS,
    TERMINAL_STATES,
)
from underpaint_protocol.errors import user_text
from underpaint_protocol.guides import (
    ControlLayer,
    LayerCanvas,
    ReferenceImage,
    add_guides,
    guide_problem,
    read_guides,
)
from underpaint_protocol.jobs import Bounds, build_job, placement
from underpaint_protocol.library import Library, read_for_interrogation
from underpaint_protocol.live import LiveCanvas, LiveRequest, LiveSession
from underpaint_protocol.live import crop as _crop
from underpaint_protocol.panel import elapsed_text, ignored_fields, seed_problem, thumbnail
from underpaint_protocol.segment import (
    SegmentRequest,
    SelectionCanvas,
    build_segment_job,
    segment_mask,
    segment_models,
)
from underpaint_protocol.segment import problem as segment_problem
from underpaint_protocol.session import Event, ImageData
from underpaint_protocol.upscale import (
    UPSCALE_MODES,
    TileLanding,
    TileSet,
    TileThumbnail,
    UpscaleRequest,
    tile_text,
    whole_message,
)

CONNECTION_STATES = ("disconnected", "connecting", "connected", "reconnecting", "refused")
"""``refused``: something answered but retrying cannot help (token, protocol, another program)."""
JOB_STATES = ("planning", "uploading", "submitted", "queued", "running", "finished", "failed", "cancelled")
"""planning: plan sent; uploading: the planned region read, its frames being sent; submitted: sent,
waiting for ``accepted``; then the daemon's states."""

Post = Callable[[Callable[[], None]], None]

MODE_WORDS = {
    "inpaint": "inpaint the selection",
    "outpaint": "expand the canvas",
    "img2img": "refine the whole image",
    "txt2img": "paint a new image",
    "segment": "select an object",
    "upscale": "upscale",
    "refine_upscale": "upscale and refine",
    "restore": "restore the faces in the selection",
}


class UserError(Exception):
    """Something to tell the user as it is (never a traceback)."""


class CanvasClosed(UserError):
    """The image a job belongs to is no longer open."""


@dataclass(frozen=True)
class NewLayer:
    """One layer to paste: its pixels and where they go in the (possibly grown) canvas."""

    name: str
    image: ImageData
    x: int
    y: int
    visible: bool = True


class Canvas(Protocol):
    """One open image of the host: what a job reads from and pastes into. Called on the UI thread."""

    def is_open(self) -> bool: ...

    def size(self) -> tuple[int, int]: ...

    def selection(self) -> Bounds | None:
        """Bounds of the non-empty selection, or None."""

    def read_image(self, rect: Bounds) -> ImageData:
        """The merged visible image over ``rect`` (in the result format the host asked for)."""

    def read_mask(self, rect: Bounds) -> ImageData:
        """The soft selection over ``rect`` as gray8."""

    def grow(self, width: int, height: int, offset_x: int, offset_y: int) -> None:
        """Resize the canvas; the old image's top-left lands at (offset_x, offset_y)."""

    def paste(self, layers: list[NewLayer], group: str | None) -> list[Any]:
        """Add ``layers`` above the active layer (inside a new group ``group`` when given, first layer
        on top) as one undo step; returns the host's new layer objects."""


@runtime_checkable
class PreviewCanvas(Canvas, Protocol):
    """A canvas that can show results before they land (``Controller.land_directly`` False)."""

    def show_preview(self, layer: NewLayer, handle: Any | None) -> Any:
        """Show ``layer`` in the ONE preview layer (made when ``handle`` is None, else refilled in place,
        adding no undo step); returns the preview layer's handle."""

    def end_preview(self, handle: Any, keep: NewLayer | None) -> list[Any]:
        """Discard the preview (``keep`` None) or turn it into the normal result layer ``keep``; either
        is one undo step. Returns the kept layer's handle (empty on discard)."""


@runtime_checkable
class ScalableCanvas(Canvas, Protocol):
    """A canvas that can be scaled as a whole: needed for ``upscale`` and ``refine_upscale``."""

    def scale(self, width: int, height: int) -> None:
        """Scale the whole image (every layer, selection and guides) to ``width`` x ``height`` as one
        undo step; the upscale's result layer is pasted over it next."""


@runtime_checkable
class TileCanvas(ScalableCanvas, Protocol):
    """A canvas that takes an upscale's result tiles as they arrive, into one layer kept out of the image
    until the last tile: the client then holds one tile at a time, never the whole layer (a 16384 x
    16384 result is 1 GiB of RGBA). Without it the controller joins the tiles first (``TileSet``)."""

    def begin_layer(self, name: str, rect: Bounds) -> Any:
        """A new empty layer covering ``rect`` of the SCALED canvas, not in the image yet (no undo step);
        returns its handle."""

    def paste_tile(self, handle: Any, tile: NewLayer) -> None:
        """Write one tile's pixels into the layer, at (``tile.x``, ``tile.y``) of the scaled canvas."""

    def end_layer(self, handle: Any, keep: bool) -> list[Any]:
        """``keep``: add the filled layer above the active layer as one undo step (a job has scaled the
        document just before; a history re-apply scales nothing) and return its handle; else drop it
        (a cancelled or failed job, a lost re-apply), leaving no trace."""


class Host(Protocol):
    """The host program, as the controller sees it."""

    def canvas(self) -> Canvas:
        """The image Generate works on now; raises UserError when there is none it can use."""

    def show(self, controller: Controller) -> None:
        """The controller's state changed: redraw (UI thread)."""


@dataclass
class Request:
    """What the user asked for. ``mode`` None lets the selection decide; ``seed`` and ``strength`` None:
    the daemon picks (a random seed, the mode's default strength)."""

    prompt: str = ""
    negative_prompt: str = ""
    strength: float | None = 1.0
    seed: int | None = None
    batch: int = 1
    model: str | None = None
    steps: int | None = None
    guidance: float | None = None
    extend: tuple[int, int, int, int] | None = None
    mode: str | None = None
    upscale: UpscaleRequest | None = None
    """For ``mode`` "upscale" / "refine_upscale": the factor (and the upscaler for refine_upscale)."""
    style: str | None = None
    """A style by name (the daemon's styles, see ``library``)."""
    controls: tuple[ControlLayer, ...] = ()
    """Layers used as control layers (the canvas must be a ``guides.LayerCanvas``)."""
    references: tuple[ReferenceImage, ...] = ()
    """Layers or files used as reference images."""


@dataclass
class Result:
    message: dict[str, Any]
    image: ImageData
    thumbnail_only: bool = False
    """``image`` is only a thumbnail: a history upscale's layer is never held whole in the client;
    ``Controller.reapply`` streams its tiles from the daemon again."""

    @property
    def seed(self) -> int | None:
        """The seed that made exactly this image (a batch's items differ), for show and lock."""
        value = self.message.get("params", {}).get("seed")
        return int(value) if value is not None else None


@dataclass
class Plan:
    """What Generate would do now: ``sentence`` for the panel; ``refusal`` (what to do instead) when it
    would be refused, said before anything is sent."""

    sentence: str
    refusal: str | None = None
    mode: str | None = None


@dataclass
class Staged:
    """The results of one job shown one at a time in the preview layer, waiting for Apply or Discard."""

    job: Job
    index: int = 0
    handle: Any = None


@dataclass
class HistoryItem:
    """One finished job of this client id (this session, an earlier one, or the CLI): the daemon's
    ``jobs`` summary, plus its results and thumbnails once fetched."""

    summary: dict[str, Any]
    results: list[Result] = field(default_factory=list)
    thumbnails: list[ImageData] = field(default_factory=list)
    fetching: bool = False
    """A fetch of this job is under way: for the thumbnails, or a re-apply streaming an upscale."""
    partial: TileThumbnail | None = None
    """An upscale's thumbnail while its tiles arrive."""
    reapplying: str = ""
    """While a re-apply streams an upscale: "re-applying tile k of n", for the row."""

    @property
    def job_id(self) -> str:
        return str(self.summary["job_id"])

    def label(self) -> str:
        """A history row: mode, model, prompt, seed."""
        prompt = (str(self.summary.get("prompt") or "") or "(no prompt)").replace("\n", " ")[:40]
        seed = self.results[0].seed if self.results else None
        return (
            f"{self.summary.get('mode')} · {self.summary.get('model')} · {prompt}"
            + (f" · seed {seed}" if seed is not None else "")
            + (f" · {self.reapplying}" if self.reapplying else "")
        )


@dataclass
class Job:
    """One job as this client sees it (a row of a host's queue)."""

    ticket: int
    canvas: Canvas
    request: Request
    spec: dict[str, Any]
    """The protocol's ``job`` object."""
    size: tuple[int, int]
    """The canvas size when the job was made: results are placed relative to it."""
    state: str = "planning"
    job_id: str | None = None
    seed: int | None = None
    position: int | None = None
    step: int = 0
    total: int = 0
    upload: Bounds | None = None
    results: list[Result] = field(default_factory=list)
    applied: int = 0
    """How many results were handled (pasted, or dropped with a message)."""
    pasted: list[NewLayer] = field(default_factory=list)
    handles: list[Any] = field(default_factory=list)
    error: str = ""
    note: str = ""
    cancel_requested: bool = False
    grown: bool = False
    offset: tuple[int, int] = (0, 0)
    """Where the old canvas's top-left landed when an outpaint grew it."""
    pasting: bool = False
    tiles: TileSet = field(default_factory=TileSet)
    """An upscale's tiles until the whole layer is here (then it becomes one of ``results``): for a
    canvas that is no ``TileCanvas``."""
    landing: TileLanding | None = None
    """An upscale going into a ``TileCanvas``'s layer tile by tile (its pixels never join ``results``)."""
    tile_progress: dict[str, Any] | None = None
    """The last ``progress.tile`` of an upscale: which tile of which pass."""
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None
    segment: SegmentRequest | None = None
    """Set for a segment job: its result becomes the selection, not a layer."""

    @property
    def mode(self) -> str:
        return str(self.spec["mode"])

    @property
    def batch(self) -> int:
        return int(self.spec.get("batch", 1))

    @property
    def done(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def settled(self) -> bool:
        """Ended, and every result that came was pasted (or dropped with a message)."""
        return self.done and not self.pasting and self.applied == len(self.results)

    @property
    def fraction(self) -> float:
        if self.state == "finished":
            return 1.0
        steps = self.step / self.total if self.total else 0.0
        return min(1.0, (len(self.results) + steps) / max(1, self.batch))

    def describe(self) -> str:
        """One line about where the job is, for a status line or a queue row."""
        if self.cancel_requested and not self.done:
            return f"{self.mode}: cancelling…"
        if self.state == "planning":
            return f"{self.mode}: planning…"
        if self.state == "uploading":
            return f"{self.mode}: sending the image…"
        if self.state == "submitted":
            return f"{self.mode}: sent, waiting for the daemon…"
        if self.state == "queued":
            return f"{self.mode}: queued (position {self.position})" if self.position else f"{self.mode}: queued"
        if self.state == "running":
            image = f", image {len(self.results) + 1} of {self.batch}" if self.batch > 1 else ""
            if self.tile_progress is not None:
                return f"{self.mode}: {tile_text(self.tile_progress, self.mode)}"
            unit = "tile" if self.mode == "upscale" else "step"
            return f"{self.mode}: {unit} {self.step} of {self.total}{image}" if self.total else f"{self.mode}: running"
        if self.state == "finished" and self.segment is not None:
            return f"{self.mode}: done, selection {self.segment.combine}" + (f" ({self.note})" if self.note else "")
        if self.state == "finished":
            count = len(self.pasted) + (1 if self.landing is not None and self.landing.landed else 0)
            return f"{self.mode}: done, {count} layer{'s' if count != 1 else ''}" + (
                f" ({self.note})" if self.note else ""
            )
        if self.state == "failed":
            return f"{self.mode} failed: {self.error}"
        return f"{self.mode}: cancelled" + (f" ({self.note})" if self.note else "")

    def progress_text(self, now: float | None = None) -> str:
        """The progress line: step count, "image k of n", elapsed time; "done" after success."""
        elapsed = elapsed_text((self.ended if self.ended is not None else now or time.monotonic()) - self.started)
        if self.state == "running":
            if self.tile_progress is not None:
                parts = [tile_text(self.tile_progress, self.mode)]
            else:
                parts = [f"step {self.step} of {self.total}" if self.total else "starting"]
            if self.batch > 1:
                parts.append(f"image {min(len(self.results) + 1, self.batch)} of {self.batch}")
            return ", ".join(parts) + f", {elapsed}"
        if self.state == "finished":
            return f"done in {elapsed}"
        return (
            f"{self.describe()} ({elapsed})" if self.state in ("queued", "submitted", "uploading") else self.describe()
        )

    def label(self) -> str:
        """A queue row: what, for which prompt, with which seed."""
        prompt = (self.request.prompt or "(no prompt)").replace("\n", " ")[:40]
        seed = f" seed {self.seed}" if self.seed is not None else ""
        return f"{self.describe()} - {prompt}{seed}"


def group_name(job: Job, results: list[Result]) -> str:
    """The name of a batch's group: the prompt (or mode) and the seeds it holds."""
    label = (job.request.prompt or job.mode).strip().replace("\n", " ")
    if len(label) > 60:
        label = label[:59] + "…"
    seeds = [int(r.message.get("params", {}).get("seed", -1)) for r in results]
    if not seeds or min(seeds) < 0:
        return label
    return f"{label} [seeds {seeds[0]}-{seeds[-1]}]"


# ---------------------------------------------------------------------------------- wording


def start_hint(url: str) -> str:
    """How to start the daemon so that it answers at ``url``."""
    try:
        port = urllib.parse.urlsplit(url).port
    except ValueError:
        port = None
    command = "underpaint serve" + (f" --port {port}" if port not in (None, DEFAULT_PORT) else "")
    return f"Start it with `{command}` in a terminal (add `--model PATH` for a diffusion model), then press Connect."


def address_problem(url: str) -> str | None:
    """Why ``url`` cannot be a daemon's address, said at once (None when it can be)."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return f"{url!r} is not a daemon address; it looks like {DEFAULT_URL}."
    if parts.scheme in ("http", "https"):
        fixed = urllib.parse.urlunsplit(("ws" if parts.scheme == "http" else "wss", *parts[1:]))
        return f"{url} is a web address; the daemon's address starts with ws:// ({fixed})."
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        return f"{url!r} is not a daemon address; it looks like {DEFAULT_URL}."
    return None


def describe(error: BaseException, url: str = "") -> str:
    """A sentence for the user about any failure talking to the daemon."""
    if isinstance(error, UserError):
        return str(error)
    if isinstance(error, DaemonError):
        return user_text(error.code, str(error), error.field if isinstance(error.field, str) else None)
    if isinstance(error, NotConnected):
        where = urllib.parse.urlsplit(url).netloc or url
        reason = error.reason
        if reason == "not_running":
            return f"The underpaint daemon is not running at {url}. {start_hint(url)}"
        if reason == "bad_address":
            return address_problem(url) or f"{url!r} is not a daemon address; it looks like {DEFAULT_URL}."
        if reason == "web_server":
            program = f"{error.server}, " if error.server else ""
            return (
                f"{where} answers as a web server ({program}HTTP {error.status}), not underpaint: another "
                "program uses this port (A1111, Forge and Gradio apps use 7860, ComfyUI 8188). Start underpaint "
                f"on a free port (`underpaint serve` uses {DEFAULT_PORT}) and put its address here."
            )
        if reason == "not_underpaint":
            return f"{where} answers, but not as an underpaint daemon. Check the address. {start_hint(url)}"
        if reason == "timeout":
            return f"No answer from {url}. Check the address; {start_hint(url)}"
        if reason == "unreachable":
            return f"Cannot reach {url} ({error}). Check the address."
        return "Lost the connection to the daemon."
    return f"Unexpected {type(error).__name__}: {error}"


def _refuses_for_good(error: BaseException) -> bool:
    if isinstance(error, NotConnected):
        return error.reason not in NotConnected.RETRYABLE
    return isinstance(error, DaemonError)


# ---------------------------------------------------------------------------------- controller


@dataclass
class Restream:
    """A history upscale re-applied: its tiles streamed from the daemon again into one layer of
    ``canvas`` (a ``TileCanvas``), or joined first for a canvas that is none."""

    item: HistoryItem
    canvas: Canvas
    name: str
    rect: Bounds
    """Where the whole layer lands in the canvas."""
    shift: tuple[int, int]
    """Added to each tile's position (scaled-canvas coordinates) to land it in ``rect``."""
    landing: TileLanding | None = None
    """The ``TileCanvas`` layer the tiles go into."""
    tiles: TileSet = field(default_factory=TileSet)
    """The tiles to join, for a canvas that is no ``TileCanvas``."""
    landed: bool = False
    dropped: bool = False
    """Given up (the image closed, a host call failed): the rest of the stream is let pass."""


class Controller:
    def __init__(
        self,
        host: Host,
        post: Post,
        *,
        client_name: str,
        client_version: str = "",
        host_info: tuple[str, str] | None = None,
        result_format: str = "rgba8",
        previews: bool = True,
        client_factory: Callable[..., UnderpaintClient] = UnderpaintClient,
        connect_timeout: float = 5.0,
        land_directly: bool = True,
        client_id: str | None = None,
    ) -> None:
        """``land_directly`` False: results go to the preview layer first (Apply / Discard); panels
        offer it as a setting. ``client_id``: the identity a host remembers across restarts, so that
        its history (``refresh_history``) holds earlier sessions' results; None lets the daemon pick."""
        self.host = host
        self.post = post
        self.client_name = client_name
        self.client_version = client_version
        self.host_info = host_info
        self.result_format = result_format
        self.previews = previews
        self.client_factory = client_factory
        self.connect_timeout = connect_timeout
        self.land_directly = land_directly
        self.client_id = client_id
        self.client: UnderpaintClient | None = None
        self.url = DEFAULT_URL
        self.token = ""
        self.connection = "disconnected"
        self.status = f"Not connected. {start_hint(DEFAULT_URL)}"
        self.error = ""
        self.welcome: dict[str, Any] = {}
        self.jobs: list[Job] = []
        self.preview: ImageData | None = None
        self.progress: tuple[int, int] = (0, 0)
        self._by_id: dict[str, Job] = {}
        self._early: dict[str, list[Event]] = {}
        self._generation = 0
        self._tickets = 0
        self.staged: Staged | None = None
        self.history: list[HistoryItem] = []
        self._fetching: dict[str, Callable[[Event | None], None]] = {}
        """Job id -> what takes the events of a history fetch (None: the connection was lost)."""
        self.live = LiveSession()
        """Live painting (``start_live``, ``feed_live``, ``apply_live``, ``stop_live``; see ``live.py``)."""

    # ---------------------------------------------------------------- what hosts read

    @property
    def models(self) -> list[dict[str, Any]]:
        """The models Generate can use: those that make images (segment models are in ``segment_models``,
        upscalers and restorers in ``every_model``, for the sections that pick them by mode)."""
        return [m for m in self.every_model if any(mode in GENERATE_MODES for mode in m.get("modes", []))]

    @property
    def every_model(self) -> list[dict[str, Any]]:
        """Every model the daemon serves, as ``welcome`` lists them."""
        return list(self.welcome.get("models", []))

    @property
    def segment_models(self) -> list[dict[str, Any]]:
        """The models that select objects, each with its ``segment_inputs`` (box, points, mask, text)."""
        return segment_models(list(self.welcome.get("models", [])))

    @property
    def default_model(self) -> str | None:
        value = self.welcome.get("default_model")
        return str(value) if value else None

    @property
    def max_batch(self) -> int:
        return int(self.welcome.get("limits", {}).get("max_batch", 16))

    @property
    def connected(self) -> bool:
        return self.connection == "connected" and self.client is not None

    @property
    def library(self) -> Library | None:
        """The daemon's styles and history (None while not connected)."""
        return Library(self.client) if self.connected and self.client is not None else None

    @property
    def busy(self) -> bool:
        return any(not job.done for job in self.jobs)

    def job(self, key: str | int) -> Job | None:
        """A job by daemon id or local ticket."""
        return next((job for job in self.jobs if key in (job.job_id, job.ticket)), None)

    def model_info(self, model_id: str | None = None) -> dict[str, Any] | None:
        """The ``welcome`` description of ``model_id`` (the default model when None)."""
        wanted = model_id or self.default_model
        return next((m for m in self.welcome.get("models", []) if m.get("id") == wanted), None)

    def ignored(self, model_id: str | None = None) -> dict[str, str]:
        """Fields the model ignores -> the hint why (panels disable them)."""
        return ignored_fields(self.model_info(model_id))

    @property
    def outputs_folder(self) -> str | None:
        """Where the daemon saves results (``welcome.outputs``), for "open outputs folder"."""
        value = self.welcome.get("outputs")
        return str(value) if value else None

    @property
    def current(self) -> Job | None:
        """The job the user means: the running one, else the newest not ended, else the newest."""
        running = [job for job in self.jobs if job.state == "running" and not job.cancel_requested]
        waiting = [job for job in self.jobs if not job.done and not job.cancel_requested]
        pool = running or waiting or self.jobs
        return pool[-1] if pool else None

    @property
    def last_seed(self) -> int | None:
        """The seed of the newest job that has one (shown beside the seed field, to lock it)."""
        return next((job.seed for job in reversed(self.jobs) if job.seed is not None), None)

    @property
    def progress_fraction(self) -> float:
        """0..1 for the panel's bar: the current job's, 1.0 once it finished."""
        job = self.current
        return job.fraction if job is not None else 0.0

    def progress_text(self, now: float | None = None) -> str:
        job = self.current
        return job.progress_text(now) if job is not None else ""

    def plan(self, request: Request) -> Plan:
        """What Generate would do now with ``request``, as one sentence, and its refusal if it would
        be refused (nothing is sent)."""
        try:
            canvas = self.host.canvas()
            width, height = canvas.size()
            spec = self._build(request, canvas, width, height)
        except UserError as error:
            return Plan(str(error), str(error))
        mode = str(spec["mode"])
        text = MODE_WORDS[mode]
        extend = spec.get("extend")
        if mode == "outpaint" and extend:
            sides = (extend["left"], extend["top"], extend["right"], extend["bottom"])
            text = "expand by {}, {}, {}, {} px (left, top, right, bottom)".format(*sides)
            if canvas.selection() is not None:
                text += "; the selection is ignored (only the new border is filled)"
        return Plan(f"Generate will {text}.", None, mode)

    def mode_hint(self, strength: float = 1.0, extend: tuple[int, int, int, int] | None = None) -> str:
        """``plan``'s sentence for the default model (Expand when ``extend``), for a host's mode line."""
        outpaint = extend is not None and any(extend)
        return self.plan(Request(strength=strength, extend=extend, mode="outpaint" if outpaint else None)).sentence

    # ---------------------------------------------------------------- connection

    def connect(self, url: str | None = None, token: str | None = None, *, retry: bool = False) -> None:
        """(Re)connect without waiting; with ``retry`` keep trying while the daemon is not up."""
        self.url = (url if url is not None else self.url).strip() or DEFAULT_URL
        self.token = (token if token is not None else self.token).strip()
        self._generation += 1
        generation = self._generation
        self._fetches_lost()
        old, self.client = self.client, None
        self.error = ""
        problem = address_problem(self.url)
        if problem is not None:
            if old is not None:
                threading.Thread(target=old.close, daemon=True).start()
            self._set_connection("refused", problem)
            return
        self._set_connection("connecting", f"Connecting to {self.url}…")
        threading.Thread(
            target=self._dial,
            args=(generation, self.url, self.token, old, retry),
            name="underpaint-connect",
            daemon=True,
        ).start()

    def _dial(self, generation: int, url: str, token: str, old: UnderpaintClient | None, retry: bool) -> None:
        """On a connect thread: open the client; failures are posted, and retried when that can help."""
        if old is not None:
            old.close()
        attempt = 0
        while generation == self._generation:
            client = self.client_factory(
                url,
                token=token or None,
                client_name=self.client_name,
                client_version=self.client_version,
                host=self.host_info,
                client_id=self.client_id,
                result_format=self.result_format,
                previews=self.previews,
                on_event=lambda event: self.post(lambda: self._on_event(generation, event)),
                on_state=lambda state, detail: self.post(lambda: self._on_client_state(generation, state)),
            )
            try:
                welcome = client.connect(timeout=self.connect_timeout, fail_fast=True)
            except Exception as error:  # every failure becomes a sentence in the host
                client.close()
                again = retry and not _refuses_for_good(error)
                self._post_failure(generation, error, again)
                if not again:
                    return
                time.sleep(RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS) - 1)] * 3)
                attempt += 1
                continue
            self._post_connected(generation, client, welcome)
            return

    def _post_failure(self, generation: int, error: BaseException, again: bool) -> None:
        self.post(lambda: self._connect_failed(generation, error, again))

    def _post_connected(self, generation: int, client: UnderpaintClient, welcome: dict[str, Any]) -> None:
        self.post(lambda: self._connected(generation, client, welcome))

    def _connected(self, generation: int, client: UnderpaintClient, welcome: dict[str, Any]) -> None:
        if generation != self._generation:
            threading.Thread(target=client.close, daemon=True).start()
            return
        self.client = client
        self._welcome(welcome)

    def _connect_failed(self, generation: int, error: BaseException, retrying: bool) -> None:
        if generation != self._generation:
            return
        text = describe(error, self.url)
        self._set_connection("refused" if _refuses_for_good(error) else "disconnected", text)
        if retrying:
            self.status += " (Retrying.)"
            self._show()

    def _welcome(self, welcome: dict[str, Any]) -> None:
        self.welcome = welcome
        self.client_id = str(welcome.get("client_id") or self.client_id or "") or None
        self.error = ""
        server = welcome.get("server", {})
        name = f"{server.get('name', 'underpaint')} {server.get('version', '')}".strip()
        self._set_connection("connected", f"Connected to {name} at {self.url}")
        for job in self.jobs:  # cancels asked for while the connection was down
            if job.cancel_requested and job.job_id is not None and not job.done:
                self._send_cancel(job)

    def _on_client_state(self, generation: int, state: str) -> None:
        if generation != self._generation or self.client is None:
            return  # the first connect reports through _connected
        if state == "connected":
            self._welcome(self.client.welcome or self.welcome)
        elif state == "reconnecting":
            self._live_ended("The connection to the daemon was lost; turn Live on again.")
            self._fetches_lost()
            self._set_connection(
                "reconnecting",
                "Lost the connection to the daemon; reconnecting. Running jobs go on in the daemon and their "
                "results arrive when it is back.",
            )
        else:
            self._fetches_lost()
            self._set_connection(
                "reconnecting", f"The daemon at {self.url} is not reachable; retrying. {start_hint(self.url)}"
            )

    def _set_connection(self, state: str, status: str) -> None:
        self.connection, self.status = state, status
        self._show()

    def close(self) -> None:
        """The host is going away: drop the connection without waiting on the UI thread."""
        self._live_ended("")
        self._fetches_lost()
        self._generation += 1
        client, self.client = self.client, None
        if client is not None:
            threading.Thread(target=client.close, name="underpaint-close", daemon=True).start()
        self.connection = "disconnected"

    # ---------------------------------------------------------------- generating

    def _connected_client(self) -> UnderpaintClient | None:
        """The client a new job goes through; None (and ``error`` says why) while not connected."""
        self.error = ""
        if self.client is None or self.connection != "connected":
            waiting = "Wait for the connection." if self.connection in ("connecting", "reconnecting") else self.status
            self._refuse(f"Not connected to the daemon. {waiting}")
            return None
        return self.client

    def _open_canvas(self, canvas: Canvas | None) -> Canvas:
        """The canvas a new job works on: the one given, else the host's, and it must still be open."""
        target = canvas if canvas is not None else self.host.canvas()
        if not target.is_open():
            raise CanvasClosed("The image is no longer open.")
        return target

    def generate(self, request: Request, canvas: Canvas | None = None) -> Job | None:
        """Start a job from what the user did; None (and ``error`` says why) when it cannot start."""
        client = self._connected_client()
        if client is None:
            return None
        try:
            target = self._open_canvas(canvas)
            width, height = target.size()
            spec = self._build(request, target, width, height)
        except UserError as error:
            self._refuse(str(error))
            return None
        self._tickets += 1
        job = Job(self._tickets, target, request, spec, (width, height), seed=request.seed)
        self.jobs.append(job)
        self._show()
        self._then(client.plan(spec), lambda done: self._planned(client, job, done))
        return job

    def segment(self, request: SegmentRequest, canvas: Canvas | None = None) -> Job | None:
        """Select an object: the host gives what the user drew, clicked or typed and the combine mode.

        The host's canvas must also be a :class:`~underpaint_protocol.segment.SelectionCanvas`: its
        ``read_image`` (and ``read_mask`` with ``refine_selection``) read the region the daemon plans,
        and when the mask arrives ``apply_selection`` gets a ``SegmentMask`` -- soft gray8 bytes, its
        x, y, width, height in canvas coordinates, and ``request.combine`` -- to make it the selection
        in one undo step. Queue, cancel (``cancel``/``cancel_current``), errors and history are those
        of any job. Returns the job, or None (``error`` says why) when it cannot start.
        """
        client = self._connected_client()
        if client is None:
            return None
        try:
            target = self._open_canvas(canvas)
            if not isinstance(target, SelectionCanvas):
                raise UserError("This host cannot take a selection from underpaint.")
            width, height = target.size()
            selection = target.selection() if request.refine_selection else None
            if request.refine_selection and selection is None:
                raise UserError("There is no selection to refine: select roughly around the object first.")
            text = segment_problem(request, self.model_info(request.model) if request.model else None)
            if text is not None:
                raise UserError(text)
            spec = build_segment_job(width, height, request, selection)
        except UserError as error:
            self._refuse(str(error))
            return None
        self._tickets += 1
        job = Job(
            self._tickets,
            target,
            Request(prompt=request.text or "", model=request.model, mode="segment"),
            spec,
            (width, height),
            segment=request,
        )
        self.jobs.append(job)
        self._show()
        self._then(client.plan(spec), lambda done: self._planned(client, job, done))
        return job

    def _refuse(self, text: str) -> None:
        self.error = text
        self._show()
        return None

    def _build(self, request: Request, canvas: Canvas, width: int, height: int) -> dict[str, Any]:
        extend = request.extend if request.extend is not None and any(request.extend) else None
        if request.mode == "outpaint" and extend is None:
            raise UserError("Set how many pixels to add on at least one side, then Expand.")
        if extend is not None and min(extend) < 0:
            raise UserError("Expand sides cannot be negative.")
        selection = None if extend is not None else canvas.selection()
        if request.mode == "inpaint" and selection is None:
            raise UserError("Select the area to inpaint first (any selection tool; soft edges are kept).")
        if request.mode == "restore" and selection is None:
            raise UserError("Select the face (or faces) to restore first.")
        upscale = None
        if request.mode in UPSCALE_MODES:
            if request.upscale is None:
                raise UserError("Choose the upscale factor first.")
            if not isinstance(canvas, ScalableCanvas):
                raise UserError("This host cannot scale the image, so it cannot upscale.")
            upscale = request.upscale.as_dict()
        problem = seed_problem(request.seed)
        if problem is not None:
            raise UserError(problem)
        if not 1 <= request.batch <= self.max_batch:
            raise UserError(f"Batch must be between 1 and {self.max_batch} (the daemon's limit).")
        spec = build_job(
            width,
            height,
            selection,
            prompt=request.prompt,
            negative_prompt=request.negative_prompt,
            strength=request.strength,
            seed=request.seed,
            batch=int(request.batch),
            model=request.model or None,
            steps=request.steps or None,
            guidance=request.guidance,
            extend=extend,
            mode=request.mode,
            upscale=upscale,
            style=request.style or None,
        )
        self._check_model(spec)
        if request.controls or request.references:
            if not isinstance(canvas, LayerCanvas):
                raise UserError("This host cannot use layers as control layers or references yet.")
            model_id = spec.get("model") or self.default_model
            info = next((m for m in self.models if m.get("id") == model_id), None)
            limits = self.client.welcome.get("limits", {}) if self.client and self.client.welcome else {}
            problem = guide_problem(info, request.controls, request.references, limits)
            if problem is not None:
                raise UserError(problem)
            add_guides(spec, request.controls, request.references)
        return spec

    def _check_model(self, spec: dict[str, Any]) -> None:
        """Refuse, with what to do instead, a mode the chosen model cannot run (before sending anything)."""
        model_id = spec.get("model") or self.default_model
        info = next((m for m in self.welcome.get("models", []) if m.get("id") == model_id), None)
        modes = info.get("modes") if info is not None else None
        mode = str(spec["mode"])
        if not isinstance(modes, list) or mode in modes:
            return
        if mode in ("txt2img", "img2img") and "inpaint" in modes:
            raise UserError(
                f"The {model_id} model cannot {MODE_WORDS[mode]}: select an area to fill, or pick a diffusion model."
            )
        raise UserError(f"The {model_id} model cannot {MODE_WORDS.get(mode, mode)}. Pick another model.")

    def _then(self, future: Future[Any], then: Callable[[Future[Any]], None]) -> None:
        future.add_done_callback(lambda done: self.post(lambda: then(done)))

    def _answer(self, job: Job, done: Future[Any]) -> dict[str, Any] | None:
        """The daemon's answer to a request of ``job``; None (the job failed with why) when there is none."""
        if job.done:
            return None
        error = done.exception()
        if error is not None:
            self._fail(job, describe(error, self.url))
            return None
        answer: dict[str, Any] = done.result()
        return answer

    def _planned(self, client: UnderpaintClient, job: Job, done: Future[Any]) -> None:
        planned = self._answer(job, done)
        if planned is None:
            return
        if job.cancel_requested:
            self._end(job, "cancelled")
            return
        upload = Bounds(**{key: int(planned["upload"][key]) for key in ("x", "y", "width", "height")})
        region = image = mask = None
        try:
            if not job.canvas.is_open():
                raise CanvasClosed("The image was closed before the job was sent.")
            if job.canvas.size() != job.size:
                raise UserError("The image was resized before the job was sent; Generate again.")
            if upload.width > 0 and upload.height > 0:
                region = upload
                image = job.canvas.read_image(upload)
                if "selection" in job.spec and job.mode not in UPSCALE_MODES:  # an upscale takes the bounds
                    mask = job.canvas.read_mask(upload)
            controls, references = read_guides(job.canvas, planned, job.request.controls, job.request.references)
        except UserError as failure:
            self._fail(job, str(failure))
            return
        except Exception as failure:  # a host API surprise: a message, never a traceback dialog
            self._fail(job, f"Could not read the image: {failure}")
            return
        job.state, job.upload = "uploading", region
        self._show()
        future = client.submit(
            job.spec,
            region.as_dict() if region is not None else None,
            image,
            mask,
            on_sent=lambda: self.post(lambda: self._sent(job)),
            controls=controls,
            references=references,
        )
        self._then(future, lambda done: self._accepted(job, done))

    def _sent(self, job: Job) -> None:
        if job.state == "uploading":
            job.state = "submitted"
            self._show()

    def _accepted(self, job: Job, done: Future[Any]) -> None:
        accepted = self._answer(job, done)
        if accepted is None:
            return
        job.job_id = str(accepted["job_id"])
        job.seed = int(accepted.get("seed", job.seed or 0))
        if job.state in ("uploading", "submitted"):
            job.state = "queued"
        self._by_id[job.job_id] = job
        if job.cancel_requested:
            self._send_cancel(job)
        self._show()
        for event in self._early.pop(job.job_id, []):
            self._handle(job, event)

    # ---------------------------------------------------------------- cancelling

    # ---------------------------------------------------------------- prompt library (library.py)

    def ask_library(self, ask: Callable[[Library], Future[Any]], then: Callable[[Any], None]) -> bool:
        """Send a prompt-library request (styles, history, LoRAs); ``then`` gets the answer on the UI
        thread. A failure sets ``error`` (and redraws); False when not connected."""
        library = self.library
        if library is None:
            self._refuse(f"Not connected to the daemon. {self.status}")
            return False
        self.error = ""

        def answered(done: Future[Any]) -> None:
            error = done.exception()
            if error is not None:
                self._refuse(describe(error, self.url))
            else:
                then(done.result())

        self._then(ask(library), answered)
        return True

    def interrogate(self, on_prompt: Callable[[str], None], canvas: Canvas | None = None) -> bool:
        """Ask for a prompt describing the selection (its bounding box, with its soft mask) or, without
        one, the whole canvas; ``on_prompt`` gets it on the UI thread (hosts fill their prompt field)."""
        try:
            target = canvas if canvas is not None else self.host.canvas()
            if not target.is_open():
                raise CanvasClosed("The image is no longer open.")
            image, mask = read_for_interrogation(target)
        except UserError as error:
            self._refuse(str(error))
            return False
        return self.ask_library(
            lambda library: library.interrogate(image, mask), lambda found: on_prompt(found["prompt"])
        )

    def cancel(self, job: Job | None = None) -> None:
        """Cancel ``job``, or every job not ended yet. Before ``accepted`` the request is remembered and
        sent as soon as the job id is known; a cancelled job never pastes anything."""
        for target in [job] if job is not None else list(self.jobs):
            if target.done:
                continue
            target.cancel_requested = True
            if target.job_id is not None:
                self._send_cancel(target)
            elif target.state == "planning":
                self._end(target, "cancelled")  # the plan's answer finds it ended and sends nothing
        self._show()

    def cancel_current(self) -> Job | None:
        """Cancel the job the user means (``current``), whatever row a list has highlighted; returns it."""
        job = self.current
        if job is None or job.done:
            return None
        self.cancel(job)
        return job

    def _send_cancel(self, job: Job) -> None:
        client = self.client
        if client is None or job.job_id is None:
            return  # sent again when the connection is back (see _welcome)
        with contextlib.suppress(NotConnected):  # likewise
            client.cancel(job.job_id)

    # ---------------------------------------------------------------- events (UI thread)

    def _on_event(self, generation: int, event: Event) -> None:
        if generation != self._generation:
            return
        if event.type in ("live_result", "live_stopped"):
            self._live_event(event)
            return
        if event.type == "error" and event.message.get("code") == "no_live_session":
            self._live_ended("The daemon had no live session.")
            return
        if event.type == "error":
            message = event.message
            if message.get("job_id") in self._fetching:
                self._fetching[str(message["job_id"])](event)
                self.error = user_text(str(message.get("code")), str(message.get("message", "")), None)
                self._show()
                return
            if message.get("request_id") is None and message.get("code") != "not_cancellable":
                self.error = user_text(str(message.get("code")), str(message.get("message", "")), message.get("field"))
                self._show()
            return
        job_id = event.job_id
        if job_id is None:
            return
        if job_id in self._fetching:
            self._fetching[job_id](event)
            return
        job = self._by_id.get(job_id)
        if job is not None:
            self._handle(job, event)
        elif event.type != "accepted" and any(j.state in ("uploading", "submitted") for j in self.jobs):
            self._early.setdefault(job_id, []).append(event)  # overtook its submit's answer

    def _handle(self, job: Job, event: Event) -> None:
        if job.done:
            return
        kind, message = event.type, event.message
        if kind == "queued":
            job.state, job.position = "queued", message.get("position")
        elif kind == "started":
            job.state = "running"
            self.error = ""  # the state moved on: an old error no longer applies
        elif kind == "progress":
            job.state = "running"
            job.step, job.total = int(message.get("step", 0)), int(message.get("total", 0))
            job.tile_progress = message.get("tile") or None
            self.progress = (job.step, job.total)
            if event.image is not None:
                self.preview = event.image
        elif kind == "result" and event.image is not None:
            if message.get("upscale") and isinstance(job.canvas, TileCanvas):
                self._land_tile(job, message, event.image)
            elif message.get("upscale"):
                if not job.tiles.add(message, event.image):
                    self._after(job)
                    return
                message, image = job.tiles.assemble()
                job.results.append(Result(message, image))
            else:
                job.results.append(Result(message, event.image))
            if len(job.results) >= job.batch:
                self._paste(job)
        elif kind == "finished":
            if job.cancel_requested:
                self._end(job, "cancelled", "it had finished; nothing pasted")
                return
            job.state = "finished"
            job.ended = time.monotonic()
            landing = job.landing
            if landing is not None and not landing.ended and not landing.complete:  # not every tile came
                self._drop_landing(job)
                job.note = "not pasted"
                self.error = "Not every tile of the upscale arrived; the result was not pasted."
            self._paste(job)
        elif kind == "failed":
            self._fail(job, user_text(str(message.get("code")), str(message.get("message", "")), message.get("field")))
            return
        elif kind == "cancelled":
            self._end(job, "cancelled")
            return
        self._after(job)

    def _end(self, job: Job, state: str, note: str = "") -> None:
        if job.done:
            return
        job.state = state
        job.ended = time.monotonic()
        job.note = note or job.note
        if state != "finished":
            job.applied = len(job.results)  # nothing of a cancelled or failed job is pasted
            if job.landing is not None:
                self._drop_landing(job)
        self._after(job)

    def _fail(self, job: Job, text: str) -> None:
        if job.done:
            return
        job.error = self.error = text
        self._end(job, "failed")

    def _after(self, job: Job) -> None:
        if not self.busy:
            self.progress, self.preview = (0, 0), None
        self._show()

    # ---------------------------------------------------------------- pasting

    def _paste(self, job: Job) -> None:
        """Land the results not handled yet: in the preview layer, or (``land_directly``) as layers --
        a batch waits for all its items (one group, one undo step).

        A host call inside a paste may run queued callbacks (Krita's waitForDone); ``pasting`` keeps
        them from pasting twice, and the loop picks up results that arrived meanwhile."""
        if job.pasting or job.cancel_requested:
            return
        if job.segment is not None:
            self._select(job)
            return
        job.pasting = True
        try:
            preview = not self.land_directly and isinstance(job.canvas, PreviewCanvas) and job.mode not in UPSCALE_MODES
            while len(job.results) > job.applied:
                todo = job.results[job.applied :]
                land = (
                    functools.partial(self._stage, job) if preview else functools.partial(self._paste_items, job, todo)
                )
                self._guarded(job, todo, land)
                job.applied += len(todo)
        finally:
            job.pasting = False

    def _land_tile(self, job: Job, message: dict[str, Any], image: ImageData) -> None:
        """One upscale tile straight into the host's layer (``TileCanvas``); after the last one the
        document is scaled and the layer joins it. Before the last tile the image is left as it is, so a
        cancel or failure on the way leaves no trace (the unfinished layer is dropped)."""
        if job.cancel_requested:
            self._drop_landing(job)
            return
        if job.landing is not None and job.landing.ended:
            return  # landed already, or given up on with a message
        canvas = job.canvas
        assert isinstance(canvas, TileCanvas)
        upscale, layer = message["upscale"], message["layer"]
        whole = Bounds(*(int(upscale["layer"][key]) for key in ("x", "y", "width", "height")))
        name = str(layer.get("name") or job.mode)

        def land() -> None:
            if not canvas.is_open():
                raise CanvasClosed("closed")
            if canvas.size() != job.size:
                raise UserError(
                    f"The image was resized while the upscale ran ({job.size[0]}x{job.size[1]} -> "
                    f"{canvas.size()[0]}x{canvas.size()[1]}); the result was not pasted."
                )
            landing = job.landing
            if landing is None:
                handle = canvas.begin_layer(name, whole)
                count = int(upscale["tiles"])
                landing = job.landing = TileLanding(handle, name, whole.x, whole.y, whole.width, whole.height, count)
            if not landing.add(int(message["index"])):
                return  # a repeat (a replay after a reconnect)
            canvas.paste_tile(landing.handle, NewLayer(name, image, int(layer["x"]), int(layer["y"])))
            if not landing.complete:
                return
            canvas.scale(int(upscale["canvas"]["width"]), int(upscale["canvas"]["height"]))
            job.grown, landing.ended = True, True
            job.handles += canvas.end_layer(landing.handle, keep=True)
            landing.landed = True

        saved = whole_message(message)  # its output: the daemon's picture of the whole layer
        job.pasting = True  # a host call may run queued events (Krita's waitForDone): none lands twice
        try:
            landed = self._guarded(job, [Result(saved, image)], land)
        finally:
            job.pasting = False
        if not landed:
            self._drop_landing(job)  # the message says why

    def _drop_landing(self, job: Job) -> None:
        """Drop an upscale layer that will not be finished (cancel, failure, a paste that failed); the
        job's later tiles are ignored."""
        landing, canvas = job.landing, job.canvas
        if landing is None:
            job.landing = TileLanding(None, "", 0, 0, 0, 0, 0, ended=True)
        elif not landing.ended and isinstance(canvas, TileCanvas):
            landing.ended = True
            with contextlib.suppress(Exception):  # the image may be gone; the layer goes with it
                canvas.end_layer(landing.handle, keep=False)

    def _select(self, job: Job) -> None:
        """A segment job's mask becomes the host's selection (the newest result, once)."""
        request = job.segment
        if job.applied >= len(job.results) or request is None:
            return
        result = job.results[-1]
        job.applied = len(job.results)
        canvas = job.canvas
        assert isinstance(canvas, SelectionCanvas)  # checked in segment()

        def land() -> None:
            if not job.canvas.is_open():
                raise CanvasClosed("closed")
            if job.canvas.size() != job.size:
                raise UserError("The image was resized while selecting; the selection was not changed.")
            canvas.apply_selection(segment_mask(result.message, result.image, request.combine))

        self._guarded(job, [result], land)

    def _layers(self, job: Job, todo: list[Result]) -> list[NewLayer]:
        """The layers for ``todo``, placed in the canvas (grown first for an outpaint, once)."""
        canvas = job.canvas
        if not canvas.is_open():
            raise CanvasClosed("closed")
        places = [placement(result.message, *job.size) for result in todo]
        first = places[0]
        grown = (first.new_width, first.new_height)
        current = canvas.size()
        if first.grows and not job.grown and current == job.size:
            if todo[0].message.get("upscale"):
                if not isinstance(canvas, ScalableCanvas):
                    raise UserError("This host cannot scale the image; the upscale was not pasted.")
                canvas.scale(first.new_width, first.new_height)  # an upscale scales, never grows
            else:
                canvas.grow(first.new_width, first.new_height, first.offset_x, first.offset_y)
            job.grown, job.offset = True, (first.offset_x, first.offset_y)
        elif current != (grown if first.grows else job.size):
            raise UserError(
                f"The image was resized while the job ran ({job.size[0]}x{job.size[1]} -> "
                f"{current[0]}x{current[1]}); the result was not pasted."
            )
        layers = []
        for index, (result, place) in enumerate(zip(todo, places, strict=True)):
            image = result.image
            if (image.width, image.height) != (place.width, place.height):
                raise UserError(
                    f"The daemon sent a {image.width}x{image.height} image for a {place.width}x"
                    f"{place.height} layer; it was not pasted."
                )
            name = str(result.message["layer"].get("name") or job.request.prompt or job.mode)
            visible = job.applied + index == 0
            layers.append(NewLayer(name, image, place.x, place.y, visible))
        return layers

    def _paste_items(self, job: Job, todo: list[Result]) -> None:
        layers = self._layers(job, todo)
        group = group_name(job, todo) if job.batch > 1 else None
        job.handles += job.canvas.paste(layers, group)
        job.pasted += layers

    def _guarded(self, job: Job, todo: list[Result], work: Callable[[], object]) -> bool:
        """Run a host call that lands results; any failure becomes a message, never a traceback.
        Returns whether it succeeded."""
        try:
            work()
            return True
        except CanvasClosed:
            outputs = [str(r.message["output"]) for r in todo if r.message.get("output")]
            where = f" They are saved in {', '.join(outputs)}." if outputs else ""
            job.note = "image closed"
            self.error = f"The image of this job was closed; its results were not pasted.{where}"
        except UserError as error:
            job.note = "not pasted"
            self.error = str(error)
        except Exception as error:  # a host API surprise: a message, never a traceback dialog
            job.note = "not pasted"
            self.error = f"Could not paste the result: {error}"
        return False

    # ---------------------------------------------------------------- preview, then apply

    def _stage(self, job: Job) -> None:
        """Show ``job``'s results in the preview layer (a newer job replaces an older one's preview)."""
        staged = self.staged
        if staged is not None and staged.job is not job:
            self.discard()
            staged = None
        if staged is None:
            self.staged = staged = Staged(job)
            self._show_staged()

    def _show_staged(self) -> None:
        staged = self.staged
        if staged is None:
            return
        job = staged.job
        layer = self._staged_layer(staged)
        assert isinstance(job.canvas, PreviewCanvas)  # only such canvases are staged (see _paste)
        staged.handle = job.canvas.show_preview(layer, staged.handle)
        self._show()

    def _staged_layer(self, staged: Staged) -> NewLayer:
        job = staged.job
        result = job.results[staged.index]
        layer = self._layers(job, [result])[0]
        return NewLayer(f"[preview {staged.index + 1}/{len(job.results)}] {layer.name}", layer.image, layer.x, layer.y)

    def preview_step(self, delta: int) -> None:
        """Show the batch's next (``delta`` 1) or previous (-1) result in the preview layer."""
        staged = self.staged
        if staged is None or not staged.job.results:
            return
        staged.index = (staged.index + delta) % len(staged.job.results)
        self._guarded(staged.job, staged.job.results, self._show_staged)

    def apply(self) -> None:
        """The previewed result becomes a normal result layer (one undo step)."""
        staged, self.staged = self.staged, None
        if staged is None or staged.handle is None:
            return
        job = staged.job

        def land() -> None:
            result = job.results[staged.index]
            layer = self._layers(job, [result])[0]
            kept = NewLayer(layer.name, layer.image, layer.x, layer.y)
            assert isinstance(job.canvas, PreviewCanvas)
            job.handles += job.canvas.end_preview(staged.handle, kept)
            job.pasted.append(kept)

        self._guarded(job, job.results, land)
        self._show()

    def apply_all(self) -> None:
        """Every result of the previewed batch becomes a normal result layer, in one group exactly as a
        direct landing of the batch (first item visible): the preview goes, then one paste (one undo
        step for the batch; a host that records the preview's removal apart keeps that step too)."""
        staged, self.staged = self.staged, None
        if staged is None or staged.handle is None:
            return
        job = staged.job
        canvas = job.canvas
        assert isinstance(canvas, PreviewCanvas)

        def land() -> None:
            layers = self._layers(job, job.results)
            layers = [dataclasses.replace(layer, visible=index == 0) for index, layer in enumerate(layers)]
            canvas.end_preview(staged.handle, None)
            job.handles += canvas.paste(layers, group_name(job, job.results) if len(layers) > 1 else None)
            job.pasted += layers

        self._guarded(job, job.results, land)
        self._show()

    def discard(self) -> None:
        """Remove the preview layer (one undo step) and, for an outpaint, shrink the canvas back (one
        more); the results stay in the daemon's history."""
        staged, self.staged = self.staged, None
        if staged is None or staged.handle is None:
            return
        job = staged.job
        canvas = job.canvas
        assert isinstance(canvas, PreviewCanvas)

        def drop() -> None:
            canvas.end_preview(staged.handle, None)
            if job.grown:
                canvas.grow(job.size[0], job.size[1], -job.offset[0], -job.offset[1])
                job.grown = False

        self._guarded(job, [], drop)
        job.note = "discarded"
        self._show()

    # ---------------------------------------------------------------- history

    def refresh_history(self) -> None:
        """Ask the daemon for this client id's jobs (every session, the CLI's too); ``history`` is
        replaced, newest first, with finished jobs that have results (known results are kept)."""
        client = self.client
        if client is None:
            return
        self._then(client.list_jobs(), self._listed)

    def _listed(self, done: Future[Any]) -> None:
        error = done.exception()
        if error is not None:
            self.error = describe(error, self.url)
            self._show()
            return
        known = {item.job_id: item for item in self.history}
        items = []
        for summary in sorted(done.result(), key=lambda s: -float(s.get("created", 0))):
            if summary.get("state") != "finished" or not summary.get("results"):
                continue
            item = known.get(str(summary["job_id"])) or HistoryItem(summary)
            item.summary = summary
            items.append(item)
        self.history = items
        self._show()

    def fetch_history(self, item: HistoryItem) -> None:
        """Get ``item``'s results (pixels, thumbnails, parameters) from the daemon, once. An upscale's
        tiles only pass through, each scaled into the thumbnail (``TileThumbnail``): its result keeps
        the message and the thumbnail (``Result.thumbnail_only``), never the layer."""
        client = self.client
        if client is None or item.results or item.fetching:
            return
        self._fetch(client, item, functools.partial(self._fetched, item))
        self._show()

    def _fetch(self, client: UnderpaintClient, item: HistoryItem, take: Callable[[Event | None], None]) -> bool:
        """Ask for ``item``'s results again, their events going to ``take``; False (``error`` says why)
        when the request could not be sent."""
        item.fetching = True
        self._fetching[item.job_id] = take
        try:
            client.fetch(item.job_id, replay=True)
        except NotConnected as error:
            self._fetching.pop(item.job_id, None)
            item.fetching = False
            self.error = describe(error, self.url)
            return False
        return True

    def _fetch_ended(self, item: HistoryItem) -> None:
        item.fetching, item.reapplying = False, ""
        self._fetching.pop(item.job_id, None)

    def _fetches_lost(self) -> None:
        """The connection dropped (or is replaced): the fetches under way end; their events will not come."""
        for take in list(self._fetching.values()):
            take(None)

    def _fetched(self, item: HistoryItem, event: Event | None) -> None:
        if event is None:  # lost: what came is dropped, so that the item can be fetched again
            item.results, item.thumbnails, item.partial = [], [], None
            self._fetch_ended(item)
        elif event.type == "result" and event.image is not None:
            message, image = event.message, event.image
            if message.get("upscale"):
                upscale, tile = message["upscale"], message["layer"]
                whole = upscale["layer"]
                if item.partial is None:
                    size = int(whole["width"]), int(whole["height"])
                    item.partial = TileThumbnail(image.format, *size, int(upscale["tiles"]))
                x, y = int(tile["x"]) - int(whole["x"]), int(tile["y"]) - int(whole["y"])
                if not item.partial.add(int(message["index"]), x, y, image):
                    return
                small, item.partial = item.partial.image, None
                item.results.append(Result(whole_message(message), small, thumbnail_only=True))
                item.thumbnails.append(small)
            else:
                item.results.append(Result(message, image))
                item.thumbnails.append(thumbnail(image))
        elif event.type in TERMINAL_STATES or event.type == "error":
            item.partial = None
            self._fetch_ended(item)
            item.results.sort(key=lambda r: int(r.message.get("index", 0)))
        self._show()

    def reapply(self, item: HistoryItem, index: int = 0) -> None:
        """Paste one fetched history result into the active image as a layer (one undo step), where it
        was made when the image has that size, else at the top-left. An upscale's layer is streamed
        from the daemon again, tile by tile, into a ``TileCanvas`` layer (joined first for another
        canvas); the image is not scaled, and nothing is left if the stream breaks off."""
        try:
            if index >= len(item.results):
                raise UserError("That result is not loaded yet; wait for its thumbnail.")
            canvas = self.host.canvas()
            result = item.results[index]
            width, height = canvas.size()
            place = placement(result.message, width, height)
            x, y = (place.x, place.y) if not place.grows else (0, 0)
            name = str(result.message["layer"].get("name") or item.summary.get("prompt") or "underpaint")
            if result.thumbnail_only:
                self._restream(item, canvas, name, Bounds(x, y, place.width, place.height), result.message)
            else:
                canvas.paste([NewLayer(name, result.image, x, y)], None)
        except UserError as error:
            self.error = str(error)
        except Exception as error:  # a host API surprise: a message, never a traceback dialog
            self.error = f"Could not paste the result: {error}"
        self._show()

    def _restream(self, item: HistoryItem, canvas: Canvas, name: str, rect: Bounds, message: dict[str, Any]) -> None:
        client = self.client
        if client is None or self.connection != "connected":
            raise UserError(f"Not connected to the daemon, which keeps this upscale's pixels. {self.status}")
        if item.fetching:
            raise UserError("This result is being fetched already; wait for it.")
        layer = message["layer"]
        restream = Restream(item, canvas, name, rect, (rect.x - int(layer["x"]), rect.y - int(layer["y"])))
        if isinstance(canvas, TileCanvas):
            count = int(message["upscale"]["tiles"])
            handle = canvas.begin_layer(name, rect)
            restream.landing = TileLanding(handle, name, rect.x, rect.y, rect.width, rect.height, count)
        self.error = ""
        item.reapplying = "re-applying…"
        if not self._fetch(client, item, functools.partial(self._restreamed, restream)):
            self._restream_dropped(restream, "")

    def _restreamed(self, restream: Restream, event: Event | None) -> None:
        """One event of a re-apply's stream: a tile into the layer (or the joined set), or its end."""
        item, canvas, landing = restream.item, restream.canvas, restream.landing
        if event is None:
            if not restream.landed and not restream.dropped:
                self._restream_dropped(
                    restream, "The connection to the daemon was lost while re-applying; nothing was pasted."
                )
            self._fetch_ended(item)
        elif event.type == "result" and restream.dropped:
            pass  # the rest of a stream given up: let it pass, so that a new Re-apply gets only its own
        elif event.type == "result" and event.image is not None and event.message.get("upscale"):
            message, image = event.message, event.image
            tile = message["layer"]
            x, y = int(tile["x"]) + restream.shift[0], int(tile["y"]) + restream.shift[1]
            try:
                if not canvas.is_open():
                    raise CanvasClosed("The image was closed while re-applying; nothing was pasted.")
                if landing is not None:
                    assert isinstance(canvas, TileCanvas)  # a landing is begun only in one
                    if landing.ended or not landing.add(int(message["index"])):
                        return
                    canvas.paste_tile(landing.handle, NewLayer(restream.name, image, x, y))
                    item.reapplying = f"re-applying tile {len(landing.seen)} of {landing.count}"
                    if landing.complete:  # a host call may run queued events (the end): say it landed first
                        landing.ended = restream.landed = landing.landed = True
                        canvas.end_layer(landing.handle, keep=True)
                elif restream.landed:
                    return
                elif not restream.tiles.add(message, image):
                    item.reapplying = f"re-applying tile {len(restream.tiles.tiles)} of {restream.tiles.count}"
                else:
                    _, whole = restream.tiles.assemble()
                    restream.landed = True
                    canvas.paste([NewLayer(restream.name, whole, restream.rect.x, restream.rect.y)], None)
            except UserError as error:
                self._restream_dropped(restream, str(error))
            except Exception as error:  # a host API surprise: a message, never a traceback dialog
                self._restream_dropped(restream, f"Could not paste the result: {error}")
        elif event.type in TERMINAL_STATES or event.type == "error":
            if not restream.landed and not restream.dropped:  # an error: the daemon's message says why
                why = "" if event.type == "error" else "Not every tile of the upscale arrived; nothing was pasted."
                self._restream_dropped(restream, why)
            self._fetch_ended(item)
        self._show()

    def _restream_dropped(self, restream: Restream, why: str) -> None:
        """A re-apply that cannot finish: its unfinished layer goes (it never joined the image); the
        fetch ends with the stream (its end, or the connection's)."""
        landing, canvas = restream.landing, restream.canvas
        if landing is not None and not landing.ended and isinstance(canvas, TileCanvas):
            landing.ended = True
            with contextlib.suppress(Exception):  # the image may be gone; the layer goes with it
                canvas.end_layer(landing.handle, keep=False)
        restream.tiles.tiles.clear()
        restream.dropped, restream.item.reapplying = True, ""
        if why:
            self.error = why

    @staticmethod
    def reuse(result: Result) -> Request:
        """A request with ``result``'s parameters (its own seed included), for the panel's fields; a
        styled result gives what the user typed and its style (not the resolved prompt, styled again)."""
        params = result.message.get("params", {})
        extend = params.get("extend")
        mode = params.get("mode")
        styled = bool(params.get("style"))
        typed = ("user_prompt", "user_negative_prompt") if styled else ("prompt", "negative_prompt")
        return Request(
            prompt=str(params.get(typed[0]) or ""),
            negative_prompt=str(params.get(typed[1]) or ""),
            strength=float(params["strength"]) if params.get("strength") is not None else None,
            seed=int(params["seed"]) if params.get("seed") is not None else None,
            batch=1,
            model=str(params["model"]) if params.get("model") else None,
            steps=int(params["steps"]) if params.get("steps") else None,
            guidance=float(params["guidance"]) if params.get("guidance") is not None else None,
            extend=(extend["left"], extend["top"], extend["right"], extend["bottom"]) if extend else None,
            mode=str(mode) if mode == "outpaint" else None,
            style=str(params["style"]) if styled else None,
        )

    # ---------------------------------------------------------------- live painting (live.py)

    def start_live(self, request: LiveRequest, canvas: Canvas | None = None) -> bool:
        """Turn Live on for ``canvas`` (default: the host's): sends ``live_start``; once the daemon
        answers, the whole region goes as the first frame. A running session is replaced. False (and
        ``error`` says why) when it cannot start."""
        client = self._connected_client()
        if client is None:
            return False
        try:
            target = self._open_canvas(canvas)
            if not isinstance(target, LiveCanvas):
                raise UserError("This host cannot paint live.")
            problem = seed_problem(request.seed)
            if problem is not None:
                raise UserError(problem)
            width, height = target.size()
            selection = None if request.whole_canvas else target.selection()
            spec = request.spec(width, height, selection)
            mask = target.read_mask(selection) if selection is not None else None  # its soft edge
        except UserError as error:
            self._refuse(str(error))
            return False
        except Exception as failure:  # a host API surprise: a message, never a traceback dialog
            self._refuse(f"Could not read the image: {failure}")
            return False
        self._remove_live_layer()
        session = self.live = LiveSession()  # an answer to an earlier start finds another session
        session.starting(request, target)
        self._then(client.live_start(spec, mask), lambda done: self._live_started(client, session, done))
        self._show()
        return True

    def _live_started(self, client: UnderpaintClient, session: LiveSession, done: Future[Any]) -> None:
        if session is not self.live or session.state != "starting":
            return  # stopped or started again meanwhile (the daemon ended that session then)
        error = done.exception()
        if error is not None:
            self.error = describe(error, self.url)
            self._live_ended(self.error)
            return
        region = self.live.started(done.result())
        self._send_live(client, region, None)
        self._show()

    def feed_live(self, rect: Bounds | None = None) -> None:
        """The painting may have changed: send what did. ``rect`` (canvas coordinates) when the host
        knows it; None: read the whole region and send the rectangle that differs from the last frame
        (nothing when nothing changed). Cheap to call often; does nothing unless Live is on."""
        client = self.client
        if self.live.state != "live" or client is None or self.connection != "connected":
            return
        if rect is not None:
            self._send_live(client, rect, None)
        else:
            self._send_live(client, None, self.live.region)

    def _send_live(self, client: UnderpaintClient, rect: Bounds | None, compare: Bounds | None) -> None:
        """Read and send one frame: ``rect`` as it is, or the part of ``compare`` (the region) that changed."""
        live = self.live
        canvas = live.canvas
        try:
            if not canvas.is_open():
                raise CanvasClosed("The image was closed; Live is off.")
            if compare is not None:
                whole = canvas.read_live(compare)
                changed = live.changed(whole)
                if changed is None:
                    return
                assert live.region is not None
                inner = Bounds(changed.x - live.region.x, changed.y - live.region.y, changed.width, changed.height)
                image = whole if changed == live.region else _crop(whole, inner)
                rect = changed
            else:
                assert rect is not None
                clipped = live.clip(rect)
                if clipped is None:
                    return
                rect = clipped
                image = canvas.read_live(rect)
        except UserError as error:
            self.error = str(error)
            self.stop_live()
            return
        except Exception as failure:  # a host API surprise: a message, never a traceback dialog
            self.error = f"Could not read the image: {failure}"
            self.stop_live()
            return
        seq = live.frame(rect, image)
        try:
            client.live_frame(seq, rect.x, rect.y, image)
        except NotConnected:
            self._live_ended("The connection to the daemon was lost; turn Live on again.")

    def _live_event(self, event: Event) -> None:
        live = self.live
        if event.type == "live_result" and event.image is not None:
            layer = live.result(event.message, event.image)
            canvas = live.canvas
            if layer is None or canvas is None:
                return
            before = live.handle
            try:
                handle = canvas.show_live(NewLayer(layer.name, layer.image, layer.x, layer.y), before)
            except Exception as failure:  # the image was closed under us, or a host API surprise
                self.error = f"Could not show the live result: {failure}"
                self.stop_live()
                return
            if live is not self.live or live.state == "off":
                # Live went off (or started again) while the host showed the result: hosts run events
                # inside their waits, so the user's stop can come in there. The stop removed the layer
                # it knew of; a layer made by this call is removed here.
                if handle is not before:
                    with contextlib.suppress(Exception):
                        canvas.remove_live(handle)
                return
            live.handle = handle
            self._show()
        elif event.type == "live_stopped" and event.message.get("session_id") == live.session_id:
            reason = str(event.message.get("reason"))
            if reason == "failed":
                code, message = str(event.message.get("code")), str(event.message.get("message", ""))
                self.error = user_text(code, message, None)
                self._live_ended(self.error)
            elif reason != "restarted":
                self._live_ended("" if reason == "stopped" else "The daemon ended live painting.")

    def apply_live(self) -> list[Any]:
        """Copy the current live result to a normal result layer (one undo step); Live goes on.
        Returns the host's new layer (empty when there is no result yet)."""
        live = self.live
        layer, canvas = live.layer, live.canvas
        if layer is None or canvas is None:
            self._refuse("There is no live result to apply yet.")
            return []
        request = live.request or LiveRequest()
        seed = live.started_message.get("seed")
        words = " ".join(request.prompt.split())[:48] or "Live"
        name = f"{words} [seed {seed}]" if seed is not None else words
        try:
            return list(canvas.paste([NewLayer(name, layer.image, layer.x, layer.y)], None))
        except Exception as failure:  # the image was closed, or a host API surprise
            self._refuse(f"Could not apply the live result: {failure}")
            return []

    def stop_live(self) -> None:
        """Turn Live off: the daemon ends the session at once (freeing the device) and the live layer goes."""
        client = self.client
        if self.live.state in ("starting", "live") and client is not None:
            with contextlib.suppress(NotConnected):
                client.live_stop()  # its answer (live_stopped, or no_live_session) finds the session off
        self._live_ended("")

    def _live_ended(self, note: str) -> None:
        if self.live.state == "off" and self.live.handle is None:
            return
        self._remove_live_layer()
        self.live.stopped(note)
        self._show()

    def _remove_live_layer(self) -> None:
        live = self.live
        handle, live.handle = live.handle, None
        if handle is not None and live.canvas is not None:
            with contextlib.suppress(Exception):  # the image may be closed already
                live.canvas.remove_live(handle)

    def _show(self) -> None:
        self.host.show(self)


class WorkQueue:
    """``post`` for scripts and batch runs: work queued by the client's threads runs in ``run_until``."""

    def __init__(self) -> None:
        self._work: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()

    def post(self, work: Callable[[], None]) -> None:
        self._work.put(work)

    def run_until(self, done: Callable[[], bool], timeout: float) -> bool:
        """Run queued work on this thread until ``done()`` or ``timeout`` seconds; returns ``done()``."""
        deadline = time.monotonic() + timeout
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                work = self._work.get(timeout=min(left, 0.1))
            except queue.Empty:
                continue
            work()
        return True
