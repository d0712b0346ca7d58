"""Krita's inputs to segmentation, read from Krita's own tools (no Qt, no job logic).

Click points are shapes the user draws with any shape tool (a small ellipse is handy) on two vector
layers the docker makes: "underpaint add points" and "underpaint remove points"; each shape's centre
is one point. Vector shapes live in points (1/72 inch): they are turned into pixels with the
document's resolution.
"""

from __future__ import annotations

from typing import Any

from underpaint_protocol.controller import UserError

from .glue import KritaCanvas

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
