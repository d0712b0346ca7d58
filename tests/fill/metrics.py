"""Measures of an outpaint: how much of the new area is copied from far inside the picture."""

from __future__ import annotations

import cv2
import numpy as np

from underpaint.canvas.geometry import Extents

#: Side of the patches compared; big enough that a match is a real copy, not a chance likeness.
PATCH = 16
#: A new patch is a near-exact copy when its RMS difference to a patch of the original is below this
#: (grey levels): PatchMatch's voting reproduces a coherently copied region to within 2-4.
COPY_RMS = 6.0
#: Only tiles with this much detail (std of grey levels) can count as copies: a flat tile matches any
#: flat region, copied or not, and the issue is about salient pieces.
SALIENT_STD = 8.0


def far_region(shape: tuple[int, int], extend: Extents, far: int) -> np.ndarray:
    """Original pixels more than ``far`` from every side the outpaint extends."""
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w]
    out = np.ones((h, w), bool)
    if extend.left:
        out &= xs >= far
    if extend.top:
        out &= ys >= far
    if extend.right:
        out &= xs < w - far
    if extend.bottom:
        out &= ys < h - far
    return out


def far_copy_share(original: np.ndarray, result: np.ndarray, extend: Extents, far: int) -> float:
    """Share of the new area's PATCH x PATCH tiles (on a grid) that are near-exact copies of a patch
    lying wholly more than ``far`` pixels inside the original from the extended sides.

    ``original``: RGB (h, w, 3); ``result``: RGB of the grown canvas, the original at (left, top).
    Every tile counts in the total; only salient ones (SALIENT_STD) can count as copies.
    """
    h, w = original.shape[:2]
    new = np.ones(result.shape[:2], bool)
    new[extend.top : extend.top + h, extend.left : extend.left + w] = False
    far_ok = far_region((h, w), extend, far)
    # Positions (top-left corners) whose whole patch lies in the far region.
    ok = cv2.erode(far_ok.astype(np.uint8), np.ones((PATCH, PATCH), np.uint8), anchor=(0, 0))
    ok = ok[: h - PATCH + 1, : w - PATCH + 1] > 0
    if not ok.any():
        return 0.0
    src = original.astype(np.float32)
    res = result.astype(np.float32)
    copies = total = 0
    for y in range(0, result.shape[0] - PATCH + 1, PATCH):
        for x in range(0, result.shape[1] - PATCH + 1, PATCH):
            if not new[y : y + PATCH, x : x + PATCH].all():
                continue
            total += 1
            tile = res[y : y + PATCH, x : x + PATCH]
            if tile.mean(axis=2).std() < SALIENT_STD:
                continue
            ssd = cv2.matchTemplate(src, tile, cv2.TM_SQDIFF)
            best = float(ssd[ok].min()) / (PATCH * PATCH * 3)
            copies += best < COPY_RMS**2
    return copies / max(total, 1)
