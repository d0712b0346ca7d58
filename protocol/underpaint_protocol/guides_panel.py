"""What every panel shows alike for control layers and references: the labels, which layers can be
picked, the kind a new row starts with, percent fields, and the rows a Generate sends.

The Krita docker and the GIMP panel keep one :class:`GuideFields` each: the rows the artist added
(a layer of theirs, the kind, strength, range, preprocess; a layer or a file as a reference) and
hand its ``controls`` / ``references`` to ``controller.Request``. The controller refuses what the
model cannot take (``guides.guide_problem``) and reads the layers over the planned rectangle
(``guides.read_guides``). The Figma sidebar mirrors the labels in ``src/ui/guides.ts``. Standard
library only; Python 3.10+.
"""

from __future__ import annotations

import dataclasses
import struct
from dataclasses import dataclass, field
from typing import Any

from underpaint_protocol.guides import CONTROL_KINDS, REFERENCE_TAKES, ControlLayer, ReferenceImage
from underpaint_protocol.session import ImageData

LABELS = {
    "section": "Control layers and references",
    "add_control": "Add control layer",
    "add_reference": "Add reference",
    "reference_file": "Reference file…",
    "remove": "Remove",
    "reference": "Reference",
    "layer": "Layer",
    "kind": "Kind",
    "strength": "Strength",
    "start": "From",
    "end": "To",
    "preprocess": "Make from a picture",
    "take": "Take",
    "weight": "Weight",
}
TIPS = {
    "add_control": "Use the chosen layer to guide the picture (its pixels over the generated area)",
    "add_reference": "Use the chosen layer as a reference image (its style, composition or both)",
    "reference_file": "Use an image file as a reference",
    "strength": "How strongly the control layer steers the picture (100% is the model's usual strength)",
    "start": "The share of the steps after which the control starts acting",
    "end": "The share of the steps after which it stops acting (end early to leave the details free)",
    "preprocess": "The daemon turns an ordinary picture into this kind's input (edges, depth map, lines); "
    "off: the layer already is one (a sketch, line art, a depth map)",
    "weight": "How much the reference counts",
}
KIND_LABELS = {
    "scribble": "Scribble",
    "lineart": "Line art",
    "softedge": "Soft edges",
    "canny": "Canny edges",
    "depth": "Depth",
    "pose": "Pose",
    "tile": "Tile (details)",
}
TAKE_LABELS = {"both": "Style and composition", "style": "Style", "composition": "Composition"}
PREPROCESSED_KINDS = ("softedge", "canny", "depth")
"""Kinds whose input an artist rarely has as a layer: a new row asks the daemon to make it from the picture."""
NAME_HINTS = (
    ("scribble", ("scribble", "sketch", "doodle")),
    ("lineart", ("lineart", "line art", "lines", "ink")),
    ("softedge", ("soft edge", "softedge", "hed")),
    ("canny", ("canny", "edge")),
    ("depth", ("depth", "zdepth")),
    ("pose", ("pose", "openpose", "skeleton")),
    ("tile", ("tile", "detail")),
)
"""A layer's name that says what it is picks the kind of its new row."""
STRENGTH_MAX_PERCENT = 200
WEIGHT_MAX_PERCENT = 200
PREVIEW_PREFIX = "[preview"
"""The controller's preview layer: a result waiting for Apply, never a guide."""


@dataclass(frozen=True)
class HostLayer:
    """One layer a panel offers: the host's handle, the name it shows (a group's path included), and
    whether the host says it holds pixels (a mask, a selection or a points layer does not)."""

    handle: Any
    name: str
    pixels: bool = True


@dataclass(frozen=True)
class FileReference:
    """An image file as a reference: its name and its pixels as PNG bytes (the host converts other
    formats to PNG when the artist picks the file)."""

    name: str
    png: bytes

    def image(self) -> ImageData:
        width, height = png_size(self.png)
        return ImageData("png", width, height, self.png)


def png_size(png: bytes) -> tuple[int, int]:
    """Width and height from a PNG's header; ValueError when it is not a PNG."""
    if len(png) < 24 or png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
        raise ValueError("not a PNG image")
    width, height = struct.unpack(">II", png[16:24])
    return int(width), int(height)


def layer_choices(layers: list[HostLayer]) -> list[HostLayer]:
    """The layers a panel lists for controls and references: those with pixels, never the preview
    layer of a result waiting for Apply. Hidden layers count: a sketch is often kept hidden."""
    return [layer for layer in layers if layer.pixels and not layer.name.startswith(PREVIEW_PREFIX)]


def model_kinds(model: dict[str, Any] | None) -> list[str]:
    """The control kinds ``model`` takes, in the protocol's order (empty: none, or no model)."""
    offered = set((model or {}).get("control_kinds") or ())
    return [kind for kind in CONTROL_KINDS if kind in offered]


def model_takes(model: dict[str, Any] | None) -> list[str]:
    """What ``model`` can take from a reference image (empty: no IP-Adapter for its family)."""
    offered = set((model or {}).get("reference_modes") or ())
    return [take for take in REFERENCE_TAKES if take in offered]


