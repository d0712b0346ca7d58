"""Integer rectangles in canvas coordinates (x right, y down, origin at the canvas's top-left)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Box:
    """A half-open pixel rectangle [x, x + width) x [y, y + height); x and y may be negative."""

    x: int
    y: int
    width: int
    height: int

    @property
    def right(self) -> int:
        return self.x + self.width

    @property
    def bottom(self) -> int:
        return self.y + self.height

    @property
    def area(self) -> int:
        return max(self.width, 0) * max(self.height, 0)

    @property
    def is_empty(self) -> bool:
        return self.width <= 0 or self.height <= 0

    @staticmethod
    def from_edges(left: int, top: int, right: int, bottom: int) -> Box:
        return Box(left, top, right - left, bottom - top)

    def intersect(self, other: Box) -> Box:
        left, top = max(self.x, other.x), max(self.y, other.y)
        right, bottom = min(self.right, other.right), min(self.bottom, other.bottom)
        if right <= left or bottom <= top:
            return Box(left, top, 0, 0)
        return Box.from_edges(left, top, right, bottom)

    def union(self, other: Box) -> Box:
        if self.is_empty:
            return other
        if other.is_empty:
            return self
        return Box.from_edges(
            min(self.x, other.x), min(self.y, other.y), max(self.right, other.right), max(self.bottom, other.bottom)
        )

    def contains(self, other: Box) -> bool:
        return self.x <= other.x and self.y <= other.y and other.right <= self.right and other.bottom <= self.bottom

    def translate(self, dx: int, dy: int) -> Box:
        return Box(self.x + dx, self.y + dy, self.width, self.height)

    def pad(self, left: int, top: int, right: int, bottom: int) -> Box:
        return Box.from_edges(self.x - left, self.y - top, self.right + right, self.bottom + bottom)

    def slices(self, origin: Box) -> tuple[slice, slice]:
        """Numpy (rows, cols) slices selecting this rect inside an array that covers ``origin``."""
        return (
            slice(self.y - origin.y, self.bottom - origin.y),
            slice(self.x - origin.x, self.right - origin.x),
        )


@dataclass(frozen=True)
class Extents:
    """How far an outpaint grows the canvas on each side, in pixels (all >= 0)."""

    left: int = 0
    top: int = 0
    right: int = 0
    bottom: int = 0

    @property
    def is_zero(self) -> bool:
        return not (self.left or self.top or self.right or self.bottom)
