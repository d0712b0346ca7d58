"""The result layer and the one 'over' rule used both inside the pipeline and by clients.

Rounding rule (straight alpha, 8 bit, exact integers). With source colour s and alpha a, destination
colour d and alpha b, all in 0..255::

    A     = a * 255 + b * (255 - a)              # result alpha, scaled by 255
    alpha = (A + 127) // 255
    rgb   = (s * a * 255 + d * b * (255 - a) + A // 2) // A      (0 when A == 0)

and wherever a == 0 the destination pixel is returned untouched, bit for bit. Over an opaque
destination (b = 255) this is ``(s * a + d * (255 - a) + 127) // 255``, i.e. round-half-up of the
usual mix; a = 255 yields s exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from underpaint.canvas.geometry import Box


@dataclass(frozen=True)
class PixelLayer:
    """An RGBA (straight alpha) layer to place at (x, y) in the original canvas's coordinates.

    ``pixels`` is trimmed to the smallest rectangle with non-zero alpha; ``canvas`` is the canvas
    after the job (larger than the original for outpaint, which is why x and y may be negative).
    """

    pixels: np.ndarray
    x: int
    y: int
    canvas: Box

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def rect(self) -> Box:
        """Where the layer sits, in original canvas coordinates."""
        return Box(self.x, self.y, self.width, self.height)


def over(src_rgb: np.ndarray, src_alpha: np.ndarray, dst_rgba: np.ndarray) -> np.ndarray:
    """Source over destination with the module's exact rounding rule; all arrays of one (h, w)."""
    a = src_alpha.astype(np.uint32)[..., None]
    b = dst_rgba[..., 3:4].astype(np.uint32)
    inv = 255 - a
    big_a = a * 255 + b * inv
    num = src_rgb.astype(np.uint32) * (a * 255) + dst_rgba[..., :3].astype(np.uint32) * (b * inv)
    rgb = (num + big_a // 2) // np.maximum(big_a, 1)
    out = np.empty(dst_rgba.shape, np.uint8)
    out[..., :3] = rgb
    out[..., 3:4] = (big_a + 127) // 255
    untouched = src_alpha == 0
    out[untouched] = dst_rgba[untouched]
    return out


def composite_over(original_rgba_region: np.ndarray, layer: PixelLayer, region: Box) -> np.ndarray:
    """Place ``layer`` at its offset over ``original_rgba_region`` (which covers ``region``).

    Returns a new RGBA array of the region's size; pixels the layer does not cover, or covers with
    alpha 0, are copied unchanged. ``region`` may extend past the canvas (outpaint), in which case the
    caller passes transparent pixels there.
    """
    if original_rgba_region.shape != (region.height, region.width, 4):
        raise ValueError(f"region {region} does not match array shape {original_rgba_region.shape}")
    out = original_rgba_region.copy()
    inter = layer.rect.intersect(region)
    if inter.is_empty:
        return out
    dst = inter.slices(region)
    src = inter.slices(layer.rect)
    pixels = layer.pixels[src]
    out[dst] = over(pixels[..., :3], pixels[..., 3], original_rgba_region[dst])
    return out
