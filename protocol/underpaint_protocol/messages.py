"""Every message of the protocol, defined once.

The daemon validates incoming messages with these models, builds outgoing ones with them, and
``protocol/schema.json`` is generated from them (``python -m underpaint_protocol.schema``); a test
fails when the committed schema, ``PROTOCOL.md`` or the stdlib client drift from here.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from underpaint_protocol import PROTOCOL_VERSION

Mode = Literal["txt2img", "img2img", "inpaint", "outpaint", "upscale", "refine_upscale", "restore"]
ImageFormat = Literal["rgba8", "bgra8", "gray8", "png"]
ResultFormat = Literal["rgba8", "bgra8", "png"]
PrefillMethod = Literal["auto", "telea", "navier_stokes", "edge", "blur", "learned", "none"]
JobState = Literal["queued", "running", "finished", "failed", "cancelled"]

Identifier = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
Side = Annotated[int, Field(ge=0, le=65536)]


class Strict(BaseModel):
    """Unknown fields are errors: a typo in a client must not be silently ignored."""

    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- shared parts


class Rect(Strict):
    """A pixel rectangle in canvas coordinates (x right, y down); x, y may be negative for outpaint."""

    x: Annotated[int, Field(ge=-65536, le=65536)]
    y: Annotated[int, Field(ge=-65536, le=65536)]
    width: Side
    height: Side


class Size(Strict):
    width: Annotated[int, Field(ge=1, le=65536)]
    height: Annotated[int, Field(ge=1, le=65536)]


class Extents(Strict):
    """Pixels an outpaint adds on each side of the canvas."""

    left: Side = 0
    top: Side = 0
    right: Side = 0
    bottom: Side = 0


class Blend(Strict):
    """Optional overrides of mask shaping; omitted values scale with the selection."""

    grow: Annotated[int, Field(ge=0, le=1024)] | None = None
    feather: Annotated[int, Field(ge=0, le=1024)] | None = None
    blend: Annotated[int, Field(ge=0, le=1024)] | None = None
    colour_match: bool = True
    prefill: PrefillMethod = "auto"
    prefill_noise: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0


class AttachmentRef(Strict):
    """Declares one binary frame that follows the message (see frames.py)."""

    id: Identifier
    format: ImageFormat
    width: Annotated[int, Field(ge=1, le=65536)]
    height: Annotated[int, Field(ge=1, le=65536)]


class Peer(Strict):
    name: Annotated[str, Field(min_length=1, max_length=100)]
    version: Annotated[str, Field(max_length=100)] = ""


# ---------------------------------------------------------------- upscale, refine-upscale, restore (issue 16)


class UpscaleSpec(Strict):
    """How far to scale (modes ``upscale`` and ``refine_upscale``; required there, refused elsewhere).

    The whole canvas is scaled when the job has no selection, else the selection's bounding box; the
    result is a layer in the SCALED canvas (see ``Result.upscale``). Any factor works: the upscaler's
    native passes, then exact resampling to ``round(side * factor)``.
    """

    factor: Annotated[float, Field(ge=1.0, le=16.0)]
    model: Identifier | None = None
    """``refine_upscale`` only: the upscaler run before the diffusion pass (``job.model`` is the diffusion
    model there); None: the daemon's default upscaler. For ``upscale`` the upscaler is ``job.model``."""
    tile: Annotated[int, Field(ge=64, le=2048)] | None = None
    """Input pixels per tile side for the upscaler (None: the daemon's choice from the model and the
    memory bound); tiles overlap and are blended, so the size changes speed and memory, not the look."""


