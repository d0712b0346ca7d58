"""Tiled passes over images larger than a model (or memory) takes at once: no seams, bounded memory.

A pass maps an input image (``in_w`` x ``in_h``) to an output (``out_w`` x ``out_h``) tile by tile.
Tiles are cores of about ``tile`` input pixels, each read with ``margin`` pixels of context on every
side; neighbouring outputs overlap by ``2 * blend`` output pixels around every core border and are
mixed there with complementary linear ramps (separable weights that sum to exactly 1), so a border
shows no step. Rows of tiles run top to bottom and each finished band of output rows is handed to
``emit`` at once: what the pass holds is one tile's output, the rows still being blended with the
next tile row (``2 * blend`` x ``out_w``, float32) and one band of finished rows (about ``tile *
out_h / in_h`` x ``out_w``, uint8) -- never the whole output (:func:`pass_memory` states the bound).

Everything here is numpy/OpenCV and model-agnostic: the caller's ``process`` turns one input tile into
the output pixels of a given output box; :func:`resample` maps a model's native output onto exact
output coordinates, so any factor lands on the same pixel grid whatever the tiling.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from underpaint.canvas.geometry import Box

Process = Callable[[np.ndarray, Box, Box], np.ndarray]
"""``(input tile, the input box it covers, the output box wanted) -> float32 (h, w, C)`` of that box."""
Emit = Callable[[int, np.ndarray], None]
"""``(first output row, uint8 rows (n, out_w, C))``: finished output rows, top to bottom."""


class Cancelled(Exception):
    """The pass was stopped between tiles."""


@dataclass(frozen=True)
class TiledPass:
    in_w: int
    in_h: int
    out_w: int
    out_h: int
    tile: int
    """Input pixels per tile core side (cores are split evenly, so they are at most this)."""
    margin: int = 16
    """Input pixels of context read around each core; half of it (in output pixels) is the blend band."""

    @property
    def scale_x(self) -> float:
        return self.out_w / self.in_w

    @property
    def scale_y(self) -> float:
        return self.out_h / self.in_h

    def cuts(self, length: int) -> list[int]:
        """Core borders along one axis: evenly split, each core at most ``tile``."""
        count = max(1, math.ceil(length / self.tile))
        return [round(k * length / count) for k in range(count + 1)]

    def blend(self, out_cuts: list[int], scale: float) -> int:
        """Half-width of the blend band in output pixels: within the context, and narrower than any core."""
        narrowest = min(b - a for a, b in itertools.pairwise(out_cuts))
        return max(0, min(math.floor(self.margin * scale / 2), (narrowest - 1) // 2))

    @property
    def tiles(self) -> int:
        return (len(self.cuts(self.in_w)) - 1) * (len(self.cuts(self.in_h)) - 1)

    def boxes(self) -> list[tuple[Box, Box]]:
        """Every tile's input box (core plus context) and output box (core plus blend bands), in the
        order :meth:`run` takes them (rows top to bottom, left to right): a caller can compute tiles
        ahead of the pass."""
        xs, ys = self.cuts(self.in_w), self.cuts(self.in_h)
        out_xs = [round(x * self.scale_x) for x in xs]
        out_ys = [round(y * self.scale_y) for y in ys]
        bx, by = self.blend(out_xs, self.scale_x), self.blend(out_ys, self.scale_y)
        return [
            (
                Box.from_edges(
                    max(0, xs[i] - self.margin),
                    max(0, ys[j] - self.margin),
                    min(self.in_w, xs[i + 1] + self.margin),
                    min(self.in_h, ys[j + 1] + self.margin),
                ),
                Box.from_edges(
                    max(0, out_xs[i] - bx),
                    max(0, out_ys[j] - by),
                    min(self.out_w, out_xs[i + 1] + bx),
                    min(self.out_h, out_ys[j + 1] + by),
                ),
            )
            for j in range(len(ys) - 1)
            for i in range(len(xs) - 1)
        ]

    def run(
        self,
        read: Callable[[Box], np.ndarray],
        process: Process,
        emit: Emit,
        cancel: threading.Event | None = None,
        on_tile: Callable[[], None] | None = None,
    ) -> None:
        """Run every tile (cancel is checked before each) and emit the output rows as they finish."""
        xs, ys = self.cuts(self.in_w), self.cuts(self.in_h)
        out_xs = [round(x * self.scale_x) for x in xs]
        out_ys = [round(y * self.scale_y) for y in ys]
        bx, by = self.blend(out_xs, self.scale_x), self.blend(out_ys, self.scale_y)
        boxes = self.boxes()
        columns = len(xs) - 1
        top: np.ndarray | None = None  # rows still blending with this tile row: the row above's share
        for j in range(len(ys) - 1):
            last_row = j == len(ys) - 2
            r0, r1 = boxes[j * columns][1].y, boxes[j * columns][1].bottom
            f1 = self.out_h if last_row else out_ys[j + 1] - by
            wy = _ramp(r0, r1, out_ys[j], out_ys[j + 1], by, j == 0, last_row)
            band: np.ndarray | None = None
            below: np.ndarray | None = None
            left: np.ndarray | None = None  # columns still blending with the next tile: this tile's share
            for i in range(len(xs) - 1):
                if cancel is not None and cancel.is_set():
                    raise Cancelled()
                last_col = i == len(xs) - 2
                source, target = boxes[j * columns + i]
                c0, c1 = target.x, target.right
                g1 = self.out_w if last_col else out_xs[i + 1] - bx
                out = np.asarray(process(read(source), source, target), np.float32)
                if out.strides[1] != out.itemsize * out.shape[2]:  # pixels must lie side by side in a row
                    out = np.ascontiguousarray(out)
                if band is None:
                    channels = out.shape[2]
                    band = np.empty((f1 - r0, self.out_w, channels), np.uint8)
                    below = None if last_row else np.empty((r1 - f1, self.out_w, channels), np.float32)
                # every channel of a pixel gets its column's weight: one row of weights per pixel row
                wx = np.repeat(_ramp(c0, c1, out_xs[i], out_xs[i + 1], bx, i == 0, last_col), channels)
                # the weights differ from 1 only in the strips blending with a neighbour: weigh just those
                if j > 0:
                    _weigh(out[: 2 * by], wy[: 2 * by, None])
                if not last_row:
                    _weigh(out[f1 - r0 :], wy[f1 - r0 :, None])
                if i > 0:
                    _weigh(out[:, : 2 * bx], wx[None, : 2 * bx * channels])
                if not last_col:
                    _weigh(out[:, g1 - c0 :], wx[None, (g1 - c0) * channels :])
                if left is not None:
                    out[:, : left.shape[1]] += left
                if top is not None:
                    out[: top.shape[0], : g1 - c0] += top[:, c0:g1]
                # rounded and saturated into the band in one pass (what np.clip(np.rint(...)) gives);
                # addWeighted's float-to-uint8 path is vectorised: ~20x faster than cv2.add with a scalar
                core = out[: f1 - r0, : g1 - c0]
                cv2.addWeighted(core, 1.0, core, 0.0, 0.0, dst=band[:, c0:g1], dtype=cv2.CV_8U)
                if below is not None:
                    below[:, c0:g1] = out[f1 - r0 :, : g1 - c0]
                left = None if last_col else out[:, g1 - c0 :].copy()
                if on_tile is not None:
                    on_tile()
            assert band is not None
            emit(r0, band)
            top = below


def _weigh(pixels: np.ndarray, weights: np.ndarray) -> None:
    """Multiply (h, w, C) pixels lying side by side in each row, in place, by weights per row (h, 1) or
    per row element (1, w * C): as (h, w * C) rows, since numpy broadcasting a weight over the C
    channels alone runs about 10x slower."""
    rows = pixels.view()
    rows.shape = (pixels.shape[0], pixels.shape[1] * pixels.shape[2])  # raises rather than copies
    np.multiply(rows, weights, out=rows)


def _ramp(start: int, end: int, cut0: int, cut1: int, blend: int, first: bool, last: bool) -> np.ndarray:
    """One tile's weights over output pixels [start, end): rising across the band around ``cut0``,
    falling across the band around ``cut1``; a neighbour's ramp is exactly the complement."""
    centres = np.arange(start, end, dtype=np.float32) + 0.5
    weights = np.ones(end - start, np.float32)
    if blend > 0:
        if not first:
            weights *= np.clip((centres - (cut0 - blend)) / (2 * blend), 0.0, 1.0)
        if not last:
            weights *= 1.0 - np.clip((centres - (cut1 - blend)) / (2 * blend), 0.0, 1.0)
    return weights


