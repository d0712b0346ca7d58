"""Selecting an object (a ``segment`` job), once for every Python host and the CLI.

The host says what the user gave -- a box, clicked points (add / remove), the current selection to
refine, a phrase -- and which combine mode they chose; :meth:`Controller.segment` turns it into a job
(:func:`build_segment_job`), plans it, uploads the planned region's pixels (and the rough selection
when it refines one), follows it through the same queue, cancel and history as any job, and hands the
answer to the host's :meth:`SelectionCanvas.apply_selection` as a :class:`SegmentMask`: a soft
``gray8`` mask with its placement in canvas coordinates, and the combine mode. The host only turns
that into its own selection (one undo step). Standard library only.

On the wire the mask is the result layer's alpha channel (RGB white): :func:`mask_bytes` takes it out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from underpaint_protocol.jobs import Bounds
from underpaint_protocol.session import ImageData

COMBINE_MODES = ("replace", "add", "subtract", "intersect")
"""How the new mask meets the host's current selection: the hosts' own selection operations."""

SEGMENT_INPUTS = ("box", "points", "mask", "text")
"""What a segment model can start from (``welcome.models[].segment_inputs``)."""


@dataclass(frozen=True)
class SegmentRequest:
    """What the user gave to select an object; coordinates are canvas pixels.

    ``refine_selection``: send the host's current (soft) selection as the rough mask to refine.
    ``model`` None: the daemon's default segment model (the first that can take these inputs).
    """

    box: Bounds | None = None
    points: tuple[tuple[int, int], ...] = ()
    negative_points: tuple[tuple[int, int], ...] = ()
    text: str | None = None
    refine_selection: bool = False
    model: str | None = None
    combine: str = "replace"
    threshold: float | None = None
    soften: int | None = None

    def inputs(self) -> set[str]:
        """Which kinds of input this request uses (to pick or check a model)."""
        used = set()
        if self.box is not None:
            used.add("box")
        if self.points or self.negative_points:
            used.add("points")
        if self.refine_selection:
            used.add("mask")
        if self.text is not None:
            used.add("text")
        return used


@dataclass(frozen=True)
class SegmentMask:
    """The answer, for the host: make it the selection, combined per ``combine``.

    ``data`` is ``width`` x ``height`` bytes, rows top to bottom: 0 = not selected, 255 = selected,
    in between = soft. It covers the canvas rectangle at (``x``, ``y``); everything outside counts as
    not selected (with ``replace`` the old selection is gone there too).
    """

    x: int
    y: int
    width: int
    height: int
    data: bytes
    combine: str


@runtime_checkable
class SelectionCanvas(Protocol):
    """What a host's canvas adds to take segment results (besides ``controller.Canvas``)."""

    def apply_selection(self, mask: SegmentMask) -> None:
        """Combine ``mask`` with the current selection per ``mask.combine`` (replace, add, subtract,
        intersect: the host's own operations), as one undo step. Called on the UI thread."""


def problem(request: SegmentRequest, model: dict[str, Any] | None) -> str | None:
    """Why the request cannot be sent, in the user's words (None: it can); ``model`` is the
    ``welcome`` description of the model it will use, when known."""
    if request.combine not in COMBINE_MODES:
        return f"Unknown combine mode {request.combine!r}; use one of {', '.join(COMBINE_MODES)}."
    used = request.inputs()
    if not used:
        return "Draw a box, click on the object, keep a rough selection to refine, or type what to select."
    if request.text is not None and not request.text.strip():
        return "Type what to select (for example: the red car)."
    if request.box is not None and (request.box.width <= 0 or request.box.height <= 0):
        return "The box is empty: drag a rectangle around the object."
    if model is not None:
        can = model.get("segment_inputs")
        if not isinstance(can, list):
            return f"The {model.get('id')} model cannot select objects; pick a segment model."
        missing = sorted(used - set(can))
        if "text" in missing:
            return f"The {model.get('id')} model cannot select by words; pick a text model (CLIPSeg)."
        if missing:
            return f"The {model.get('id')} model cannot use {', '.join(missing)}; it takes {', '.join(can)}."
    return None


def build_segment_job(
    canvas_width: int, canvas_height: int, request: SegmentRequest, selection: Bounds | None
) -> dict[str, Any]:
    """The ``job`` object of a segment plan/submit (see PROTOCOL.md); ``selection``: the bounds of
    the host's current selection, sent (and its mask uploaded) only with ``refine_selection``."""
    segment: dict[str, Any] = {}
    if request.box is not None:
        segment["box"] = request.box.as_dict()
    if request.points:
        segment["points"] = [{"x": int(x), "y": int(y)} for x, y in request.points]
    if request.negative_points:
        segment["negative_points"] = [{"x": int(x), "y": int(y)} for x, y in request.negative_points]
    for key in ("text", "threshold", "soften"):
        value = getattr(request, key)
        if value is not None:
            segment[key] = value
    job: dict[str, Any] = {"mode": "segment", "canvas": {"width": canvas_width, "height": canvas_height}}
    if request.model:
        job["model"] = request.model
    if request.refine_selection and selection is not None and selection.width > 0 and selection.height > 0:
        job["selection"] = selection.as_dict()
    job["segment"] = segment
    return job


def mask_bytes(image: ImageData) -> bytes:
    """The gray8 mask carried by a segment result (its alpha channel)."""
    if image.format == "gray8":
        return bytes(image.data)
    if image.format in ("rgba8", "bgra8"):
        return bytes(memoryview(image.data).cast("B")[3::4])
    raise ValueError(f"cannot read a mask from a {image.format} result; connect with rgba8 or bgra8")


def segment_mask(result: dict[str, Any], image: ImageData, combine: str) -> SegmentMask:
    """A ``result`` event of a segment job as the host's :class:`SegmentMask`."""
    layer = result["layer"]
    return SegmentMask(
        x=int(layer["x"]),
        y=int(layer["y"]),
        width=int(layer["width"]),
        height=int(layer["height"]),
        data=mask_bytes(image),
        combine=combine,
    )


def segment_models(models: list[dict[str, Any]], needs: str | None = None) -> list[dict[str, Any]]:
    """The ``welcome`` models that select objects (those that take ``needs``, e.g. "text", when given)."""
    found = [m for m in models if isinstance(m.get("segment_inputs"), list)]
    return [m for m in found if needs is None or needs in m["segment_inputs"]]
