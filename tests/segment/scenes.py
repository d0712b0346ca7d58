"""Test scenes with a known answer: an object cut from one photograph and pasted onto another.

The object's shape is a smooth irregular blob (not a rectangle, so that a box alone is a poor
selection), cut from ``chelsea.jpg`` (the cat) and pasted onto ``astronaut.jpg`` or ``coffee.jpg``.
The pasted shape is the ground-truth mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

DATA = Path(__file__).resolve().parents[1] / "data"


@dataclass(frozen=True)
class Scene:
    rgb: np.ndarray
    truth: np.ndarray
    """bool, the pasted object."""
    box: tuple[int, int, int, int]
    """x, y, width, height: the object's bounds with a little slack, as a user would drag it."""


def photo(name: str, size: tuple[int, int] | None = None) -> np.ndarray:
    with Image.open(DATA / name) as file:
        image = file.convert("RGB")
        if size is not None:
            image = image.resize(size, Image.Resampling.LANCZOS)
        return np.asarray(image).copy()


def blob(height: int, width: int, seed: int) -> np.ndarray:
    """A smooth irregular shape filling roughly half of its (height, width) box."""
    rng = np.random.default_rng(seed)
    angles = np.linspace(0, 2 * np.pi, 360, endpoint=False)
    radius = np.ones_like(angles)
    for k in range(2, 6):
        radius += rng.uniform(0.08, 0.2) * np.cos(k * angles + rng.uniform(0, 2 * np.pi))
    radius /= radius.max()
    xs = width / 2 + (width / 2 - 1) * radius * np.cos(angles)
    ys = height / 2 + (height / 2 - 1) * radius * np.sin(angles)
    mask = np.zeros((height, width), np.uint8)
    cv2.fillPoly(mask, [np.stack([xs, ys], -1).round().astype(np.int32)], 1)
    return mask.astype(bool)


def composite(background: str, seed: int, size: tuple[int, int] | None = None) -> Scene:
    """The cat's face region, cut to a blob, pasted at a random place of ``background``."""
    rgb = photo(background, size)
    source = photo("chelsea.jpg")
    height, width = rgb.shape[:2]
    rng = np.random.default_rng(seed)
    obj_h, obj_w = int(height * 0.45), int(width * 0.35)
    shape = blob(obj_h, obj_w, seed)
    patch = cv2.resize(source[40:260, 110:330], (obj_w, obj_h), interpolation=cv2.INTER_AREA)
    top = int(rng.integers(height // 10, height - obj_h - height // 10))
    left = int(rng.integers(width // 10, width - obj_w - width // 10))
    truth = np.zeros((height, width), bool)
    truth[top : top + obj_h, left : left + obj_w] = shape
    out = rgb.copy()
    out[truth] = patch[shape]
    slack = max(4, round(0.03 * max(obj_w, obj_h)))
    box = (left - slack, top - slack, obj_w + 2 * slack, obj_h + 2 * slack)
    return Scene(out, truth, box)


def iou(mask: np.ndarray, truth: np.ndarray) -> float:
    selected = mask >= 128 if mask.dtype == np.uint8 else mask
    return float((selected & truth).sum() / max(1, (selected | truth).sum()))


def box_mask(box: tuple[int, int, int, int], shape: tuple[int, int]) -> np.ndarray:
    x, y, w, h = box
    mask = np.zeros(shape, bool)
    mask[max(0, y) : y + h, max(0, x) : x + w] = True
    return mask
