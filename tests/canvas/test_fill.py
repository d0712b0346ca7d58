"""content_aware_fill on its own."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.canvas.helpers import photo
from underpaint.canvas import content_aware_fill
from underpaint.errors import JobError


def test_unmasked_unchanged_and_seeded():
    img = photo("chelsea")[..., :3].copy()
    mask = np.zeros(img.shape[:2], np.uint8)
    mask[100:180, 150:260] = 255
    mask[20:25, 20:400] = 90  # soft
    a = content_aware_fill(img, mask, seed=1)
    assert np.array_equal(a[mask == 0], img[mask == 0])
    assert np.array_equal(a, content_aware_fill(img, mask, seed=1))
    assert not np.array_equal(a, content_aware_fill(img, mask, seed=2))
    assert not np.array_equal(a[mask == 255], img[mask == 255])


def test_fill_is_textured_and_matches_surroundings():
    img = photo("coffee")[..., :3].copy()
    mask = np.zeros(img.shape[:2], np.uint8)
    mask[250:380, 20:180] = 255  # wooden table, lower left
    out = content_aware_fill(img, mask).astype(np.float32)
    hole = out[250:380, 20:180]
    near = cv2.dilate(mask, np.ones((41, 41), np.uint8)) > 0
    ring = img[near & (mask == 0)].astype(float)
    # Colour close to the surroundings, and not a flat blur: local detail comparable to them.
    assert np.abs(hole.reshape(-1, 3).mean(axis=0) - ring.mean(axis=0)).max() < 30
    detail = np.abs(np.diff(hole, axis=1)).mean()
    ring_detail = np.abs(np.diff(img[200:250, 20:180].astype(np.float32), axis=1)).mean()
    assert detail > 0.4 * ring_detail


def test_border_fill_and_degenerate_masks():
    img = photo("astronaut")[..., :3].copy()
    mask = np.zeros(img.shape[:2], np.uint8)
    mask[:, :100] = 255  # outpaint-like strip along the border
    out = content_aware_fill(img, mask)
    assert np.array_equal(out[:, 100:], img[:, 100:])
    assert out[:, :100].std() > 5
    assert np.array_equal(content_aware_fill(img, np.zeros_like(mask)), img)
    full = content_aware_fill(img, np.full_like(mask, 255))
    assert full.shape == img.shape
    with pytest.raises(JobError):
        content_aware_fill(img, mask[:-1])
    with pytest.raises(JobError):
        content_aware_fill(img[..., 0], mask)
