"""Resampling between work-crop and model sizes, always to the exact requested size."""

from __future__ import annotations

import cv2
import numpy as np


def resize_exact(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize to exactly (height, width): area averaging down (no aliasing), bicubic up (sharp).

    Mixed up/down uses bilinear. Returns the input itself when no resampling is needed.
    """
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image
    if width <= w and height <= h:
        interp = cv2.INTER_AREA
    elif width >= w and height >= h:
        interp = cv2.INTER_CUBIC
    else:
        interp = cv2.INTER_LINEAR
    out = cv2.resize(image, (width, height), interpolation=interp)
    if image.ndim == 3 and out.ndim == 2:  # OpenCV drops a single channel axis
        out = out[:, :, None]
    return out
