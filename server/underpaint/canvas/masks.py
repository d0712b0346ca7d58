"""Denoise and composite masks from a soft selection, built from exact distances to the selection.

Distances (instead of dilate + Gaussian blur) give ramps whose support ends exactly where we say, so
"alpha 0 beyond the blend band" and "fully opaque inside the selection" hold by construction.
"""

from __future__ import annotations

import cv2
import numpy as np


def distance_to(region: np.ndarray) -> np.ndarray:
    """Euclidean distance (float32) of every pixel to the nearest pixel where ``region`` is true (0 on it)."""
    if not region.any():
        return np.full(region.shape, np.float32(1e9), np.float32)
    outside = np.ascontiguousarray((~region).astype(np.uint8))
    return cv2.distanceTransform(outside, cv2.DIST_L2, cv2.DIST_MASK_5)


def ramp(distance: np.ndarray, inner: float, width: float) -> np.ndarray:
    """uint8: 255 where distance <= inner, a smoothstep fall to exactly 0 at inner + width."""
    if width <= 0:
        return np.where(distance <= inner, np.uint8(255), np.uint8(0))
    t = np.clip((distance - np.float32(inner)) / np.float32(width), 0.0, 1.0)
    alpha = 1.0 - t * t * (3.0 - 2.0 * t)
    return np.rint(alpha * 255.0).astype(np.uint8)


def denoise_mask(selection: np.ndarray, grow: float, feather: float) -> np.ndarray:
    """255 on every selected pixel (any coverage) and ``grow`` beyond, then a ``feather``-wide fall-off."""
    selected = selection > 0
    mask = ramp(distance_to(selected), grow, feather)
    mask[selected] = 255
    return mask


def composite_mask(selection: np.ndarray, blend: float) -> np.ndarray:
    """The paste-back alpha: the host's soft selection, plus a ``blend``-wide fall-off outside its
    fully selected part; 255 wherever the selection is 255."""
    full = selection == 255
    mask = ramp(distance_to(full), 0.0, blend) if full.any() else np.zeros_like(selection)
    return np.maximum(mask, selection)
