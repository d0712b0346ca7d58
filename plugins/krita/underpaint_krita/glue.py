"""Krita's side: read the region and selection the daemon asks for, paste results as layers.

Implements the shared controller's ``Canvas`` for one Krita document. Only calls the ``krita`` API
objects it is given (a real ``Krita.instance()`` or the fake in tests/krita), so it runs without Qt.
Must be called on Krita's UI thread. Mask/crop/placement math lives in the daemon and
``underpaint_protocol``, never here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from underpaint_protocol.controller import CanvasClosed, NewLayer, UserError
from underpaint_protocol.guides_panel import FileReference, HostLayer
from underpaint_protocol.jobs import Bounds
from underpaint_protocol.segment import COMBINE_MODES, SegmentMask
from underpaint_protocol.session import ImageData

SUPPORTED = ("RGBA", "U8")
SCALE_FILTER = "Bicubic"
"""Krita's filter id for scaling the document before an upscale lands (Image > Scale Image's default)."""


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
    """Krita as the controller's host: which document Generate works on."""

    def __init__(
        self,
        app: Any,
        to_qbytes: Callable[[bytes], Any] = lambda data: data,
        new_selection: Callable[[], Any] | None = None,
    ) -> None:
        self.app = app
        self.to_qbytes = to_qbytes
        self.new_selection = new_selection  # krita.Selection in Krita; the fake's in tests

    def active_canvas(self) -> KritaCanvas:
        """The active document, refused with what to do when the plugin cannot read it."""
        doc = self.app.activeDocument()
        if doc is None:
            raise UserError("Open an image first (File > New or File > Open).")
        model, depth = doc.colorModel(), doc.colorDepth()
        if (model, depth) != SUPPORTED:
            raise UserError(
                f"underpaint works on 8-bit RGBA images; this one is {model}/{depth}. Convert it with "
                "Image > Convert Image Color Space (RGB/Alpha, 8-bit integer/channel), then Generate again."
            )
        return KritaCanvas(self, node_key(doc.rootNode()), doc.name() or "Untitled")


