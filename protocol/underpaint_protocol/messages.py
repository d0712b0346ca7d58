"""Every message of the protocol, defined once.

The daemon validates incoming messages with these models, builds outgoing ones with them, and
``protocol/schema.json`` is generated from them (``python -m underpaint_protocol.schema``); a test
fails when the committed schema, ``PROTOCOL.md`` or the stdlib client drift from here.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from underpaint_protocol import PROTOCOL_VERSION

Mode = Literal["txt2img", "img2img", "inpaint", "outpaint", "segment", "upscale", "refine_upscale", "restore"]
ImageFormat = Literal["rgba8", "bgra8", "gray8", "png"]
ResultFormat = Literal["rgba8", "bgra8", "png"]
PrefillMethod = Literal["auto", "telea", "navier_stokes", "edge", "blur", "learned", "none"]
JobState = Literal["queued", "running", "finished", "failed", "cancelled"]

Identifier = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
Side = Annotated[int, Field(ge=0, le=65536)]
ModelId = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:/+-]+$")]
"""A model id from ``welcome.models``: Hugging Face ids (``facebook/sam-vit-base``) and ``a+b`` pairs included."""


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


# ---------------------------------------------------------------- segment (select an object)

SegmentInput = Literal["box", "points", "mask", "text"]
"""What a segment model can start from: a box, clicked points, the rough selection (the uploaded
mask), a phrase."""

Coordinate = Annotated[int, Field(ge=-65536, le=65536)]


class Point(Strict):
    """A clicked pixel in canvas coordinates."""

    x: Coordinate
    y: Coordinate


class SegmentSpec(Strict):
    """What a ``segment`` job selects; the answer is a soft mask (see PROTOCOL.md, "Selecting").

    Any mix of a box, points (on the object) and negative points (not on it), the rough selection
    (``job.selection`` + the uploaded mask) and a phrase; at least one. All in canvas coordinates.
    """

    box: Rect | None = None
    points: Annotated[list[Point], Field(max_length=64)] = []
    negative_points: Annotated[list[Point], Field(max_length=64)] = []
    text: Annotated[str, Field(max_length=1000)] | None = None
    """A phrase naming what to select (``"the red car"``); needs a model with the ``text`` input."""
    threshold: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    """How sure a model must be that a pixel is selected (default: the model's own, 0.5 for SAM)."""
    soften: Annotated[int, Field(ge=0, le=256)] | None = None
    """Width in pixels of the soft edge (default: scales with the object; 0 keeps it hard)."""


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


# ---------------------------------------------------------------- prompt library: shared parts

StyleName = Annotated[
    str, Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$")
]
"""A style's name as the user typed it (spaces allowed, no control characters, not blank)."""


class LoraRef(Strict):
    """A LoRA from the daemon's models folders (see ``loras``) and how strongly it applies."""

    name: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f<>:/\\]+$")]
    weight: Annotated[float, Field(ge=-4.0, le=4.0)] = 1.0


class Style(Strict):
    """A named prompt template: ``{prompt}`` in ``prompt`` (and in ``negative_prompt``) is replaced by
    the job's own; a negative without it is joined after the job's. The optional settings apply where
    the job leaves them unset."""

    name: StyleName
    prompt: Annotated[str, Field(max_length=10000)] = "{prompt}"
    negative_prompt: Annotated[str, Field(max_length=10000)] = ""
    model: Identifier | None = None
    steps: Annotated[int, Field(ge=1, le=200)] | None = None
    guidance: Annotated[float, Field(ge=0.0, le=30.0)] | None = None
    strength: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    builtin: bool = False
    """Shipped with the daemon (set by the daemon; cannot be changed, renamed or deleted)."""
    loras: Annotated[list[LoraRef], Field(max_length=8)] | None = None
    """LoRAs the style adds (a job's own LoRA of the same name keeps the job's weight)."""


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
    model: ModelId | None = None
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
    segment: SegmentSpec | None = None
    """Only with mode ``segment`` (and required there)."""
    upscale: UpscaleSpec | None = None

    style: StyleName | None = None
    """A style to apply (see ``styles``); the result's params carry the resolved prompt."""
    loras: Annotated[list[LoraRef], Field(max_length=8)] | None = None
    """LoRAs for this job (``<lora:name:weight>`` in the prompt adds to them)."""
    # control layers and references (issue 18): pixels in ``Submit.controls`` / ``Submit.references``
    controls: Annotated[list[Control], Field(max_length=64)] = Field(default_factory=list)
    references: Annotated[list[Reference], Field(max_length=64)] = Field(default_factory=list)


# ---------------------------------------------------------------- live painting (issue 19)

LIVE_MODES = ("img2img", "inpaint")
"""The modes a live session runs (``LiveSpec.mode``; others are refused naming ``live.mode``)."""
LiveEnd = Literal["stopped", "restarted", "disconnected", "failed", "shutting_down"]


