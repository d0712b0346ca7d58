"""A small in-memory stand-in for Krita's Python API (the parts the plugin uses), for unit tests.

Documents hold 8-bit BGRA layers; ``pixelData`` on the document returns the merged projection
(straight-alpha "over" of the visible layers). Undo is modelled the way the real Krita behaves
(checked in tests/krita/test_e2e.py): adding a node to a node that is in the image is one undo
step; filling a node or a group before it is added costs none; resizeImage and scaleImage are one
step each.
"""

from __future__ import annotations

import itertools
from typing import Any

_ids = itertools.count(1)


class FakeRect:
    def __init__(self, x: int, y: int, w: int, h: int) -> None:
        self._r = (x, y, w, h)

    def x(self) -> int:
        return self._r[0]

    def y(self) -> int:
        return self._r[1]

    def width(self) -> int:
        return self._r[2]

    def height(self) -> int:
        return self._r[3]


class FakeRectF(FakeRect):
    """QRectF: float coordinates."""


class FakeShape:
    def __init__(self, x: float, y: float, w: float, h: float) -> None:
        self.box = FakeRectF(x, y, w, h)  # type: ignore[arg-type]

    def boundingBox(self) -> FakeRectF:
        return self.box


class FakeNode:
    def __init__(self, doc: FakeDocument, name: str, kind: str) -> None:
        self.doc = doc
        self._name = name
        self._type = kind
        self._uid = f"{{node-{next(_ids)}}}"
        self.children: list[FakeNode] = []
        self.parent: FakeNode | None = None
        self._visible = True
        self.pixels: dict[tuple[int, int], bytes] = {}  # (x, y) -> BGRA
        self.writes = 0
        self.shape_list: list[FakeShape] = []  # a vector layer's shapes, in points (1/72 inch)

    def shapes(self) -> list[FakeShape]:
        return list(self.shape_list)

    def name(self) -> str:
        return self._name

    def type(self) -> str:
        return self._type

    def uniqueId(self) -> str:
        return self._uid

    def visible(self) -> bool:
        return self._visible

    def setVisible(self, value: bool) -> None:
        self._visible = value

    def opacity(self) -> int:
        return 255

    def blendingMode(self) -> str:
        return "normal"

    def childNodes(self) -> list[FakeNode]:
        return list(self.children)

    def parentNode(self) -> FakeNode | None:
        return self.parent

    def addChildNode(self, child: FakeNode, above: FakeNode | None) -> bool:
        index = len(self.children) if above is None else self.children.index(above) + 1
        self.children.insert(index, child)
        child.parent = self
        if self.doc.attached(self):
            self.doc.undo_steps.append(("add", child))
        return True

    def setName(self, name: str) -> None:
        self._name = name

    def remove(self) -> bool:
        parent = self.parent
        if parent is None:
            return False
        parent.children.remove(self)
        self.parent = None
        self.doc.undo_steps.append(("remove", self))
        return True

    def setPixelData(self, data: Any, x: int, y: int, w: int, h: int) -> None:
        data = bytes(data)
        assert len(data) == w * h * 4
        self.writes += 1
        for row in range(h):
            for col in range(w):
                offset = (row * w + col) * 4
                self.pixels[(x + col, y + row)] = data[offset : offset + 4]

    def pixelData(self, x: int, y: int, w: int, h: int) -> bytes:
        empty = b"\0\0\0\0"
        return b"".join(self.pixels.get((x + col, y + row), empty) for row in range(h) for col in range(w))

    def bounds(self) -> FakeRect:
        points = [p for p, v in self.pixels.items() if v[3]]
        for child in self.children:
            b = child.bounds()
            if b.width():
                points += [(b.x(), b.y()), (b.x() + b.width() - 1, b.y() + b.height() - 1)]
        if not points:
            return FakeRect(0, 0, 0, 0)
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        return FakeRect(min(xs), min(ys), max(xs) - min(xs) + 1, max(ys) - min(ys) + 1)

    def walk(self) -> list[FakeNode]:
        out = []
        for child in self.children:
            out += [child, *child.walk()]
        return out


class FakeSelection:
    """Soft selection; add / subtract / intersect as Krita's pixel selections combine 8-bit values
    (union = max, subtract = a - b clamped, intersect = min; the e2e test checks them in Krita)."""

    def __init__(self, mask: dict[tuple[int, int], int] | None = None) -> None:
        self.mask = dict(mask or {})

    def setPixelData(self, data: Any, x: int, y: int, w: int, h: int) -> None:
        data = bytes(data)
        assert len(data) == w * h
        for row in range(h):
            for col in range(w):
                self.mask[(x + col, y + row)] = data[row * w + col]

    def _combine(self, other: FakeSelection, rule: Any) -> None:
        for point in set(self.mask) | set(other.mask):
            self.mask[point] = rule(self.mask.get(point, 0), other.mask.get(point, 0))

    def add(self, other: FakeSelection) -> None:
        self._combine(other, max)

    def subtract(self, other: FakeSelection) -> None:
        self._combine(other, lambda a, b: max(0, a - b))

    def intersect(self, other: FakeSelection) -> None:
        self._combine(other, min)

    def _box(self) -> tuple[int, int, int, int]:
        points = [p for p, v in self.mask.items() if v]
        if not points:
            return 0, 0, 0, 0
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        return min(xs), min(ys), max(xs) - min(xs) + 1, max(ys) - min(ys) + 1

    def x(self) -> int:
        return self._box()[0]

    def y(self) -> int:
        return self._box()[1]

    def width(self) -> int:
        return self._box()[2]

    def height(self) -> int:
        return self._box()[3]

    def pixelData(self, x: int, y: int, w: int, h: int) -> bytes:
        return bytes(self.mask.get((x + col, y + row), 0) for row in range(h) for col in range(w))