class KritaCanvas:
    """One Krita document, found again by its root node's id on every call (it may have been closed)."""

    def __init__(self, glue: KritaGlue, key: str, name: str) -> None:
        self.glue = glue
        self.key = key
        self.name = name
        self.live_node: Any = None
        """The live layer while Live is on (``show_live`` made it)."""
        self.painting_node: Any = None
        """The layer that was active when the live layer came: Krita activates a new layer a moment
        after it is added, and strokes must keep landing on the artist's layer."""

    def document(self) -> Any:
        for doc in self.glue.app.documents():
            if node_key(doc.rootNode()) == self.key:
                return doc
        raise CanvasClosed("the document of this job was closed")

    def is_open(self) -> bool:
        try:
            self.document()
        except CanvasClosed:
            return False
        return True

    def size(self) -> tuple[int, int]:
        doc = self.document()
        return doc.width(), doc.height()

    def selection(self) -> Bounds | None:
        selection = self.document().selection()
        if selection is None or selection.width() <= 0 or selection.height() <= 0:
            return None
        return Bounds(selection.x(), selection.y(), selection.width(), selection.height())

    def read_image(self, rect: Bounds) -> ImageData:
        """The merged visible image over ``rect`` (8-bit RGBA documents: BGRA bytes)."""
        doc = self.document()
        doc.waitForDone()  # let pending strokes reach the projection
        data = bytes(doc.pixelData(rect.x, rect.y, rect.width, rect.height))
        if len(data) != rect.width * rect.height * 4:
            raise UserError(f"Krita returned {len(data)} bytes for a {rect.width}x{rect.height} region")
        return ImageData("bgra8", rect.width, rect.height, data)

    def read_mask(self, rect: Bounds) -> ImageData:
        """The soft selection over ``rect`` (0 = not selected .. 255)."""
        selection = self.document().selection()
        if selection is None:
            return ImageData("gray8", rect.width, rect.height, bytes(rect.width * rect.height))
        data = bytes(selection.pixelData(rect.x, rect.y, rect.width, rect.height))
        if len(data) != rect.width * rect.height:
            raise UserError(f"Krita returned {len(data)} selection bytes for a {rect.width}x{rect.height} region")
        return ImageData("gray8", rect.width, rect.height, data)

    def layers(self) -> list[HostLayer]:
        """Every layer, top first, named with its groups ("Group / Layer"); a layer's handle is its
        unique id (a mask holds no picture)."""
        found: list[HostLayer] = []

        def walk(node: Any, path: str) -> None:
            for child in reversed(node.childNodes()):  # childNodes() run bottom to top
                name = f"{path}{child.name()}"
                found.append(HostLayer(node_key(child), name, not str(child.type()).endswith("mask")))
                if str(child.type()) == "grouplayer":
                    walk(child, f"{name} / ")

        walk(self.document().rootNode(), "")
        return found

    def _node(self, key: str) -> Any:
        def find(node: Any) -> Any:
            for child in node.childNodes():
                if node_key(child) == key:
                    return child
                found = find(child)
                if found is not None:
                    return found
            return None

        node = find(self.document().rootNode())
        if node is None:
            raise UserError("A control layer or reference was deleted: remove its row, or pick another layer.")
        return node

    def read_layer_region(self, layer: str, rect: Bounds) -> ImageData:
        """One layer's own pixels over ``rect`` (hidden or not): a paint layer's pixels, any other
        layer's projection (a group's merged children, a vector or file layer's rendering)."""
        node = self._node(layer)
        self.document().waitForDone()
        read = node.pixelData if str(node.type()) == "paintlayer" else node.projectionPixelData
        data = bytes(read(rect.x, rect.y, rect.width, rect.height))
        if len(data) != rect.width * rect.height * 4:
            raise UserError(f"Krita returned {len(data)} bytes for a {rect.width}x{rect.height} layer region")
        return ImageData("bgra8", rect.width, rect.height, data)

    def read_layer(self, layer: str | FileReference) -> ImageData:
        """A reference image: a file as it is, or a layer over its own bounds."""
        if isinstance(layer, FileReference):
            return layer.image()
        bounds = self._node(layer).bounds()
        if bounds.width() <= 0 or bounds.height() <= 0:
            raise UserError("A reference layer is empty: paint or paste a picture into it first.")
        return self.read_layer_region(layer, Bounds(bounds.x(), bounds.y(), bounds.width(), bounds.height()))

    def apply_selection(self, mask: SegmentMask) -> None:
        """The soft mask at its placement joins the selection by Krita's own replace / add /
        subtract / intersect (no selection counts as an empty one). Krita's scripting API sets the
        global selection outside its undo history (``Document.setSelection``), so this is no undo step."""
        if mask.combine not in COMBINE_MODES:
            raise UserError(f"combine must be one of {', '.join(COMBINE_MODES)}, not {mask.combine!r}")
        if len(mask.data) != mask.width * mask.height:
            raise UserError(f"expected a {mask.width}x{mask.height} mask, got {len(mask.data)} bytes")
        if self.glue.new_selection is None:
            raise UserError("this Krita build offers no Selection class to scripts")
        doc = self.document()
        incoming = self.glue.new_selection()
        incoming.setPixelData(self.glue.to_qbytes(bytes(mask.data)), mask.x, mask.y, mask.width, mask.height)
        current = doc.selection()
        combine = mask.combine
        if combine == "replace" or (combine == "add" and current is None):
            result = incoming
        elif current is None:  # subtract from / intersect with nothing: nothing
            result = None
        else:
            result = current
            {"add": result.add, "subtract": result.subtract, "intersect": result.intersect}[combine](incoming)
        if result is not None and (result.width() <= 0 or result.height() <= 0):
            result = None
        doc.setSelection(result)
        doc.waitForDone()

    def grow(self, width: int, height: int, offset_x: int, offset_y: int) -> None:
        """Krita's own Image > Resize Canvas (its own undo step)."""
        doc = self.document()
        doc.resizeImage(-offset_x, -offset_y, width, height)
        doc.waitForDone()

    def scale(self, width: int, height: int) -> None:
        """Krita's own Image > Scale Image To New Size: every layer resampled (bicubic), one undo step,
        the resolution kept (so the print size grows with the pixels)."""
        doc = self.document()
        doc.scaleImage(width, height, round(doc.xRes()), round(doc.yRes()), SCALE_FILTER)
        doc.waitForDone()

    def paste(self, layers: list[NewLayer], group: str | None) -> list[Any]:
        """Right above the active layer; a batch in one group, first item on top.

        Layers are filled before they join the image, so adding them is one undo step (Krita's
        Node.addChildNode is one undoable command; a group filled while detached goes in as one)."""
        doc = self.document()
        nodes = []
        for item in layers:
            node = doc.createNode(item.name, "paintlayer")
            node.setPixelData(
                self.glue.to_qbytes(bgra_from(item.image)), item.x, item.y, item.image.width, item.image.height
            )
            if not item.visible:
                node.setVisible(False)
            nodes.append(node)
        parent, above = self._insertion_point(doc)
        if group is None:
            for node in nodes:
                parent.addChildNode(node, above)
        else:
            folder = doc.createGroupLayer(group)
            below = None
            for node in reversed(nodes):  # childNodes() run bottom to top: item 0 ends on top
                folder.addChildNode(node, below)
                below = node
            parent.addChildNode(folder, above)
        doc.refreshProjection()
        return nodes

    def _insertion_point(self, doc: Any) -> tuple[Any, Any]:
        """(parent, above): right above the active layer, but under the live layer (Apply lands over
        the painting)."""
        parent, above = _insertion_point(doc)
        live = self.live_node
        if live is not None and above is not None and node_key(above) == node_key(live):
            above = _below(parent, live)
        return parent, above

    def begin_layer(self, name: str, rect: Bounds) -> Any:
        """An upscale's paint layer, made outside the image: Krita records nothing until it is added,
        and keeps its pixels in its own tiled (swappable) memory, not in Python."""
        return self.document().createNode(name, "paintlayer")

    def paste_tile(self, handle: Any, tile: NewLayer) -> None:
        """One tile into the detached layer (a paint device has no bounds: the document is scaled only
        after the last tile)."""
        image = tile.image
        handle.setPixelData(self.glue.to_qbytes(bgra_from(image)), tile.x, tile.y, image.width, image.height)

    def end_layer(self, handle: Any, keep: bool) -> list[Any]:
        """Keep: the filled layer joins the image above the active layer (one undo step, like a paste).
        Drop: it was never added, so there is nothing to undo; Krita frees it with its last reference."""
        if not keep:
            return []
        doc = self.document()
        parent, above = self._insertion_point(doc)
        parent.addChildNode(handle, above)
        doc.refreshProjection()
        return [handle]

    def show_preview(self, layer: NewLayer, handle: Any | None) -> Any:
        """The one preview layer: made right above the active layer the first time (Krita records
        adding it), refilled in place for the batch's other items (pixel writes are no undo step)."""
        doc = self.document()
        pixels = self.glue.to_qbytes(bgra_from(layer.image))
        if handle is None:
            handle = doc.createNode(layer.name, "paintlayer")
            handle.setPixelData(pixels, layer.x, layer.y, layer.image.width, layer.image.height)
            parent, above = _insertion_point(doc)
            parent.addChildNode(handle, above)
        else:
            handle.setName(layer.name)
            handle.setPixelData(pixels, layer.x, layer.y, layer.image.width, layer.image.height)
        doc.refreshProjection()
        return handle

    def end_preview(self, handle: Any, keep: NewLayer | None) -> list[Any]:
        """Apply: the preview layer becomes the result layer (named as a pasted one; the one undo step
        is its adding). Discard: the layer is removed (Krita's own undoable removal)."""
        doc = self.document()
        if keep is None:
            _step_off(doc, handle)
            handle.remove()
            doc.refreshProjection()
            return []
        handle.setName(keep.name)
        doc.refreshProjection()
        return [handle]

    # ---------------------------------------------------------------- live painting (underpaint_protocol.live)

    def read_live(self, rect: Bounds) -> ImageData:
        """The merged image over ``rect`` without the live layer: it is hidden while Krita recomposes
        and read (visibility set from a script is no undo step), then shown again."""
        node = self.live_node
        if node is None or not node.visible():
            return self.read_image(rect)
        doc = self.document()
        node.setVisible(False)
        try:
            doc.refreshProjection()
            return self.read_image(rect)
        finally:
            node.setVisible(True)
            doc.refreshProjection()

    def show_live(self, layer: NewLayer, handle: Any | None) -> Any:
        """The one live layer on top of the image (adding it is Krita's one undo step; the active layer
        stays active); every later result refills its pixels in place (pixel writes from a script are
        no undo step)."""
        doc = self.document()
        pixels = self.glue.to_qbytes(bgra_from(layer.image))
        handle = handle if handle is not None else self.live_node  # Krita may run a result re-entrantly
        if handle is None:
            handle = self.live_node = doc.createNode(layer.name, "paintlayer")
            handle.setPixelData(pixels, layer.x, layer.y, layer.image.width, layer.image.height)
            root, self.painting_node = doc.rootNode(), doc.activeNode()
            children = root.childNodes()
            root.addChildNode(handle, children[-1] if children else None)
            self.keep_painting_active()
        else:
            handle.setPixelData(pixels, layer.x, layer.y, layer.image.width, layer.image.height)
        self.live_node = handle
        doc.refreshProjection()
        return handle

    def keep_painting_active(self) -> None:
        """Give the artist's layer back when Krita made the live layer the active one (it does so a
        moment after adding a layer); called right away and on every check while Live is on."""
        live, painting = self.live_node, self.painting_node
        if live is None or painting is None or painting.parentNode() is None:
            return
        doc = self.document()
        active = doc.activeNode()
        if active is not None and node_key(active) == node_key(live):
            doc.setActiveNode(painting)

    def remove_live(self, handle: Any) -> None:
        """Live off: the live layer goes (the painting's active layer stays active)."""
        self.live_node = None
        doc = self.document()
        _step_off(doc, handle)
        handle.remove()
        doc.refreshProjection()

    def live_probe(self, rect: Bounds) -> tuple[Any, ...]:
        """A cheap fingerprint of what the artist can change, to call ``feed_live`` only when it moved:
        every layer's visibility, opacity and blending (the live layer left out) and the active
        layer's own pixels over ``rect`` (no recomposing: a copy of one layer's tiles)."""
        doc = self.document()
        live = node_key(self.live_node) if self.live_node is not None else None
        layers: list[tuple[Any, ...]] = []
        stack = list(doc.rootNode().childNodes())
        while stack:
            node = stack.pop()
            key = node_key(node)
            if key == live:
                continue
            layers.append((key, bool(node.visible()), node.opacity(), node.blendingMode()))
            stack.extend(node.childNodes())
        active = doc.activeNode()
        pixels = b""
        if active is not None and node_key(active) != live:
            pixels = bytes(active.pixelData(rect.x, rect.y, rect.width, rect.height))
        return tuple(layers), node_key(active) if active is not None else None, pixels