class LiveSpec(Strict):
    """What a live session paints, held fixed for the whole session (start it again to change it).

    The region is the selection's bounds, or the whole canvas without one; the daemon plans it once
    (context, model size, masks) and keeps its own copy of those pixels, which frames patch.
    """

    model: ModelId | None = None
    mode: Mode | None = None
    """``LIVE_MODES`` only: img2img redraws the region from what is painted; inpaint regenerates the
    selection only (needs ``selection``; a soft one sends ``live_start.mask``). None: img2img when the
    model can, else inpaint."""
    prompt: Annotated[str, Field(max_length=10000)] = ""
    negative_prompt: Annotated[str, Field(max_length=10000)] = ""
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] | None = None
    """The same seed for every frame (random when absent; ``live_started`` says which)."""
    steps: Annotated[int, Field(ge=1, le=200)] | None = None
    """Default: the model's (a few-step model's profile clamps steps and guidance)."""
    guidance: Annotated[float, Field(ge=0.0, le=30.0)] | None = None
    strength: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    """How far each frame may depart from what is painted (default: the mode's, 0.6 for img2img)."""
    canvas: Size
    selection: Rect | None = None
    """Bounds of the selection the session covers; None: the whole canvas."""
    style: StyleName | None = None
    loras: Annotated[list[LoraRef], Field(max_length=8)] | None = None


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


# ---------------------------------------------------------------- prompt library requests


class StylesRequest(Strict):
    """List the styles, or change the user's own (answered by ``style_list`` with all of them)."""

    type: Literal["styles"]
    request_id: Identifier
    action: Literal["list", "save", "rename", "delete"] = "list"
    style: Style | None = None
    """``save``: the style to add, or to replace by name."""
    name: StyleName | None = None
    """``rename``, ``delete``: the style's current name."""
    new_name: StyleName | None = None
    """``rename``: its new name."""


class HistoryRequest(Strict):
    """The user's recent prompts and settings, newest first (answered by ``history_list``)."""

    type: Literal["history"]
    request_id: Identifier
    limit: Annotated[int, Field(ge=1, le=1000)] = 50


class LorasRequest(Strict):
    """The LoRAs in the daemon's models folders (answered by ``lora_list``)."""

    type: Literal["loras"]
    request_id: Identifier


class InterrogateRequest(Strict):
    """A prompt from an image: ``image`` (the canvas or the planned region) and, optionally, the
    selection as ``mask``, whose bounding box is what gets described. Binary frames follow as for
    ``submit``; answered by ``interrogated``."""

    type: Literal["interrogate"]
    request_id: Identifier
    image: AttachmentRef
    mask: AttachmentRef | None = None
    flavours: Annotated[int, Field(ge=0, le=8)] = 3
    """How many flavour terms follow the caption, medium and style."""


class LiveStart(Strict):
    """Start this connection's live session (one per connection; a second start ends the first)."""

    type: Literal["live_start"]
    request_id: Identifier
    live: LiveSpec
    mask: AttachmentRef | None = None
    """The soft selection over exactly ``live.selection`` (gray8 or png); its frame follows. Without
    it the selection rectangle counts as fully selected."""


class LiveFrame(Strict):
    """Changed pixels: the dirty rectangle ``rect`` (in canvas coordinates, inside the session's
    ``region``) and its pixels as the one frame that follows. The first frame must cover the whole
    region; ``seq`` increases with every frame of the session."""

    type: Literal["live_frame"]
    seq: Annotated[int, Field(ge=1, le=2**53)]
    rect: Rect
    image: AttachmentRef


class LiveStop(Strict):
    """End this connection's live session now (a frame in the model is abandoned at its next step)."""

    type: Literal["live_stop"]
    request_id: Identifier | None = None


ClientMessage = Annotated[
    Hello
    | PlanRequest
    | Submit
    | Cancel
    | ListJobs
    | Fetch
    | StylesRequest
    | HistoryRequest
    | LorasRequest
    | InterrogateRequest
    | LiveStart
    | LiveFrame
    | LiveStop,
    Field(discriminator="type"),
]
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
    segment_inputs: list[SegmentInput] | None = None
    """For models with mode ``segment``: what they can start from."""
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
    """``batch`` x work-area pixels: what one job's results may occupy; for an upscale, the scaled
    layer's pixels (16384 x 16384 fits: it comes as tiles, and the daemon never holds it whole)."""
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


