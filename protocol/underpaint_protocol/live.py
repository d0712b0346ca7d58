"""Live painting on the client, once for every Python host: the session model, without I/O.

HOST API -- what a host does for live painting (everything on its UI thread; nothing here waits):

* Its canvas also implements :class:`LiveCanvas`: ``read_live(rect)`` (the merged image over
  ``rect`` WITHOUT the live layer: what the artist painted), ``show_live(layer, handle)`` (the ONE
  live layer, made when ``handle`` is None, else refilled in place with no undo step) and
  ``remove_live(handle)``. ``Canvas.paste`` lands Apply (one undo step).
* Live on: ``Controller.start_live(LiveRequest(...))``. The controller sends ``live_start``, then
  reads the whole region once as the first frame.
* Whenever the painting may have changed: ``Controller.feed_live(rect)`` with the changed rectangle
  when the host knows it (a stroke's bounds), or ``Controller.feed_live()`` from a light timer: the
  controller reads the region and sends only the rectangle that differs from what it sent last
  (nothing when nothing changed). Feed as often as you like: the daemon keeps only the newest frame.
* Apply: ``Controller.apply_live()`` (the current live result becomes a normal layer). Live off:
  ``Controller.stop_live()`` (the live layer goes away).
* Show ``Controller.live.state`` (``LIVE_STATES``) and ``Controller.live.status()``; ``Host.show`` is
  called on every change, as for jobs.

:class:`LiveSession` keeps the client's side of one session: its state, the sequence numbers, the copy
of the region as last sent (to find what changed), the newest result and the counts the daemon
reports. Standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from underpaint_protocol.jobs import Bounds
from underpaint_protocol.session import ImageData

LIVE_STATES = ("off", "starting", "live", "stopping")
"""off: no session (``note`` says why it ended, if it did); starting: ``live_start`` sent; live: frames
flow; stopping: ``live_stop`` sent."""

BYTES_PER_PIXEL = {"rgba8": 4, "bgra8": 4}
"""Raw formats the session can compare to find what changed (a png reader always sends the region)."""
COLUMN_BAND = 16
"""Pixels per column band when narrowing a dirty rectangle from the sides."""


@runtime_checkable
class LiveCanvas(Protocol):
    """What a host's canvas adds for live painting (see the module's HOST API). UI thread."""

    def read_live(self, rect: Bounds) -> Any:
        """The merged visible image over ``rect`` WITHOUT the live layer, as ``ImageData`` in the
        controller's result format (the pixels the artist painted, not the live result over them)."""

    def show_live(self, layer: Any, handle: Any | None) -> Any:
        """Show ``layer`` (a ``controller.NewLayer`` placed in canvas coordinates) in the ONE live layer
        above the painting: made when ``handle`` is None, else its pixels replaced in place, adding no
        undo step. Returns the live layer's handle."""

    def remove_live(self, handle: Any) -> None:
        """Remove the live layer (no undo step)."""


@dataclass
class LiveRequest:
    """What the user set for live painting, fixed while Live is on (start again to change it).

    ``whole_canvas`` False (default) covers the selection when there is one, else the whole canvas.
    ``mode`` None lets the daemon choose (img2img when the model can, else inpaint of the selection);
    ``seed`` None: the daemon picks one and holds it for every frame."""

    prompt: str = ""
    negative_prompt: str = ""
    strength: float | None = 0.5
    seed: int | None = None
    model: str | None = None
    steps: int | None = None
    guidance: float | None = None
    mode: str | None = None
    style: str | None = None
    whole_canvas: bool = False

    @classmethod
    def like(cls, fields: Any) -> LiveRequest:
        """The live settings from a host's Generate fields (a ``controller.Request``): the same prompt,
        model, strength, seed, steps and style, so the Live toggle paints with what the panel shows."""
        return cls(
            prompt=fields.prompt,
            negative_prompt=fields.negative_prompt,
            strength=fields.strength,
            seed=fields.seed,
            model=fields.model,
            steps=fields.steps,
            guidance=fields.guidance,
            style=fields.style,
        )

    def spec(self, width: int, height: int, selection: Bounds | None) -> dict[str, Any]:
        """The ``live`` object of ``live_start`` (PROTOCOL.md section 12)."""
        live: dict[str, Any] = {
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            "canvas": {"width": width, "height": height},
        }
        if selection is not None and not self.whole_canvas:
            live["selection"] = selection.as_dict()
        for key in ("strength", "seed", "model", "steps", "guidance", "mode", "style"):
            value = getattr(self, key)
            if value is not None and value != "":
                live[key] = value
        return live