class FakeDocument:
    def __init__(self, width: int, height: int, model: str = "RGBA", depth: str = "U8", name: str = "doc") -> None:
        self._w, self._h = width, height
        self._model, self._depth, self._name = model, depth, name
        self.root = FakeNode(self, "root", "grouplayer")
        self.root.parent = None
        self._selection: FakeSelection | None = None
        self.undo_steps: list[tuple[str, Any]] = []
        self.active: FakeNode | None = None
        self.closed = False
        self.pixel_reads: list[tuple[int, int, int, int]] = []
        self.on_wait: Any = lambda: None
        self.resolution = 72.0  # pixels per inch

    def xRes(self) -> float:
        return self.resolution

    def yRes(self) -> float:
        return self.resolution

    def setActiveNode(self, node: FakeNode) -> None:
        self.active = node

    def createVectorLayer(self, name: str) -> FakeNode:
        return FakeNode(self, name, "vectorlayer")

    # document
    def name(self) -> str:
        return self._name

    def width(self) -> int:
        return self._w

    def height(self) -> int:
        return self._h

    def colorModel(self) -> str:
        return self._model

    def colorDepth(self) -> str:
        return self._depth

    def rootNode(self) -> FakeNode:
        return self.root

    def activeNode(self) -> FakeNode | None:
        return self.active

    def selection(self) -> FakeSelection | None:
        return self._selection

    def setSelection(self, selection: FakeSelection | None) -> None:
        """Krita's Document.setSelection: not recorded in the undo history."""
        self._selection = selection

    def select_rect(self, x: int, y: int, w: int, h: int, value: int = 255) -> None:
        self._selection = FakeSelection({(x + c, y + r): value for r in range(h) for c in range(w)})

    def waitForDone(self) -> None:
        self.on_wait()  # the real one may run queued Qt events re-entrantly

    def refreshProjection(self) -> None:
        pass

    def attached(self, node: FakeNode | None) -> bool:
        while node is not None:
            if node is self.root:
                return True
            node = node.parent
        return False

    def createNode(self, name: str, kind: str) -> FakeNode:
        return FakeNode(self, name, kind)

    def createGroupLayer(self, name: str) -> FakeNode:
        return FakeNode(self, name, "grouplayer")

    def add_layer(self, name: str, fill: bytes) -> FakeNode:
        """A filled layer (test setup, not an undo step)."""
        node = FakeNode(self, name, "paintlayer")
        node.pixels = {(x, y): fill for y in range(self._h) for x in range(self._w)}
        self.root.children.append(node)
        node.parent = self.root
        self.active = node
        return node

    def resizeImage(self, x: int, y: int, w: int, h: int) -> None:
        for node in self.root.walk():
            node.pixels = {(px - x, py - y): v for (px, py), v in node.pixels.items()}
        self._w, self._h = w, h
        self.undo_steps.append(("resize", (x, y, w, h)))

    def scaleImage(self, w: int, h: int, xres: int, yres: int, strategy: str) -> bool:
        """Nearest-neighbour stand-in for Krita's resampling (tests check sizes and undo, not filters)."""
        sx, sy = self._w / w, self._h / h
        for node in self.root.walk():
            node.pixels = {
                (x, y): node.pixels[(int(x * sx), int(y * sy))]
                for y in range(h)
                for x in range(w)
                if (int(x * sx), int(y * sy)) in node.pixels
            }
        self._w, self._h = w, h
        self.undo_steps.append(("scale", (w, h, strategy)))
        return True

    def pixelData(self, x: int, y: int, w: int, h: int) -> bytes:
        """The merged projection: visible layers bottom to top, straight-alpha over."""
        self.pixel_reads.append((x, y, w, h))
        layers = [n for n in self.root.walk() if n.type() == "paintlayer" and self._shown(n)]
        out = bytearray()
        for row in range(h):
            for col in range(w):
                b = g = r = a = 0.0
                for node in layers:
                    pixel = node.pixels.get((x + col, y + row))
                    if not pixel:
                        continue
                    sa = pixel[3] / 255
                    na = sa + a * (1 - sa)
                    if na:
                        b = (pixel[0] * sa + b * a * (1 - sa)) / na
                        g = (pixel[1] * sa + g * a * (1 - sa)) / na
                        r = (pixel[2] * sa + r * a * (1 - sa)) / na
                    a = na
                out += bytes([round(b), round(g), round(r), round(a * 255)])
        return bytes(out)

    def _shown(self, node: FakeNode) -> bool:
        while node is not None and node is not self.root:
            if not node.visible():
                return False
            node = node.parent  # type: ignore[assignment]
        return True


class FakeKrita:
    def __init__(self) -> None:
        self.docs: list[FakeDocument] = []
        self.active: FakeDocument | None = None
        self.settings: dict[tuple[str, str], str] = {}

    def documents(self) -> list[FakeDocument]:
        return [d for d in self.docs if not d.closed]

    def activeDocument(self) -> FakeDocument | None:
        return self.active if self.active is not None and not self.active.closed else None

    def open(self, doc: FakeDocument) -> FakeDocument:
        self.docs.append(doc)
        self.active = doc
        return doc

    def close(self, doc: FakeDocument) -> None:
        doc.closed = True

    def readSetting(self, group: str, key: str, default: str) -> str:
        return self.settings.get((group, key), default)

    def writeSetting(self, group: str, key: str, value: str) -> None:
        self.settings[(group, key)] = value
