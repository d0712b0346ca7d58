"""An in-memory stand-in for a GIMP image, implementing the model's Canvas contract.

It keeps what GIMP keeps for the checks that matter: pixels of the visible image and the soft
selection, an ordered layer tree with offsets, canvas resizes (which shift every layer, as
``gimp_image_resize`` does), and undo groups.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from underpaint_protocol.jobs import Bounds
from underpaint_protocol.session import ImageData


@dataclass
class FakeLayer:
    name: str
    x: int
    y: int
    pixels: np.ndarray  # H x W x 4
    parent: FakeLayer | None = None
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
    valid: bool = True
    layers: list[FakeLayer] = field(default_factory=list)  # top first
    reads: list[tuple[str, Bounds]] = field(default_factory=list)
    undo_depth: int = 0
    undo_groups: int = 0
    resizes: list[tuple[int, int, int, int]] = field(default_factory=list)
    active: FakeLayer | None = None

    @classmethod
    def photo(cls, width: int = 160, height: int = 120) -> FakeCanvas:
        yy, xx = np.mgrid[0:height, 0:width]
        rgba = np.stack([xx * 255 // width, yy * 255 // height, (xx + yy) % 256, np.full_like(xx, 255)], -1)
        canvas = cls(width, height, rgba.astype(np.uint8))
        bg = FakeLayer("Background", 0, 0, canvas.background.copy())
        canvas.layers.append(bg)
        canvas.active = bg
        return canvas

    def select(self, x: int, y: int, w: int, h: int, soft: bool = False) -> None:
        mask = np.zeros((self.height, self.width), np.uint8)
        mask[y : y + h, x : x + w] = 255
        if soft:
            mask[y : y + h, x] = 128
        self.mask = mask

    # ---- Canvas contract
    def is_valid(self) -> bool:
        return self.valid

    def size(self) -> tuple[int, int]:
        return self.width, self.height

    def selection(self) -> Bounds | None:
        if self.mask is None or not self.mask.any():
            return None
        ys, xs = np.nonzero(self.mask)
        return Bounds(int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1))

    def read_image(self, rect: Bounds) -> ImageData:
        assert self.undo_depth == 0
        self.reads.append(("image", rect))
        crop = self.background[rect.y : rect.y + rect.height, rect.x : rect.x + rect.width]
        assert crop.shape[:2] == (rect.height, rect.width), "read outside the canvas"
        return ImageData("rgba8", rect.width, rect.height, crop.tobytes())

    def read_mask(self, rect: Bounds) -> ImageData:
        self.reads.append(("mask", rect))
        assert self.mask is not None
        crop = self.mask[rect.y : rect.y + rect.height, rect.x : rect.x + rect.width]
        return ImageData("gray8", rect.width, rect.height, crop.tobytes())

    def anchor(self) -> Any:
        return self.active

    def begin_paste(self) -> None:
        self.undo_depth += 1

    def end_paste(self) -> None:
        self.undo_depth -= 1
        self.undo_groups += 1

    def resize(self, width: int, height: int, offset_x: int, offset_y: int) -> None:
        assert self.undo_depth == 1
        self.resizes.append((width, height, offset_x, offset_y))
        self.width, self.height = width, height
        for layer in self.walk():
            layer.x += offset_x
            layer.y += offset_y

    def _siblings(self, parent: FakeLayer | None) -> list[FakeLayer]:
        if parent is None:
            return self.layers
        assert parent.children is not None
        return parent.children

    def _insert(self, item: FakeLayer, anchor: Any, group: Any) -> None:
        if group is not None:
            item.parent = group
            group.children.append(item)
            return
        parent = anchor.parent if anchor is not None else None
        siblings = self._siblings(parent)
        item.parent = parent
        siblings.insert(siblings.index(anchor) if anchor is not None else 0, item)

    def add_group(self, name: str, anchor: Any) -> Any:
        assert self.undo_depth == 1
        group = FakeLayer(name, 0, 0, np.zeros((0, 0, 4), np.uint8), children=[])
        self._insert(group, anchor, None)
        return group

    def add_layer(self, name: str, image: ImageData, x: int, y: int, anchor: Any, group: Any) -> Any:
        assert self.undo_depth == 1
        pixels = np.frombuffer(bytes(image.data), np.uint8).reshape(image.height, image.width, 4).copy()
        layer = FakeLayer(name, x, y, pixels)
        self._insert(layer, anchor, group)
        return layer

    def flush(self) -> None:
        pass

    # ---- helpers for tests
    def walk(self, items: list[FakeLayer] | None = None) -> list[FakeLayer]:
        out = []
        for item in self.layers if items is None else items:
            out.append(item)
            if item.children is not None:
                out.extend(self.walk(item.children))
        return out