class UpscaleResult(Strict):
    """How an upscale result lands: the document SCALES (never grows) and big layers come in tiles.

    ``Result.canvas`` is the scaled canvas, ``Rect(0, 0, canvas.width, canvas.height)``; ``Result.layer``
    is one tile of the whole layer ``layer``, placed in scaled-canvas coordinates, and ``Result.index``
    is the tile's number (0 .. ``tiles`` - 1). A host scales its document to ``canvas`` first (once,
    one undo step), then pastes the tiles into one layer at ``layer`` (or reassembles them first).
    """

    factor: float
    source: Rect
    """The region of the ORIGINAL canvas that was scaled (the whole canvas, or the selection's bounds)."""
    canvas: Size
    """The document's size after scaling: ``round(width * factor)`` x ``round(height * factor)``."""
    layer: Rect
    """The whole result layer in the scaled canvas; the tiles cover it exactly, without overlap."""
    tiles: Annotated[int, Field(ge=1)]
    """How many ``result`` messages make up the layer."""


class JobSpec(Strict):
    """What to generate and where; pixels travel separately as attachments."""

    mode: Mode
    model: Identifier | None = None
    prompt: Annotated[str, Field(max_length=10000)] = ""
    negative_prompt: Annotated[str, Field(max_length=10000)] = ""
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] | None = None
    steps: Annotated[int, Field(ge=1, le=200)] | None = None
    guidance: Annotated[float, Field(ge=0.0, le=30.0)] | None = None
    strength: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    batch: Annotated[int, Field(ge=1, le=16)] = 1
    canvas: Size
    selection: Rect | None = None
    extend: Extents | None = None
    blend: Blend | None = None
    upscale: UpscaleSpec | None = None


# ---------------------------------------------------------------- client -> daemon


