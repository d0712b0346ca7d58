"""The thin GIMP glue: read the planned region and the soft selection through GEGL, paste layers.

Implements the shared controller's ``Canvas`` for one ``Gimp.Image``. Only called on the plug-in's main thread
(libgimp talks to GIMP over one pipe and is not thread-safe).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp  # noqa: E402

from underpaint_protocol.controller import NewLayer, UserError  # noqa: E402
from underpaint_protocol.guides_panel import FileReference, HostLayer  # noqa: E402
from underpaint_protocol.jobs import Bounds  # noqa: E402
from underpaint_protocol.segment import SegmentMask  # noqa: E402
from underpaint_protocol.session import ImageData  # noqa: E402

RGBA = "R'G'B'A u8"
GRAY = "Y u8"
COMBINE = {
    "replace": Gimp.ChannelOps.REPLACE,
    "add": Gimp.ChannelOps.ADD,
    "subtract": Gimp.ChannelOps.SUBTRACT,
    "intersect": Gimp.ChannelOps.INTERSECT,
}
"""How a new mask joins the selection: GIMP's own channel operations."""


class GimpCanvas:
    def __init__(self, image: Gimp.Image) -> None:
        self.image = image
        self.live_layer: Any = None
        """The live layer while Live is on (``show_live`` made it)."""

    def is_open(self) -> bool:
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

    def layers(self) -> list[HostLayer]:
        """Every layer, top first, named with its groups ("Group / Layer"); a layer's handle is its id."""
        found: list[HostLayer] = []

        def walk(items: list[Any], path: str) -> None:
            for item in items:
                name = f"{path}{item.get_name()}"
                found.append(HostLayer(int(item.get_id()), name))
                if item.is_group():
                    walk(list(item.get_children()), f"{name} / ")

        walk(list(self.image.get_layers()), "")
        return found

    def _layer(self, key: int) -> Any:
        layer = Gimp.Layer.get_by_id(key)
        if layer is None or not layer.is_valid() or layer.get_image().get_id() != self.image.get_id():
            raise UserError("A control layer or reference was deleted: remove its row, or pick another layer.")
        return layer

    def read_layer_region(self, layer: int, rect: Bounds) -> ImageData:
        """One layer's own pixels over ``rect`` in image coordinates (hidden or not; a group's
        merged children), transparent where the layer has none."""
        item = self._layer(layer)
        _, x, y = item.get_offsets()
        local = Gegl.Rectangle.new(rect.x - x, rect.y - y, rect.width, rect.height)
        data = item.get_buffer().get(local, 1.0, RGBA, Gegl.AbyssPolicy.NONE)
        return ImageData("rgba8", rect.width, rect.height, bytes(data))

    def read_layer(self, layer: int | FileReference) -> ImageData:
        """A reference image: a file as it is, or a whole layer at its own size."""
        if isinstance(layer, FileReference):
            return layer.image()
        item = self._layer(layer)
        _, x, y = item.get_offsets()
        return self.read_layer_region(layer, Bounds(int(x), int(y), int(item.get_width()), int(item.get_height())))

    def apply_selection(self, mask: SegmentMask) -> None:
        """The soft mask at its placement joins the selection by GIMP's own replace / add /
        subtract / intersect: a temporary channel holds it for ``select_item``; one undo step."""
        operation = COMBINE.get(mask.combine)
        if operation is None:
            raise UserError(f"combine must be one of {', '.join(COMBINE)}, not {mask.combine!r}")
        if len(mask.data) != mask.width * mask.height:
            raise UserError(f"expected a {mask.width}x{mask.height} mask, got {len(mask.data)} bytes")
        width, height = self.size()
        selected = list(self.image.get_selected_layers())
        self.image.undo_group_start()
        try:
            channel = Gimp.Channel.new(self.image, "underpaint mask", width, height, 0.0, Gegl.Color.new("black"))
            self.image.insert_channel(channel, None, 0)
            try:
                buffer = channel.get_buffer()
                rect = Gegl.Rectangle.new(mask.x, mask.y, mask.width, mask.height)
                buffer.set(rect, self._channel_format(), bytes(mask.data))
                buffer.flush()
                self.image.select_item(operation, channel)
            finally:
                self.image.remove_channel(channel)
        finally:
            self.image.undo_group_end()
            kept = [layer for layer in selected if layer.is_valid()]
            if kept:  # inserting the channel made it the active drawable
                self.image.set_selected_layers(kept)
        Gimp.displays_flush()

    def points(self, name: str) -> list[tuple[int, int]]:
        """Click points: the anchors of every path called ``name`` (the Paths tool: one click, one
        anchor), in image pixels."""
        found = []
        for path in self.image.get_paths():
            if path.get_name() != name:
                continue
            for stroke in path.get_strokes():
                _, controls, _ = path.stroke_get_points(stroke)
                # a Bezier stroke's points come as (control, anchor, control) triples of (x, y)
                found += [(int(controls[i]), int(controls[i + 1])) for i in range(2, len(controls) - 1, 6)]
        return found

    def ensure_path(self, name: str) -> None:
        """The path for add or remove points, made when missing, and made the active one so the
        Paths tool adds anchors to it."""
        path = next((item for item in self.image.get_paths() if item.get_name() == name), None)
        if path is None:
            path = Gimp.Path.new(self.image, name)
            self.image.insert_path(path, None, 0)
        self.image.set_selected_paths([path])
        Gimp.displays_flush()

    def _channel_format(self) -> str:
        """The bytes' format that a channel stores as they are: its values reach the selection
        unconverted (checked in GIMP 3.0 and 3.2), and a channel follows the image's tone curve."""
        nick = str(getattr(self.image.get_precision(), "value_nick", ""))
        return GRAY if nick.endswith("-linear") and not nick.endswith("non-linear") else "Y' u8"

    def grow(self, width: int, height: int, offset_x: int, offset_y: int) -> None:
        self.image.undo_group_start()
        try:
            self.image.resize(width, height, offset_x, offset_y)
        finally:
            self.image.undo_group_end()

    def scale(self, width: int, height: int) -> None:
        """Image > Scale Image: every layer, channel and the selection resampled (cubic), one undo step."""
        Gimp.context_push()
        self.image.undo_group_start()
        try:
            Gimp.context_set_interpolation(Gimp.InterpolationType.CUBIC)
            self.image.scale(width, height)
        finally:
            self.image.undo_group_end()
            Gimp.context_pop()
        Gimp.displays_flush()

    def paste(self, layers: list[NewLayer], group: str | None) -> list[Any]:
        """Above the selected layer (in its group), a batch inside a new group; one undo group."""
        selected = list(self.image.get_selected_layers())
        anchor = selected[0] if selected else None
        parent, position = (anchor.get_parent(), int(self.image.get_item_position(anchor))) if anchor else (None, 0)
        made: list[Any] = []
        self.image.undo_group_start()
        try:
            if group is not None:
                folder = Gimp.GroupLayer.new(self.image, group)
                self.image.insert_layer(folder, parent, position)
                parent, position = folder, 0
                made.append(folder)
            for index, item in enumerate(layers):
                made.append(self._add_layer(item, parent, position + index))
        finally:
            self.image.undo_group_end()
            # GIMP selects each inserted layer; give the user back the layer they were painting on.
            kept = [layer for layer in selected if layer.is_valid()]
            if kept:
                self.image.set_selected_layers(kept)
        Gimp.displays_flush()
        return made

    def begin_layer(self, name: str, rect: Bounds) -> Any:
        """An upscale's layer, made in GIMP's core and not inserted yet: GIMP records nothing until it
        is, and keeps its pixels (this process holds one tile at a time)."""
        layer = Gimp.Layer.new(
            self.image, name, rect.width, rect.height, Gimp.ImageType.RGBA_IMAGE, 100.0, Gimp.LayerMode.NORMAL
        )
        return layer, rect

    def paste_tile(self, handle: Any, tile: NewLayer) -> None:
        """One tile into the layer's buffer, flushed to GIMP at once; the buffer is let go after each tile
        so its cached tiles leave this process."""
        layer, rect = handle
        image = tile.image
        if image.format != "rgba8":
            raise UserError(f"expected an rgba8 result, got {image.format}")
        buffer = layer.get_buffer()
        place = Gegl.Rectangle.new(tile.x - rect.x, tile.y - rect.y, image.width, image.height)
        buffer.set(place, RGBA, bytes(image.data))
        buffer.flush()

    def end_layer(self, handle: Any, keep: bool) -> list[Any]:
        """Keep: the filled layer goes in above the selected layer (one undo group, like a paste).
        Drop: it is deleted from GIMP's core (it was never in the image)."""
        layer, rect = handle
        if not keep:
            if layer.is_valid():
                layer.delete()
            return []
        selected = list(self.image.get_selected_layers())
        anchor = selected[0] if selected else None
        parent, position = (anchor.get_parent(), int(self.image.get_item_position(anchor))) if anchor else (None, 0)
        self.image.undo_group_start()
        try:
            self.image.insert_layer(layer, parent, position)
            layer.set_offsets(rect.x, rect.y)
        finally:
            self.image.undo_group_end()
            kept = [item for item in selected if item.is_valid()]
            if kept:
                self.image.set_selected_layers(kept)
        layer.update(0, 0, rect.width, rect.height)
        Gimp.displays_flush()
        return [layer]

    def show_preview(self, layer: NewLayer, handle: Any | None) -> Any:
        """The one preview layer, right above the active layer; stepping through a batch replaces it.
        The undo stack is frozen meanwhile: looking at results leaves no undo step."""
        selected = [item for item in self.image.get_selected_layers() if item.is_valid()]
        try:
            with self._unrecorded():
                self._remove_unrecorded(handle)
                anchor = selected[0] if selected else None
                parent = anchor.get_parent() if anchor else None
                position = int(self.image.get_item_position(anchor)) if anchor else 0
                handle = self._add_layer(layer, parent, position)
        finally:
            if selected:
                self.image.set_selected_layers(selected)
        Gimp.displays_flush()
        return handle

    def end_preview(self, handle: Any, keep: NewLayer | None) -> list[Any]:
        """Discard: the preview layer goes (it was never in the undo history, so nothing to undo).
        Apply: the kept result is pasted where the preview was: one undo step."""
        self._remove_unrecorded(handle)
        if keep is None:
            Gimp.displays_flush()
            return []
        return self.paste([keep], None)

    # ---------------------------------------------------------------- live painting (underpaint_protocol.live)

    def read_live(self, rect: Bounds) -> ImageData:
        """The merged image over ``rect`` without the live layer: hidden (undo frozen: no undo step)
        while GIMP makes the visible copy, then shown again."""
        layer = self.live_layer
        if layer is None or not layer.is_valid() or not layer.get_visible():
            return self.read_image(rect)
        with self._unrecorded():
            layer.set_visible(False)
            try:
                return self.read_image(rect)
            finally:
                layer.set_visible(True)

    def show_live(self, layer: NewLayer, handle: Any | None) -> Any:
        """The one live layer on top of the image, made with the undo stack frozen; every later result
        is written into its pixels in place (a plug-in's buffer write is no undo step)."""
        image = layer.image
        if image.format != "rgba8":
            raise UserError(f"expected an rgba8 result, got {image.format}")
        fits = handle is not None and handle.is_valid()
        place = (handle.get_width(), handle.get_height(), *handle.get_offsets()[1:]) if handle and fits else None
        if handle and place == (image.width, image.height, layer.x, layer.y):  # the region is fixed: after the first
            buffer = handle.get_buffer()
            buffer.set(Gegl.Rectangle.new(0, 0, image.width, image.height), RGBA, bytes(image.data))
            buffer.flush()
            handle.update(0, 0, image.width, image.height)
        else:
            selected = [item for item in self.image.get_selected_layers() if item.is_valid()]
            try:
                with self._unrecorded():
                    self._remove_unrecorded(handle)
                    handle = self._add_layer(layer, None, 0)
            finally:
                if selected:
                    self.image.set_selected_layers(selected)
        self.live_layer = handle
        Gimp.displays_flush()
        return handle

    def remove_live(self, handle: Any) -> None:
        """Live off: the live layer goes (it was never in the undo history)."""
        self.live_layer = None
        if self._remove_unrecorded(handle):
            Gimp.displays_flush()

    def live_probe(self, rect: Bounds) -> tuple[Any, ...]:
        """A cheap fingerprint of what the artist can change, to call ``feed_live`` only when it moved:
        every layer's visibility, opacity and offsets (the live layer left out) and the selected
        layers' own pixels over ``rect`` (no visible copy made)."""
        live = self.live_layer.get_id() if self.live_layer is not None and self.live_layer.is_valid() else None
        layers: list[tuple[Any, ...]] = []
        stack = list(self.image.get_layers())
        while stack:
            item = stack.pop()
            if item.get_id() == live:
                continue
            layers.append((item.get_id(), bool(item.get_visible()), item.get_opacity(), tuple(item.get_offsets()[1:])))
            if item.is_group():
                stack.extend(item.get_children())
        pixels = []
        for item in self.image.get_selected_layers():
            if item.get_id() != live and not item.is_group():
                _, ox, oy = item.get_offsets()
                local = Bounds(rect.x - ox, rect.y - oy, rect.width, rect.height)
                pixels.append(bytes(item.get_buffer().get(_rect(local), 1.0, RGBA, Gegl.AbyssPolicy.NONE)))
        return tuple(layers), tuple(pixels)

    @contextmanager
    def _unrecorded(self) -> Iterator[None]:
        """What happens inside leaves no undo step (GIMP counts nested freezes): the preview and live
        layers come and go outside the history."""
        self.image.undo_freeze()
        try:
            yield
        finally:
            self.image.undo_thaw()

    def _remove_unrecorded(self, handle: Any) -> bool:
        """Remove a layer that was never in the undo history (a preview, the live layer) if it is still
        there; True when it was."""
        if handle is None or not handle.is_valid():
            return False
        with self._unrecorded():
            self.image.remove_layer(handle)
        return True

    def _add_layer(self, item: NewLayer, parent: Any, position: int) -> Any:
        image = item.image
        if image.format != "rgba8":
            raise UserError(f"expected an rgba8 result, got {image.format}")
        layer = Gimp.Layer.new(
            self.image, item.name, image.width, image.height, Gimp.ImageType.RGBA_IMAGE, 100.0, Gimp.LayerMode.NORMAL
        )
        self.image.insert_layer(layer, parent, position)
        layer.set_offsets(item.x, item.y)
        buffer = layer.get_buffer()
        buffer.set(Gegl.Rectangle.new(0, 0, image.width, image.height), RGBA, bytes(image.data))
        buffer.flush()
        layer.update(0, 0, image.width, image.height)
        if not item.visible:
            layer.set_visible(False)
        return layer


def _rect(rect: Bounds) -> Gegl.Rectangle:
    return Gegl.Rectangle.new(rect.x, rect.y, rect.width, rect.height)