def row_options(offered: list[str], current: str) -> list[str]:
    """What a row's kind (or take) picker lists: what the model offers, plus the row's own when the
    model (changed since) does not take it, so the row shows what it holds and the refusal can name it."""
    return [*offered, *([current] if current not in offered else [])]


def default_kind(layer_name: str, kinds: list[str]) -> str:
    """The kind a new row starts with: the one the layer's name says when the model takes it, else
    the model's first (else scribble, which the refusal then names)."""
    lowered = layer_name.lower()
    for kind, words in NAME_HINTS:
        if kind in kinds and any(word in lowered for word in words):
            return kind
    return kinds[0] if kinds else CONTROL_KINDS[0]


def availability(model: dict[str, Any] | None) -> str:
    """One line under the section: what the chosen model takes, or why it takes nothing."""
    name = str((model or {}).get("id") or "This model")
    kinds, takes = model_kinds(model), model_takes(model)
    if not kinds and not takes:
        return (
            f"{name} takes no control layers or references: start the daemon with a ControlNet for its "
            "family (underpaint serve --control KIND=SOURCE) or an IP-Adapter (--ip-adapter SOURCE)."
        )
    parts = []
    if kinds:
        parts.append("control layers: " + ", ".join(KIND_LABELS[kind].lower() for kind in kinds))
    parts.append("references" if takes else "no references")
    return f"{name} takes " + "; ".join(parts) + "."


def percent(value: float) -> int:
    """A 0..2 strength or weight, or a 0..1 share of the steps, as the whole percent a field shows."""
    return round(float(value) * 100)


def fraction(value: float, high: int = 100) -> float:
    """A field's percent back to the protocol's value, clamped to 0..``high`` percent."""
    return max(0.0, min(high, float(value))) / 100.0


@dataclass
class GuideFields:
    """The section's rows. Control rows and reference rows are edited in place by index; the
    controller gets them through :meth:`guides` (the rows whose layer still exists)."""

    controls: list[ControlLayer] = field(default_factory=list)
    references: list[ReferenceImage] = field(default_factory=list)
    names: dict[Any, str] = field(default_factory=dict)
    """Each row's handle -> the name shown for it (handles are hashable ids: a Krita node's unique id,
    a GIMP layer's id, a ``FileReference``)."""

    def add_control(self, layer: HostLayer, model: dict[str, Any] | None) -> ControlLayer:
        kind = default_kind(layer.name, model_kinds(model))
        row = ControlLayer(layer.handle, kind, preprocess=kind in PREPROCESSED_KINDS)
        self.controls.append(row)
        self.names[layer.handle] = layer.name
        return row

    def add_reference(self, layer: HostLayer | FileReference, model: dict[str, Any] | None) -> ReferenceImage:
        handle = layer.handle if isinstance(layer, HostLayer) else layer
        takes = model_takes(model)
        row = ReferenceImage(handle, "both" if "both" in takes or not takes else takes[0])
        self.references.append(row)
        self.names[handle] = layer.name
        return row

    def set_control(self, index: int, **changes: Any) -> ControlLayer:
        """Change one control row (``kind``, ``strength``, ``start``, ``end``, ``preprocess``).
        Choosing a kind also sets preprocess to what that kind usually needs."""
        if "kind" in changes and "preprocess" not in changes:
            changes["preprocess"] = changes["kind"] in PREPROCESSED_KINDS
        row = dataclasses.replace(self.controls[index], **changes)
        self.controls[index] = row
        return row

    def set_reference(self, index: int, **changes: Any) -> ReferenceImage:
        row = dataclasses.replace(self.references[index], **changes)
        self.references[index] = row
        return row

    def remove_control(self, index: int) -> None:
        del self.controls[index]

    def remove_reference(self, index: int) -> None:
        del self.references[index]

    def name(self, row: ControlLayer | ReferenceImage) -> str:
        return self.names.get(row.layer, "?")

    def keep(self, layers: list[HostLayer]) -> bool:
        """Drop rows whose layer is gone from the image; True when some were dropped."""
        present = {layer.handle for layer in layers}
        before = len(self.controls) + len(self.references)
        self.controls = [row for row in self.controls if row.layer in present]
        self.references = [
            row for row in self.references if isinstance(row.layer, FileReference) or row.layer in present
        ]
        return len(self.controls) + len(self.references) != before

    def layout(self, kinds: list[str], takes: list[str]) -> tuple[Any, ...]:
        """What the rows' widgets are built from: a panel rebuilds them only when this changes (edits
        show in their own widgets; rebuilding on every refresh would take the focus away)."""
        rows = (tuple(c.layer for c in self.controls), tuple(r.layer for r in self.references))
        return (*rows, tuple(kinds), tuple(takes))

    def guides(self) -> tuple[tuple[ControlLayer, ...], tuple[ReferenceImage, ...]]:
        """What Generate sends: every control row and every reference row, in the panel's order."""
        return tuple(self.controls), tuple(self.references)