class Hello(Strict):
    type: Literal["hello"]
    protocol: int
    client: Peer
    host: Peer | None = None
    token: Annotated[str, Field(max_length=200)] | None = None
    client_id: Annotated[str, Field(min_length=16, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")] | None = None
    result_format: ResultFormat = "rgba8"
    previews: bool = True


class PlanRequest(Strict):
    type: Literal["plan"]
    request_id: Identifier
    job: JobSpec


class Submit(Strict):
    type: Literal["submit"]
    request_id: Identifier
    job: JobSpec
    region: Rect | None = None
    image: AttachmentRef | None = None
    mask: AttachmentRef | None = None


class Cancel(Strict):
    type: Literal["cancel"]
    job_id: Identifier


class ListJobs(Strict):
    type: Literal["list_jobs"]
    request_id: Identifier | None = None


class Fetch(Strict):
    type: Literal["fetch"]
    job_id: Identifier


ClientMessage = Annotated[Hello | PlanRequest | Submit | Cancel | ListJobs | Fetch, Field(discriminator="type")]
client_message_adapter: TypeAdapter[Any] = TypeAdapter(ClientMessage)


# ---------------------------------------------------------------- daemon -> client


class ModelDescription(Strict):
    id: str
    engine: str
    family: str
    modes: list[Mode]
    loaded: bool
    description: str
    default_steps: int
    default_guidance: float


class WorkerDescription(Strict):
    """One worker that runs jobs: a device of this daemon, or a Ray Serve replica (``--workers ray``)."""

    where: str
    """The machine (host name and address)."""
    device: str
    models: list[str]
    """Model ids warm on this worker: a job for one of them starts without loading it."""
    busy: bool


class EngineDescription(Strict):
    name: str
    device: str


class Limits(Strict):
    """What one client may ask of the daemon: announced in ``welcome``, enforced as announced.

    Every pixel count a job would allocate is checked at ``plan`` and ``submit`` before anything is
    allocated; a refusal is ``too_many_pixels`` (or ``queue_full``) naming the field. The defaults are
    the daemon's own; ``underpaint serve`` uses them.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_frame_bytes: int = 256 * 1024 * 1024
    """Bytes in one websocket frame."""
    max_upload_pixels: int = 8192 * 8192
    """Pixels in one uploaded image or mask (checked against PNG headers before decoding)."""
    max_canvas_side: int = 32768
    """Pixels on each side of the canvas, before and after an outpaint grows it."""
    max_work_pixels: int = 32 * 1024 * 1024
    """Pixels in a job's work area (the context crop, including what an outpaint adds)."""
    max_model_pixels: int = 4096 * 4096
    """Pixels the model works on (``model_width`` x ``model_height``)."""
    max_batch: int = 16
    """Results one job may ask for."""
    max_result_pixels: int = 256 * 1024 * 1024
    """``batch`` x work-area pixels: what one job's results may occupy; for an upscale, the scaled
    layer's pixels (16384 x 16384 fits: it comes as tiles, and the daemon never holds it whole)."""
    max_queued_jobs: int = 256
    """Jobs waiting in the daemon, all clients together."""
    max_queued_per_client: int = 64
    """Jobs waiting for one client id."""
    max_connections: int = 64
    """Open websocket connections, all clients together."""


class Welcome(Strict):
    type: Literal["welcome"] = "welcome"
    protocol: int = PROTOCOL_VERSION
    server: Peer
    client_id: str
    engines: list[EngineDescription]
    models: list[ModelDescription]
    default_model: str
    modes: list[Mode]
    model_loaded: bool
    limits: Limits
    image_formats: list[ImageFormat]
    workers: list[WorkerDescription] | None = None
    outputs: str | None = None
    """The folder where the daemon saves results (absent when it saves none): panels open it."""


class Planned(Strict):
    """Which pixels a job needs: the host uploads exactly ``upload`` (empty for txt2img)."""

    type: Literal["planned"] = "planned"
    request_id: str
    upload: Rect
    work: Rect
    canvas: Rect
    model_width: int
    model_height: int


class Accepted(Strict):
    type: Literal["accepted"] = "accepted"
    request_id: str
    job_id: str
    seed: int


class Queued(Strict):
    type: Literal["queued"] = "queued"
    job_id: str
    position: int


class Started(Strict):
    type: Literal["started"] = "started"
    job_id: str


class Progress(Strict):
    type: Literal["progress"] = "progress"
    job_id: str
    step: int
    total: int
    preview: AttachmentRef | None = None


class Layer(Strict):
    """One generated RGBA layer and where it goes, in the ORIGINAL canvas's coordinates."""

    name: str
    x: int
    y: int
    width: int
    height: int
    image: AttachmentRef


class Result(Strict):
    type: Literal["result"] = "result"
    job_id: str
    index: int
    layer: Layer
    canvas: Rect
    """The canvas after the job, in original coordinates: grow to it first when it differs."""
    params: dict[str, Any]
    """Everything needed to reproduce this item (mode, model, prompt, seed of this item, ...)."""
    output: str | None = None
    """Where the daemon saved the PNG, if it saves outputs."""
    upscale: UpscaleResult | None = None
    """Present for ``upscale`` and ``refine_upscale`` results: scale the canvas, paste the tile."""


class Finished(Strict):
    type: Literal["finished"] = "finished"
    job_id: str
    results: int


class Failed(Strict):
    type: Literal["failed"] = "failed"
    job_id: str
    code: str
    message: str
    field: str | None = None


class Cancelled(Strict):
    type: Literal["cancelled"] = "cancelled"
    job_id: str


class JobSummary(Strict):
    job_id: str
    state: JobState
    mode: Mode
    model: str
    prompt: str
    created: float
    results: int
    position: int | None = None


class Jobs(Strict):
    type: Literal["jobs"] = "jobs"
    request_id: str | None = None
    jobs: list[JobSummary]


class Error(Strict):
    """A request could not be served; the connection stays usable unless the code says otherwise."""

    type: Literal["error"] = "error"
    code: str
    message: str
    field: str | None = None
    request_id: str | None = None
    job_id: str | None = None


ServerMessage = Annotated[
    Welcome | Planned | Accepted | Queued | Started | Progress | Result | Finished | Failed | Cancelled | Jobs | Error,
    Field(discriminator="type"),
]
server_message_adapter: TypeAdapter[Any] = TypeAdapter(ServerMessage)
