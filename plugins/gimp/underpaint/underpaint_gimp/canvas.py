"""The thin GIMP glue: read the planned region and the soft selection through GEGL, paste layers.

Implements ``model.Canvas`` for one ``Gimp.Image``. Only called on the plug-in's main thread
(libgimp talks to GIMP over one pipe and is not thread-safe).
"""

from __future__ import annotations

from typing import Any

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp  # noqa: E402

from underpaint_protocol.jobs import Bounds  # noqa: E402
from underpaint_protocol.session import ImageData  # noqa: E402

RGBA = "R'G'B'A u8"
GRAY = "Y u8"


class GimpCanvas:
    def __init__(self, image: Gimp.Image) -> None:
        self.image = image
        self._selected: list[Any] = []

    def is_valid(self) -> bool:
        return bool(self.image.is_valid())

    def size(self) -> tuple[int, int]:
        return int(self.image.get_width()), int(self.image.get_height())

    def selection(self) -> Bounds | None:
        _, non_empty, x1, y1, x2, y2 = Gimp.Selection.bounds(self.image)
        if not non_empty or x2 <= x1 or y2 <= y1:
            return None
        return Bounds(int(x1), int(y1), int(x2 - x1), int(y2 - y1))

    def read_image(self, rect: Bounds) -> ImageData:
        # The merged visible image, made in GIMP's core and never inserted; only the tiles of
        # ``rect`` travel to this process.
        visible = Gimp.Layer.new_from_visible(self.image, self.image, "underpaint visible")
        try:
            data = visible.get_buffer().get(_rect(rect), 1.0, RGBA, Gegl.AbyssPolicy.NONE)
        finally:
            visible.delete()
        return ImageData("rgba8", rect.width, rect.height, bytes(data))

    def read_mask(self, rect: Bounds) -> ImageData:
        selection = self.image.get_selection()
        data = selection.get_buffer().get(_rect(rect), 1.0, GRAY, Gegl.AbyssPolicy.NONE)
        return ImageData("gray8", rect.width, rect.height, bytes(data))

    def anchor(self) -> Any:
        layers = self.image.get_selected_layers()
        return layers[0] if layers else None

    def begin_paste(self) -> None:
        self._selected = list(self.image.get_selected_layers())
        self.image.undo_group_start()

    def end_paste(self) -> None:
        self.image.undo_group_end()
        # GIMP selects each inserted layer; give the user back the layer they were painting on.
        selected = [layer for layer in self._selected if layer.is_valid()]
        if selected:
            self.image.set_selected_layers(selected)

    def resize(self, width: int, height: int, offset_x: int, offset_y: int) -> None:
        self.image.resize(width, height, offset_x, offset_y)

    def _where(self, anchor: Any, group: Any) -> tuple[Any, int]:
        """(parent, position) for a new item: at the bottom of ``group``, else above ``anchor``."""
        if group is not None:
            return group, len(group.get_children())
        if anchor is not None and anchor.is_valid():
            return anchor.get_parent(), int(self.image.get_item_position(anchor))
        return None, 0

    def add_group(self, name: str, anchor: Any) -> Any:
        group = Gimp.GroupLayer.new(self.image, name)
        parent, position = self._where(anchor, None)
        self.image.insert_layer(group, parent, position)
        return group

    def add_layer(self, name: str, image: ImageData, x: int, y: int, anchor: Any, group: Any) -> Any:
        if image.format != "rgba8":
            raise ValueError(f"expected an rgba8 result, got {image.format}")
        layer = Gimp.Layer.new(
            self.image, name, image.width, image.height, Gimp.ImageType.RGBA_IMAGE, 100.0, Gimp.LayerMode.NORMAL
        )
        parent, position = self._where(anchor, group)
        self.image.insert_layer(layer, parent, position)
        layer.set_offsets(x, y)
        buffer = layer.get_buffer()
        buffer.set(Gegl.Rectangle.new(0, 0, image.width, image.height), RGBA, bytes(image.data))
        buffer.flush()
        layer.update(0, 0, image.width, image.height)
        return layer

    def flush(self) -> None:
        Gimp.displays_flush()


def _rect(rect: Bounds) -> Gegl.Rectangle:
    return Gegl.Rectangle.new(rect.x, rect.y, rect.width, rect.height)