def resample(
    native: np.ndarray, source: Box, native_scale: int, target: Box, scale_x: float, scale_y: float
) -> np.ndarray:
    """The pixels of output box ``target`` from ``native``: ``source`` (input pixels) scaled by the
    model's ``native_scale``. Output pixel X samples input coordinate ``(X + 0.5) / scale - 0.5``, the
    same for every tile, so tiles agree exactly; a whole-pixel shift is a crop (a view of ``native``),
    anything else Lanczos (with an anti-alias blur first when it shrinks). float32 in, float32 out
    (values may ring past the range)."""
    source_pixels: np.ndarray = np.asarray(native, np.float32)
    sx, sy = native_scale / scale_x, native_scale / scale_y
    tx = ((target.x + 0.5) / scale_x - source.x) * native_scale - 0.5
    ty = ((target.y + 0.5) / scale_y - source.y) * native_scale - 0.5
    if abs(sx - 1) < 1e-9 and abs(sy - 1) < 1e-9 and abs(tx - round(tx)) < 1e-6 and abs(ty - round(ty)) < 1e-6:
        x, y = round(tx), round(ty)
        crop = source_pixels[y : y + target.height, x : x + target.width]
        if crop.shape[:2] == (target.height, target.width):
            return crop
    if sx > 1 or sy > 1:  # shrinking: remove what the new grid cannot hold first
        sigma_x, sigma_y = 0.5 * math.sqrt(max(sx * sx - 1, 0.0)), 0.5 * math.sqrt(max(sy * sy - 1, 0.0))
        source_pixels = cv2.GaussianBlur(source_pixels, (0, 0), sigmaX=max(sigma_x, 1e-3), sigmaY=max(sigma_y, 1e-3))
    matrix = np.array([[sx, 0.0, tx], [0.0, sy, ty]], np.float64)
    out = cv2.warpAffine(
        source_pixels,
        matrix,
        (target.width, target.height),
        flags=cv2.INTER_LANCZOS4 | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REFLECT,
    )
    return out[:, :, None] if out.ndim == 2 else out