@dataclass(frozen=True)
class LiveLayer:
    """The newest live result: its pixels, where they go, and the frame it answers."""

    name: str
    image: ImageData
    x: int
    y: int
    seq: int


def dirty_bounds(old: ImageData, new: ImageData) -> Bounds | None:
    """The smallest rectangle (in the images' own pixels) outside which ``new`` equals ``old``; None
    when they are equal. Both raw and of the same size: rows compare as byte strings, then column
    bands, then single columns, narrow it from each side (C-speed comparisons, a few ms for 1 MP)."""
    width, height, bpp = new.width, new.height, BYTES_PER_PIXEL[new.format]
    stride = width * bpp
    a, b = bytes(old.data), bytes(new.data)  # bytes compare with memcmp (memoryviews element by element)
    if a == b:
        return None
    rows = [y for y in range(height) if a[y * stride : (y + 1) * stride] != b[y * stride : (y + 1) * stride]]
    if not rows:
        return None

    def band_differs(x0: int, x1: int) -> bool:
        starts = [y * stride for y in rows]
        return any(a[s + x0 * bpp : s + x1 * bpp] != b[s + x0 * bpp : s + x1 * bpp] for s in starts)

    left = 0
    while not band_differs(left, min(left + COLUMN_BAND, width)):
        left += COLUMN_BAND  # some column differs: this stops inside the image
    while not band_differs(left, left + 1):
        left += 1
    right = width
    while not band_differs(max(right - COLUMN_BAND, left), right):
        right -= COLUMN_BAND
    while not band_differs(right - 1, right):
        right -= 1
    return Bounds(left, rows[0], right - left, rows[-1] + 1 - rows[0])


def crop(image: ImageData, rect: Bounds) -> ImageData:
    """``rect`` (in the image's pixels) of a raw image, as an image of its own."""
    bpp = BYTES_PER_PIXEL[image.format]
    stride, row = image.width * bpp, rect.width * bpp
    data = memoryview(image.data).cast("B")
    out = bytearray(row * rect.height)
    for y in range(rect.height):
        start = (rect.y + y) * stride + rect.x * bpp
        out[y * row : (y + 1) * row] = data[start : start + row]
    return ImageData(image.format, rect.width, rect.height, bytes(out))


