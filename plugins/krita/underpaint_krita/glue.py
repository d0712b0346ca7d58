"""Krita's side: read the region and selection the daemon asks for, paste results as layers.

Only calls the ``krita`` API objects it is given (a real ``Krita.instance()`` or the fake in
tests/krita), so it runs without Qt. Must be called on Krita's UI thread. Mask/crop/placement math
lives in ``underpaint_protocol.jobs`` and in the daemon, never here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from underpaint_protocol.jobs import Bounds, Placement, placement
from underpaint_protocol.session import ImageData


class UserError(Exception):
    """Something the user can fix; shown in the docker as it is."""


class DocumentClosed(UserError):
    """The document a job belongs to is no longer open."""


@dataclass(frozen=True)
class DocSnapshot:
    key: str
    name: str
    width: int
    height: int
    selection: Bounds | None


@dataclass(frozen=True)
class Pasted:
    """One layer the plugin added: where, and a digest of the pixels written (for tests and the log)."""

    name: str
    x: int
    y: int
    width: int
    height: int
    sha256: str
    visible: bool


SUPPORTED = ("RGBA", "U8")


def bgra_from(image: ImageData) -> bytes:
    """The image's pixels in Krita's 8-bit RGBA order (B, G, R, A)."""
    data = bytes(image.data)
    if image.format == "bgra8":
        return data
    if image.format == "rgba8":
        swapped = bytearray(data)
        swapped[0::4], swapped[2::4] = data[2::4], data[0::4]
        return bytes(swapped)
    raise UserError(f"the daemon sent a {image.format} image; the Krita plugin asks for bgra8")


def node_key(node: Any) -> str:
    uid = node.uniqueId()
    return str(uid.toString()) if hasattr(uid, "toString") else str(uid)


class KritaGlue:
    def __init__(self, app: Any, to_qbytes: Callable[[bytes], Any] = lambda data: data) -> None:
        self.app = app
        self.to_qbytes = to_qbytes

    # ---------------------------------------------------------------- documents

    def document(self, key: str) -> Any:
        for doc in self.app.documents():
            if node_key(doc.rootNode()) == key:
                return doc
        raise DocumentClosed("the document of this job was closed")

    def is_open(self, key: str) -> bool:
        try:
            self.document(key)
        except DocumentClosed:
            return False
        return True

    def snapshot(self) -> DocSnapshot:
        """What a new job needs from the active document; refuses what the plugin cannot read."""
        doc = self.app.activeDocument()
        if doc is None:
            raise UserError("Open an image first (File > New or File > Open).")
        model, depth = doc.colorModel(), doc.colorDepth()
        if (model, depth) != SUPPORTED:
            raise UserError(
                f"underpaint works on 8-bit RGBA images; this one is {model}/{depth}. Convert it with "
                "Image > Convert Image Color Space (RGB/Alpha, 8-bit integer/channel), then Generate again."
            )
        selection = doc.selection()
        bounds = None
        if selection is not None and selection.width() > 0 and selection.height() > 0:
            bounds = Bounds(selection.x(), selection.y(), selection.width(), selection.height())
        return DocSnapshot(node_key(doc.rootNode()), doc.name() or "Untitled", doc.width(), doc.height(), bounds)

    def size(self, key: str) -> tuple[int, int]:
        doc = self.document(key)
        return doc.width(), doc.height()

    # ---------------------------------------------------------------- reading

    def read_image(self, key: str, rect: dict[str, int]) -> ImageData:
        """The merged visible image over ``rect`` (8-bit RGBA documents: BGRA bytes)."""
        doc = self.document(key)
        x, y, w, h = rect["x"], rect["y"], rect["width"], rect["height"]
        doc.waitForDone()  # let pending strokes reach the projection
        data = bytes(doc.pixelData(x, y, w, h))
        if len(data) != w * h * 4:
            raise UserError(f"Krita returned {len(data)} bytes for a {w}x{h} region; is the image 8-bit RGBA?")
        return ImageData("bgra8", w, h, data)

    def read_mask(self, key: str, rect: dict[str, int]) -> ImageData | None:
        """The soft selection over ``rect`` (0 = not selected .. 255), or None without a selection."""
        selection = self.document(key).selection()
        if selection is None:
            return None
        x, y, w, h = rect["x"], rect["y"], rect["width"], rect["height"]
        data = bytes(selection.pixelData(x, y, w, h))
        if len(data) != w * h:
            raise UserError(f"Krita returned {len(data)} selection bytes for a {w}x{h} region")
        return ImageData("gray8", w, h, data)

    # ---------------------------------------------------------------- pasting

    def apply(
        self,
        key: str,
        canvas: tuple[int, int],
        results: Sequence[tuple[dict[str, Any], ImageData]],
        group_name: str,
    ) -> list[Pasted]:
        """Paste a job's results: grow the canvas if the job outpainted, then one layer per result
        right above the active layer (a batch in one group, first item visible and on top).

        Layers are filled before they join the image, so adding them is one undo step (Krita's
        Node.addChildNode is one undoable command; a group filled while detached goes in as one).
        Outpaint adds a second step: Krita's own Image > Resize Canvas.
        """
        if not results:
            return []
        doc = self.document(key)
        width, height = canvas
        places: list[Placement] = [placement(message, width, height) for message, _ in results]
        first = places[0]
        current = (doc.width(), doc.height())
        if first.grows:
            if current == (width, height):
                doc.resizeImage(-first.offset_x, -first.offset_y, first.new_width, first.new_height)
                doc.waitForDone()
            elif current != (first.new_width, first.new_height):
                raise UserError(
                    f"the image was resized while the job ran ({width}x{height} -> {current[0]}x{current[1]}); "
                    "the result was not pasted"
                )
        elif current != (width, height):
            raise UserError(
                f"the image was resized while the job ran ({width}x{height} -> {current[0]}x{current[1]}); "
                "the result was not pasted"
            )

        pasted: list[Pasted] = []
        layers = []
        for index, ((message, image), place) in enumerate(zip(results, places, strict=True)):
            if (image.width, image.height) != (place.width, place.height):
                raise UserError(
                    f"result {index} is {image.width}x{image.height}, announced {place.width}x{place.height}"
                )
            name = str(message["layer"].get("name") or group_name)
            data = bgra_from(image)
            layer = doc.createNode(name, "paintlayer")
            layer.setPixelData(self.to_qbytes(data), place.x, place.y, place.width, place.height)
            visible = index == 0
            if not visible:
                layer.setVisible(False)
            layers.append(layer)
            digest = hashlib.sha256(data).hexdigest()
            pasted.append(Pasted(name, place.x, place.y, place.width, place.height, digest, visible))

        parent, above = self._insertion_point(doc)
        if len(layers) == 1:
            parent.addChildNode(layers[0], above)
        else:
            group = doc.createGroupLayer(group_name)
            below = None
            for layer in reversed(layers):  # childNodes() run bottom to top: item 0 ends on top
                group.addChildNode(layer, below)
                below = layer
            parent.addChildNode(group, above)
        doc.refreshProjection()
        return pasted

    @staticmethod
    def _insertion_point(doc: Any) -> tuple[Any, Any]:
        """(parent, above): right above the active layer; above the top layer when none is active."""
        root = doc.rootNode()
        active = doc.activeNode()
        if active is not None and str(active.type()).endswith("mask"):
            active = active.parentNode()  # a mask's layer, not inside the layer's masks
        if active is None or node_key(active) == node_key(root):
            children = root.childNodes()
            return root, (children[-1] if children else None)
        parent = active.parentNode() or root
        return parent, active