def _below(parent: Any, node: Any) -> Any:
    """The sibling right under ``node`` in ``parent`` (None when it is the bottom one)."""
    keys = [node_key(child) for child in parent.childNodes()]
    index = keys.index(node_key(node)) if node_key(node) in keys else 0
    return parent.childNodes()[index - 1] if index > 0 else None


def _step_off(doc: Any, node: Any) -> None:
    """Make the layer below ``node`` active before ``node`` goes: Krita 5 keeps reporting a removed
    active node, and a paste placed above it (Apply all) would land nowhere."""
    active = doc.activeNode()
    if active is None or node_key(active) != node_key(node):
        return
    parent = node.parentNode()
    siblings = parent.childNodes() if parent is not None else []
    keys = [node_key(sibling) for sibling in siblings]
    index = keys.index(node_key(node)) if node_key(node) in keys else -1
    below = siblings[index - 1] if index > 0 else None
    doc.setActiveNode(below if below is not None else parent)


def _insertion_point(doc: Any) -> tuple[Any, Any]:
    """(parent, above): right above the active layer; above the top layer when none is active."""
    root = doc.rootNode()
    active = doc.activeNode()
    if active is not None and str(active.type()).endswith("mask"):
        active = active.parentNode()  # a mask's layer, not inside the layer's masks
    parent = active.parentNode() if active is not None else None
    if active is None or node_key(active) == node_key(root) or parent is None:
        children = root.childNodes()
        return root, (children[-1] if children else None)
    if node_key(active) not in {node_key(child) for child in parent.childNodes()}:  # removed meanwhile
        children = root.childNodes()
        return root, (children[-1] if children else None)
    return parent, active
