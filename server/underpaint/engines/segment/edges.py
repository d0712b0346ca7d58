"""Soft object edges for every segment engine: a hard or coarse mask made soft along the image's edges.

``cv2.ximgproc`` (the guided filter) is not in opencv-python-headless, so the guided filter of He et
al. is written here with ``cv2.boxFilter``: the mask follows the image's own edges (hair, fur, blur)
within ``radius`` pixels, instead of a blind feather.
"""

from __future__ import annotations

import cv2
import numpy as np


def guided_filter(guide: np.ndarray, source: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """Edge-preserving smoothing of ``source`` (float32 0..1) guided by the gray ``guide`` (float32 0..1).

    The fast guided filter (He and Sun, 2015): the local linear model is fitted at half resolution when
    the radius allows, then applied to the full-resolution guide, so the edge keeps its full detail.
    """
    height, width = guide.shape
    step = 2 if radius >= 4 and min(height, width) >= 16 else 1
    small_guide, small_source = guide, source
    if step > 1:
        size = (max(1, width // step), max(1, height // step))
        small_guide = cv2.resize(guide, size, interpolation=cv2.INTER_AREA)
        small_source = cv2.resize(source, size, interpolation=cv2.INTER_AREA)
    window = (2 * (radius // step) + 1, 2 * (radius // step) + 1)

    def mean(array: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(array, cv2.CV_32F, window, borderType=cv2.BORDER_REFLECT)

    mean_guide, mean_source = mean(small_guide), mean(small_source)
    variance = mean(small_guide * small_guide) - mean_guide * mean_guide
    covariance = mean(small_guide * small_source) - mean_guide * mean_source
    a = covariance / (variance + eps)
    b = mean_source - a * mean_guide
    mean_a, mean_b = mean(a), mean(b)
    if step > 1:
        mean_a = cv2.resize(mean_a, (width, height), interpolation=cv2.INTER_LINEAR)
        mean_b = cv2.resize(mean_b, (width, height), interpolation=cv2.INTER_LINEAR)
    return mean_a * guide + mean_b


def soft_mask(rgb: np.ndarray, probability: np.ndarray, soften: int | None, threshold: float = 0.5) -> np.ndarray:
    """The uint8 mask at ``rgb``'s size from a probability map (any size, 0..1).

    The map is scaled to the image, cut at ``threshold``, and its edge softened along the image's edges
    over ``soften`` pixels (default: about 0.4 % of the image's longer side, at least 2); 0 keeps it hard.
    """
    height, width = rgb.shape[:2]
    if probability.shape != (height, width):
        probability = cv2.resize(probability.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    hard = (probability >= threshold).astype(np.float32)
    radius = max(2, round(0.004 * max(width, height))) if soften is None else soften
    if radius == 0 or not hard.any() or hard.all():
        return (hard * 255).astype(np.uint8)
    # Only the band along the edge is softened: far inside and far outside stay exactly 255 and 0,
    # and the filter runs only around the band (its support reaches 2 * radius further).
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * radius + 1, 2 * radius + 1))
    band = cv2.dilate(hard, kernel) - cv2.erode(hard, kernel)
    x, y, w, h = cv2.boundingRect((band > 0).astype(np.uint8))
    pad = 2 * radius + 1
    rows = slice(max(0, y - pad), min(height, y + h + pad))
    cols = slice(max(0, x - pad), min(width, x + w + pad))
    gray = cv2.cvtColor(np.ascontiguousarray(rgb[rows, cols, :3]), cv2.COLOR_RGB2GRAY)
    soft = guided_filter(gray.astype(np.float32) / 255.0, hard[rows, cols], radius, eps=1e-3)
    out = hard.copy()
    out[rows, cols] = np.where(band[rows, cols] > 0, np.clip(soft, 0.0, 1.0), hard[rows, cols])
    return np.round(out * 255).astype(np.uint8)
