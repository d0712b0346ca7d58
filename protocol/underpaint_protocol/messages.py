"""Every message of the protocol, defined once.

The daemon validates incoming messages with these models, builds outgoing ones with them, and
``protocol/schema.json`` is generated from them (``python -m underpaint_protocol.schema``); a test
fails when the committed schema, ``PROTOCOL.md`` or the stdlib client drift from here.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from underpaint_protocol import PROTOCOL_VERSION

Mode = Literal["txt2img", "img2img", "inpaint", "outpaint"]
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


# ---------------------------------------------------------------- control layers and references (issue 18)

ControlKind = Literal["scribble", "lineart", "softedge", "canny", "depth", "pose", "tile"]
ReferenceMode = Literal["style", "composition", "both"]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


class Control(Strict):
    """One control layer (ControlNet): its pixels travel as the matching ``submit.controls`` frame,
    read over ``planned.control`` so that they line up with the canvas pixel for pixel."""

    kind: ControlKind
    strength: Annotated[float, Field(ge=0.0, le=2.0)] = 1.0
    """ControlNet conditioning scale."""
    start: Fraction = 0.0
    """Fraction of the denoising steps at which the control starts to act."""
    end: Fraction = 1.0
    """Fraction of the steps at which it stops (``start`` < ``end``)."""
    preprocess: bool = False
    """Let the daemon turn a photo into the kind's input (edges for canny/softedge, a depth map for
    depth, white lines on black for scribble/lineart); false: the layer is used as it is."""


class Reference(Strict):
    """One reference image (IP-Adapter): any size, as the matching ``submit.references`` frame."""

    take: ReferenceMode = "both"
    """What to take from it: its style, its composition (layout), or both."""
    weight: Annotated[float, Field(ge=0.0, le=2.0)] = 0.6


# ---------------------------------------------------------------- end of control layers and references


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
    # control layers and references (issue 18): pixels in ``Submit.controls`` / ``Submit.references``
    controls: Annotated[list[Control], Field(max_length=64)] = Field(default_factory=list)
    references: Annotated[list[Reference], Field(max_length=64)] = Field(default_factory=list)


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
    # control layers and references (issue 18): one frame per ``job.controls`` / ``job.references``
    # item, in the same order, after ``image`` and ``mask``
    controls: Annotated[list[AttachmentRef], Field(max_length=64)] = Field(default_factory=list)
    references: Annotated[list[AttachmentRef], Field(max_length=64)] = Field(default_factory=list)


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
    control_kinds: list[ControlKind] = Field(default_factory=list)
    """Control kinds this model can take (a ControlNet of its family is configured for each)."""
    reference_modes: list[ReferenceMode] = Field(default_factory=list)
    """Reference modes it can take (empty: no IP-Adapter configured for its family)."""


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
    """``batch`` x work-area pixels: what one job's results may occupy."""
    max_queued_jobs: int = 256
    """Jobs waiting in the daemon, all clients together."""
    max_queued_per_client: int = 64
    """Jobs waiting for one client id."""
    max_connections: int = 64
    """Open websocket connections, all clients together."""
    max_controls: int = 4
    """Control layers in one job (each runs its own ControlNet every step)."""
    max_references: int = 1
    """Reference images in one job."""


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
    control: Rect | None = None
    """The region each control layer is read over: the work area inside the canvas (``upload`` for
    every mode but txt2img, whose ``upload`` is empty)."""


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
