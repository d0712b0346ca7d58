"""An in-memory host for the controller: one image with pixels, a soft selection, a layer stack.

It keeps what a real host keeps for the checks that matter: the visible image and the selection, an
ordered layer tree with offsets (top first), canvas growth that shifts every layer, undo steps, and a
log of every region read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from underpaint_protocol.controller import Canvas, Controller, NewLayer, UserError
from underpaint_protocol.jobs import Bounds
from underpaint_protocol.segment import SegmentMask
from underpaint_protocol.session import ImageData


@dataclass
class FakeLayer:
    name: str
    x: int
    y: int
    pixels: np.ndarray  # H x W x 4
    visible: bool = True
    children: list[FakeLayer] | None = None  # a group when not None

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])


@dataclass
class FakeCanvas:
    width: int
    height: int
    background: np.ndarray
    mask: np.ndarray | None = None
    open: bool = True
    layers: list[FakeLayer] = field(default_factory=list)  # top first
    reads: list[tuple[str, Bounds]] = field(default_factory=list)
    undo_steps: list[str] = field(default_factory=list)
    grows: list[tuple[int, int, int, int]] = field(default_factory=list)
    on_paste: Any = None
    selections: list[SegmentMask] = field(default_factory=list)
    """Called inside ``paste`` (a host that runs queued events re-entrantly, like Krita's waitForDone)."""
    live_updates: int = 0
    """How often the one live layer was refilled."""

    @classmethod
    def photo(cls, width: int = 160, height: int = 120) -> FakeCanvas:
        yy, xx = np.mgrid[0:height, 0:width]
        rgba = np.stack([xx * 255 // width, yy * 255 // height, (xx + yy) % 256, np.full_like(xx, 255)], -1)
        canvas = cls(width, height, rgba.astype(np.uint8))
        canvas.layers.append(FakeLayer("Background", 0, 0, canvas.background.copy()))
        return canvas

    def select(self, x: int, y: int, w: int, h: int, soft: bool = False) -> None:
        mask = np.zeros((self.height, self.width), np.uint8)
        mask[max(0, y) : y + h, max(0, x) : x + w] = 255
        if soft:
            mask[y : y + h, x] = 128
        self.mask = mask

    # ---- the Canvas contract
    def is_open(self) -> bool:
        return self.open

    def size(self) -> tuple[int, int]:
        return self.width, self.height

    def selection(self) -> Bounds | None:
        if self.mask is None or not self.mask.any():
            return None
        ys, xs = np.nonzero(self.mask)
        return Bounds(int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1))

    def read_image(self, rect: Bounds) -> ImageData:
        self.reads.append(("image", rect))
        crop = self.background[rect.y : rect.y + rect.height, rect.x : rect.x + rect.width]
        assert crop.shape[:2] == (rect.height, rect.width), "read outside the canvas"
        return ImageData("rgba8", rect.width, rect.height, crop.tobytes())

    def read_mask(self, rect: Bounds) -> ImageData:
        self.reads.append(("mask", rect))
        assert self.mask is not None
        crop = self.mask[rect.y : rect.y + rect.height, rect.x : rect.x + rect.width]
        return ImageData("gray8", rect.width, rect.height, crop.tobytes())

    def grow(self, width: int, height: int, offset_x: int, offset_y: int) -> None:
        self.undo_steps.append("grow")
        self.grows.append((width, height, offset_x, offset_y))
        self.width, self.height = width, height
        for layer in self.walk():
            layer.x += offset_x
            layer.y += offset_y

    def paste(self, layers: list[NewLayer], group: str | None) -> list[Any]:
        if self.on_paste is not None:
            self.on_paste()
        made = [
            FakeLayer(
                item.name,
                item.x,
                item.y,
                np.frombuffer(bytes(item.image.data), np.uint8).reshape(item.image.height, item.image.width, 4),
                item.visible,
            )
            for item in layers
        ]
        self.layers.insert(
            0, FakeLayer(group, 0, 0, np.zeros((0, 0, 4), np.uint8), children=made) if group else made[0]
        )
        if not group:
            assert len(made) == 1
        self.undo_steps.append("paste")
        return made

    def apply_selection(self, mask: SegmentMask) -> None:
        """The segment answer becomes the selection, combined the way a host's selection tools do."""
        self.selections.append(mask)
        new = np.zeros((self.height, self.width), np.uint8)
        new[mask.y : mask.y + mask.height, mask.x : mask.x + mask.width] = np.frombuffer(mask.data, np.uint8).reshape(
            mask.height, mask.width
        )
        old = self.mask if self.mask is not None else np.zeros_like(new)
        combined = {
            "replace": new,
            "add": np.maximum(old, new),
            "subtract": np.minimum(old, 255 - new),
            "intersect": np.minimum(old, new),
        }[mask.combine]
        self.mask = combined.astype(np.uint8)
        self.undo_steps.append("select")

    def show_preview(self, layer: NewLayer, handle: Any | None) -> Any:
        pixels = np.frombuffer(bytes(layer.image.data), np.uint8).reshape(layer.image.height, layer.image.width, 4)
        if handle is None:
            handle = FakeLayer(layer.name, layer.x, layer.y, pixels)
            self.layers.insert(0, handle)
        else:
            handle.name, handle.x, handle.y, handle.pixels = layer.name, layer.x, layer.y, pixels
        return handle

    def end_preview(self, handle: Any, keep: NewLayer | None) -> list[Any]:
        if keep is None:
            self.layers.remove(handle)
            self.undo_steps.append("discard")
            return []
        handle.name = keep.name
        self.undo_steps.append("apply")
        return [handle]

    # ---- the LiveCanvas contract (live painting)
    def read_live(self, rect: Bounds) -> ImageData:
        """The painting without the live layer (this fake's layers are never read back)."""
        self.reads.append(("live", rect))
        crop = self.background[rect.y : rect.y + rect.height, rect.x : rect.x + rect.width]
        assert crop.shape[:2] == (rect.height, rect.width), "read outside the canvas"
        return ImageData("rgba8", rect.width, rect.height, crop.tobytes())

    def show_live(self, layer: NewLayer, handle: Any | None) -> Any:
        """The one live layer, refilled in place: no undo step."""
        self.live_updates += 1
        return self.show_preview(layer, handle)

    def remove_live(self, handle: Any) -> None:
        self.layers.remove(handle)

    # ---- helpers for tests
    def walk(self, items: list[FakeLayer] | None = None) -> list[FakeLayer]:
        out = []
        for item in self.layers if items is None else items:
            out.append(item)
            if item.children is not None:
                out.extend(self.walk(item.children))
        return out


class FakeHost:
    """The host: the active image (None: no image open) and a count of redraws."""

    def __init__(self, canvas: FakeCanvas | None = None) -> None:
        self.active: FakeCanvas | None = canvas
        self.shown = 0
        self.states: list[tuple[str, str]] = []

    def canvas(self) -> Canvas:
        if self.active is None:
            raise UserError("Open an image first.")
        return self.active

    def show(self, controller: Controller) -> None:
        self.shown += 1
        if not self.states or self.states[-1] != (controller.connection, controller.status):
            self.states.append((controller.connection, controller.status))


@dataclass
class TilingCanvas(FakeCanvas):
    """A canvas that scales (nearest pixel: placement checks only) and takes an upscale tile by tile
    (``controller.TileCanvas``), like the Krita and GIMP glue: a detached layer until the last tile."""

    detached: list[FakeLayer] = field(default_factory=list)
    """Layers begun and not yet added or dropped."""
    largest_tile: int = 0
    """The most bytes one paste_tile got: what the client held at once."""

    def scale(self, width: int, height: int) -> None:
        self.undo_steps.append("scale")
        for layer in self.walk():
            rows = np.arange(round(layer.height * height / self.height)) * self.height // height
            cols = np.arange(round(layer.width * width / self.width)) * self.width // width
            layer.pixels = layer.pixels[rows][:, cols]
            layer.x, layer.y = layer.x * width // self.width, layer.y * height // self.height
        self.width, self.height = width, height

    def begin_layer(self, name: str, rect: Bounds) -> Any:
        layer = FakeLayer(name, rect.x, rect.y, np.zeros((rect.height, rect.width, 4), np.uint8))
        self.detached.append(layer)
        return layer

    def paste_tile(self, handle: Any, tile: NewLayer) -> None:
        image = tile.image
        self.largest_tile = max(self.largest_tile, len(image.data))
        pixels = np.frombuffer(bytes(image.data), np.uint8).reshape(image.height, image.width, 4)
        x, y = tile.x - handle.x, tile.y - handle.y
        handle.pixels[y : y + image.height, x : x + image.width] = pixels

    def end_layer(self, handle: Any, keep: bool) -> list[Any]:
        self.detached.remove(handle)
        if not keep:
            return []
        self.layers.insert(0, handle)
        self.undo_steps.append("paste")
        return [handle]