def edge_aware_sharpen(rgb: np.ndarray, sigma: float, amount: float = 0.6, edge_level: float = 12.0) -> np.ndarray:
    """Unsharp mask applied only where the image has edges (not on flat areas or noise): what makes a
    resampled upscale look crisp without halos in the sky. float32 0-255 in and out."""
    blurred = cv2.GaussianBlur(rgb, (0, 0), sigmaX=sigma)
    grey = cv2.cvtColor(blurred, cv2.COLOR_RGB2GRAY)
    edges = np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3))
    weight = cv2.GaussianBlur(np.clip(edges / (edge_level * 4.0), 0.0, 1.0), (0, 0), sigmaX=sigma)
    return rgb + amount * weight[:, :, None] * (rgb - blurred)


def pass_memory(tiled: TiledPass, channels: int, tile_bytes: int) -> int:
    """Bytes a pass holds at most beyond its input and the model: the blend rows (float32, twice while
    swapping), one band of finished rows (uint8) and ``tile_bytes`` for one tile's buffers."""
    band_rows = math.ceil(tiled.tile * tiled.scale_y) + tiled.margin * tiled.scale_y
    blend_rows = tiled.margin * tiled.scale_y
    return int(2 * blend_rows * tiled.out_w * channels * 4 + band_rows * tiled.out_w * channels + tile_bytes)