class TileProgress(Strict):
    """Where a tiled job (upscale, refine_upscale) is, for a line like "refining tile 3 of 12, step 2
    of 4": ``step``/``total`` of ``Progress`` count work units of the whole job, which mix tiles and
    diffusion steps."""

    stage: Literal["upscale", "refine"]
    """``upscale``: the upscaler's pass; ``refine``: refine-upscale's diffusion pass after it."""
    index: Annotated[int, Field(ge=1)]
    """The tile this progress is about, 1 .. ``count`` (``upscale``: the tile just done; ``refine``:
    the tile being refined)."""
    count: Annotated[int, Field(ge=1)]
    """Tiles in this stage."""
    step: Annotated[int, Field(ge=1)] | None = None
    """``refine``: the diffusion step of this tile just done (1 .. ``steps``)."""
    steps: Annotated[int, Field(ge=1)] | None = None
    """``refine``: diffusion steps per tile."""


class Progress(Strict):
    type: Literal["progress"] = "progress"
    job_id: str
    step: int
    total: int
    preview: AttachmentRef | None = None
    tile: TileProgress | None = None
    """Upscale modes only: which tile of which pass (absent from other modes and older daemons)."""


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


# ---------------------------------------------------------------- prompt library replies


class StyleList(Strict):
    """Every style: the shipped ones, then the user's own (one file, shared by every client)."""

    type: Literal["style_list"] = "style_list"
    request_id: str
    styles: list[Style]
    notice: str | None = None
    """Something the user should know about their styles file (it was unreadable and was kept aside)."""


class HistoryEntry(Strict):
    """One job the user submitted: what they typed and chose (their prompt before a style), and the seed."""

    created: float
    mode: Mode
    model: str
    prompt: str
    negative_prompt: str
    style: str | None = None
    seed: int
    steps: int | None = None
    guidance: float | None = None
    strength: float | None = None
    width: int
    height: int


class HistoryList(Strict):
    type: Literal["history_list"] = "history_list"
    request_id: str
    entries: list[HistoryEntry]


class LoraDescription(Strict):
    name: str
    """What a job calls it (``LoraRef.name``, ``<lora:name:0.8>``)."""
    triggers: list[str]
    """Words its training used (from the file's metadata): put them in the prompt."""
    base: str = ""
    """The base model it was trained on, when its metadata says."""
    refused: str | None = None
    """Why a job naming it is refused (a pickle file), None when usable."""


class LoraList(Strict):
    type: Literal["lora_list"] = "lora_list"
    request_id: str
    loras: list[LoraDescription]


class Interrogated(Strict):
    type: Literal["interrogated"] = "interrogated"
    request_id: str
    prompt: str
    """The caption followed by the chosen terms: what a host puts in its prompt field."""
    caption: str
    terms: dict[str, list[str]]
    """The terms CLIP ranked best, by list (``mediums``, ``styles``, ``flavours``)."""


class LiveStarted(Strict):
    """The live session runs: the host sends ``region`` whole as its first frame, then what changes."""

    type: Literal["live_started"] = "live_started"
    request_id: str
    session_id: str
    region: Rect
    """The canvas pixels the daemon keeps a copy of: every frame's ``rect`` lies inside it."""
    work: Rect
    """The area the model sees (the region, or the selection plus context)."""
    model: str
    mode: Mode
    model_width: int
    model_height: int
    seed: int
    steps: int
    guidance: float
    strength: float
    decoder: str | None = None
    """What decodes the frames from latents: ``vae`` (the model's own) or the fast decoder the daemon
    was started with (``--live-decoder``); null for engines without latents (the classical fill)."""


class LiveResult(Strict):
    """The picture for frame ``seq`` (the newest the daemon had when the model started): a layer placed
    like ``result.layer`` that REPLACES the previous live result. Results come in ``seq`` order; a
    result not yet sent is replaced by a newer one."""

    type: Literal["live_result"] = "live_result"
    session_id: str
    seq: int
    layer: Layer
    frames: int
    """Frames received so far in this session."""
    dropped: int
    """Frames a newer frame replaced before the model got to them (their pixels still count)."""
    latency_ms: float
    """From the frame's arrival to its result being ready, in the daemon."""


class LiveStopped(Strict):
    """The live session ended: asked (``stopped``), replaced by a new start (``restarted``), or a frame
    failed (``failed``, with ``code`` and ``message``); the device is free again."""

    type: Literal["live_stopped"] = "live_stopped"
    session_id: str
    request_id: str | None = None
    reason: LiveEnd
    frames: int
    results: int
    dropped: int
    code: str | None = None
    message: str | None = None


ServerMessage = Annotated[
    Welcome
    | Planned
    | Accepted
    | Queued
    | Started
    | Progress
    | Result
    | Finished
    | Failed
    | Cancelled
    | Jobs
    | Error
    | StyleList
    | HistoryList
    | LoraList
    | Interrogated
    | LiveStarted
    | LiveResult
    | LiveStopped,
    Field(discriminator="type"),
]
server_message_adapter: TypeAdapter[Any] = TypeAdapter(ServerMessage)
