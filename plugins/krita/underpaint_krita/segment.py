"""Krita's inputs to segmentation, read from Krita's own tools (no Qt, no job logic).

Click points are shapes the user draws with any shape tool (a small ellipse is handy) on two vector
layers the docker makes: "underpaint add points" and "underpaint remove points"; each shape's centre
is one point. Vector shapes live in points (1/72 inch): they are turned into pixels with the
document's resolution.
"""

from __future__ import annotations

from typing import Any

from underpaint_protocol.controller import Job, UserError
from underpaint_protocol.segment import SegmentRequest

from .glue import KritaCanvas
from .model import DockerModel

ADD_LAYER = "underpaint add points"
REMOVE_LAYER = "underpaint remove points"


def _walk(node: Any) -> list[Any]:
    out = []
    for child in node.childNodes():
        out += [child, *_walk(child)]
    return out


def point_layers(doc: Any, name: str) -> list[Any]:
    return [node for node in _walk(doc.rootNode()) if node.type() == "vectorlayer" and node.name() == name]


def read_points(canvas: KritaCanvas, name: str) -> list[tuple[int, int]]:
    """The centres, in image pixels, of the shapes on every vector layer called ``name``."""
    doc = canvas.document()
    x_scale, y_scale = doc.xRes() / 72.0, doc.yRes() / 72.0
    points = []
    for layer in point_layers(doc, name):
        for shape in layer.shapes():
            box = shape.boundingBox()
            points.append((int((box.x() + box.width() / 2) * x_scale), int((box.y() + box.height() / 2) * y_scale)))
    return points


def ensure_points_layer(canvas: KritaCanvas, name: str) -> Any:
    """The vector layer for add or remove points, made on top of the image when missing (one undo
    step), and made active so the shape tools draw on it."""
    if name not in (ADD_LAYER, REMOVE_LAYER):
        raise UserError(f"no points layer called {name!r}")
    doc = canvas.document()
    found = point_layers(doc, name)
    layer = found[0] if found else doc.createVectorLayer(name)
    if not found:
        root = doc.rootNode()
        children = root.childNodes()
        root.addChildNode(layer, children[-1] if children else None)
    doc.setActiveNode(layer)
    return layer


class SegmentFields:
    """The docker's "Select an object" fields and what its buttons ask the shared controller for."""

    def __init__(self, model: DockerModel) -> None:
        self.model = model
        self.combine = model.settings.get("segment_combine", "replace") or "replace"
        self.model_id = model.settings.get("segment_model", "")
        self.text = ""
        self.use_shape = True  # refine the selection's own (rough) shape, not only its box

    def set_combine(self, combine: str) -> None:
        self.combine = combine
        self.model.settings.set("segment_combine", combine)

    def set_model(self, model_id: str) -> None:
        self.model_id = model_id
        self.model.settings.set("segment_model", model_id)

    def models(self) -> list[dict[str, Any]]:
        return self.model.controller.segment_models

    def _canvas(self) -> KritaCanvas | None:
        try:
            return self.model.glue.active_canvas()
        except UserError as error:
            self.model.controller.error = str(error)
            self.model.changed()
            return None

    def _request(self, canvas: KritaCanvas, **what: Any) -> SegmentRequest:
        return SegmentRequest(
            points=tuple(read_points(canvas, ADD_LAYER)),
            negative_points=tuple(read_points(canvas, REMOVE_LAYER)),
            model=self.model_id or None,
            combine=self.combine,
            **what,
        )

    def refine(self) -> Job | None:
        """Refine selection: the selection's box (a drawn rectangle is one), its rough shape when
        ``use_shape``, and the click points."""
        canvas = self._canvas()
        if canvas is None:
            return None
        box = canvas.selection()
        request = self._request(canvas, box=box, refine_selection=self.use_shape and box is not None)
        return self.model.controller.segment(request, canvas)

    def by_words(self) -> Job | None:
        """Select by words: the phrase (and any click points)."""
        canvas = self._canvas()
        if canvas is None:
            return None
        return self.model.controller.segment(self._request(canvas, text=self.text.strip()), canvas)

    def points_layer(self, name: str) -> None:
        canvas = self._canvas()
        if canvas is not None:
            ensure_points_layer(canvas, name)