class LiveSession:
    """The client's side of one live session (one at a time per controller).

    The controller drives it: ``starting`` when ``live_start`` goes out, ``started`` with the daemon's
    answer, ``frame`` for every frame it sends, ``result`` / ``stopped`` with the daemon's events.
    """

    def __init__(self) -> None:
        self.state = "off"
        self.note = ""
        """Why the last session ended, when it did not end by the user's stop."""
        self.request: LiveRequest | None = None
        self.canvas: Any = None
        """The host canvas the session paints on (a ``Canvas`` that is also a ``LiveCanvas``)."""
        self.session_id: str | None = None
        self.region: Bounds | None = None
        """The canvas pixels the daemon keeps a copy of (``live_started.region``)."""
        self.started_message: dict[str, Any] = {}
        self.seq = 0
        """The last frame number sent."""
        self.kept: ImageData | None = None
        """The region as last sent (raw formats only), to find what changed."""
        self.layer: LiveLayer | None = None
        self.handle: Any = None
        """The host's live layer."""
        self.frames_sent = 0
        self.bytes_sent = 0
        self.results = 0
        self.dropped = 0
        """Frames the daemon skipped because a newer one came (latest wins)."""
        self.latency_ms: float | None = None

    @property
    def active(self) -> bool:
        return self.state in ("starting", "live")

    def starting(self, request: LiveRequest, canvas: Any) -> None:
        """``live_start`` went out for ``request`` on ``canvas`` (a fresh session object each time)."""
        self.state, self.request, self.canvas = "starting", request, canvas

    def started(self, message: dict[str, Any]) -> Bounds:
        """``live_started`` arrived: returns the region to send whole as the first frame."""
        self.state = "live"
        self.session_id = str(message["session_id"])
        self.started_message = message
        region = message["region"]
        self.region = Bounds(int(region["x"]), int(region["y"]), int(region["width"]), int(region["height"]))
        return self.region

    def changed(self, whole: ImageData) -> Bounds | None:
        """The changed part of the region (canvas coordinates) given the whole region as read now, or
        None when nothing changed since the last frame; the whole region when it cannot compare."""
        assert self.region is not None
        kept = self.kept
        same_size = kept is not None and (kept.width, kept.height) == (whole.width, whole.height)
        if kept is None or whole.format not in BYTES_PER_PIXEL or not same_size:
            return self.region
        inner = dirty_bounds(kept, whole)
        if inner is None:
            return None
        return Bounds(self.region.x + inner.x, self.region.y + inner.y, inner.width, inner.height)

    def clip(self, rect: Bounds) -> Bounds | None:
        """``rect`` inside the region (None when it misses it)."""
        assert self.region is not None
        region = self.region
        x0, y0 = max(rect.x, region.x), max(rect.y, region.y)
        x1 = min(rect.x + rect.width, region.x + region.width)
        y1 = min(rect.y + rect.height, region.y + region.height)
        return Bounds(x0, y0, x1 - x0, y1 - y0) if x1 > x0 and y1 > y0 else None

    def frame(self, rect: Bounds, image: ImageData) -> int:
        """Record a frame about to be sent (``image`` covers ``rect``); returns its sequence number."""
        assert self.region is not None
        self.seq += 1
        self.frames_sent += 1
        self.bytes_sent += memoryview(image.data).nbytes
        if image.format in BYTES_PER_PIXEL:
            if rect == self.region:
                self.kept = ImageData(image.format, image.width, image.height, bytes(image.data))
            elif self.kept is not None:
                self.kept = _patched(self.kept, image, rect.x - self.region.x, rect.y - self.region.y)
        else:
            self.kept = None
        return self.seq

    def result(self, message: dict[str, Any], image: ImageData) -> LiveLayer | None:
        """A ``live_result``: the layer to show, or None when it belongs to another session or an older frame."""
        if message.get("session_id") != self.session_id or self.state not in ("live", "stopping"):
            return None
        seq = int(message.get("seq", 0))
        if self.layer is not None and seq <= self.layer.seq:
            return None
        layer = message["layer"]
        self.layer = LiveLayer(str(layer.get("name", "Live")), image, int(layer["x"]), int(layer["y"]), seq)
        self.results += 1
        self.dropped = int(message.get("dropped", self.dropped))
        self.latency_ms = float(message.get("latency_ms", 0.0))
        return self.layer

    def stopped(self, note: str = "") -> None:
        """The session ended (``note``: why, when the user did not stop it)."""
        self.state = "off"
        self.note = note

    def status(self) -> str:
        """One line for the panel."""
        if self.state == "starting":
            return "Live: starting…"
        if self.state == "stopping":
            return "Live: stopping…"
        if self.state == "off":
            return f"Live is off. {self.note}".strip() if self.note else "Live is off."
        if self.results == 0:
            return f"Live: waiting for the first picture ({self.frames_sent} frame(s) sent)."
        latency = f", {self.latency_ms:.0f} ms in the daemon" if self.latency_ms is not None else ""
        return f"Live: frame {self.layer.seq if self.layer else 0}{latency}; {self.dropped} skipped for newer ones."


def _patched(kept: ImageData, patch: ImageData, dx: int, dy: int) -> ImageData:
    """``kept`` with ``patch`` copied in at (dx, dy) (same raw format)."""
    bpp = BYTES_PER_PIXEL[kept.format]
    data = kept.data if isinstance(kept.data, bytearray) else bytearray(kept.data)
    source = memoryview(patch.data).cast("B")
    stride, row = kept.width * bpp, patch.width * bpp
    for y in range(patch.height):
        start = (dy + y) * stride + dx * bpp
        data[start : start + row] = source[y * row : (y + 1) * row]
    return ImageData(kept.format, kept.width, kept.height, data)
