"""The classical refine (GrabCut, no weights) on real photographs with a known object.

Each scene pastes a blob-shaped cut of one photograph onto another, so the true mask is known; the
refined mask must be far closer to it than the box the user dragged (intersection over union).
"""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest

from tests.segment.scenes import box_mask, composite, iou
from underpaint.engines.base import JobCancelled, SegmentPrompt
from underpaint.engines.segment.classical import refine
from underpaint.engines.segment.edges import soft_mask
from underpaint.errors import JobError

SCENES = [("astronaut.jpg", 0), ("astronaut.jpg", 1), ("coffee.jpg", 0), ("coffee.jpg", 1)]


@pytest.mark.parametrize(("background", "seed"), SCENES)
def test_a_box_becomes_the_object(background: str, seed: int) -> None:
    scene = composite(background, seed)
    mask = refine(scene.rgb, None, SegmentPrompt(box=scene.box))
    box_iou, refined_iou = iou(box_mask(scene.box, scene.truth.shape), scene.truth), iou(mask, scene.truth)
    print(f"{background} seed {seed}: box IoU {box_iou:.3f}, refined IoU {refined_iou:.3f}")
    assert mask.shape == scene.truth.shape and mask.dtype == np.uint8
    assert refined_iou >= max(0.8, box_iou + 0.35)
    outside = ~box_mask(scene.box, scene.truth.shape)
    assert not mask[outside].any(), "nothing outside the box is selected"


def test_the_same_request_gives_the_same_mask_whatever_ran_before() -> None:
    """OpenCV's per-thread RNG (GrabCut's k-means start) must not make a repeated refine differ."""
    scene = composite("coffee.jpg", 1)
    first = refine(scene.rgb, None, SegmentPrompt(box=scene.box))
    cv2.kmeans(  # something else on this thread draws from the RNG in between
        np.random.default_rng(0).random((64, 3), dtype=np.float32),
        4,
        None,
        (cv2.TERM_CRITERIA_MAX_ITER, 3, 0),
        1,
        cv2.KMEANS_RANDOM_CENTERS,
    )
    assert np.array_equal(refine(scene.rgb, None, SegmentPrompt(box=scene.box)), first)


def test_a_rough_selection_is_refined_with_soft_edges() -> None:
    scene = composite("astronaut.jpg", 2)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (31, 31))
    rough = cv2.dilate(scene.truth.astype(np.uint8) * 255, kernel)  # a loose lasso around the object
    mask = refine(scene.rgb, rough, SegmentPrompt())
    rough_iou, refined_iou = iou(rough, scene.truth), iou(mask, scene.truth)
    print(f"rough selection IoU {rough_iou:.3f}, refined IoU {refined_iou:.3f}")
    assert refined_iou >= max(0.8, rough_iou + 0.1)
    soft = (mask > 0) & (mask < 255)
    assert soft.sum() > 0.2 * cv2.Canny(scene.truth.astype(np.uint8) * 255, 0, 1).astype(bool).sum()
    # soft pixels lie only along the edge: none deep inside or far outside the object
    band = cv2.dilate(scene.truth.astype(np.uint8), np.ones((15, 15), np.uint8)) - cv2.erode(
        scene.truth.astype(np.uint8), np.ones((15, 15), np.uint8)
    )
    assert soft[band == 0].mean() < 0.05


def test_clicks_add_and_remove() -> None:
    scene = composite("astronaut.jpg", 0)
    ys, xs = np.nonzero(scene.truth)
    inside = (int(xs.mean()), int(ys.mean()))
    plain = refine(scene.rgb, None, SegmentPrompt(box=scene.box))
    removed = refine(scene.rgb, None, SegmentPrompt(box=scene.box, negative_points=(inside,)))
    assert plain[inside[1], inside[0]] == 255
    assert removed[inside[1], inside[0]] == 0, "a negative click is never selected"
    kept = refine(scene.rgb, None, SegmentPrompt(box=scene.box, points=(inside,)))
    assert kept[inside[1], inside[0]] == 255


def test_soften_zero_is_hard_and_larger_is_wider() -> None:
    scene = composite("coffee.jpg", 2)
    probability = scene.truth.astype(np.float32)
    hard = soft_mask(scene.rgb, probability, 0)
    assert set(np.unique(hard)) <= {0, 255}
    narrow = soft_mask(scene.rgb, probability, 2)
    wide = soft_mask(scene.rgb, probability, 12)
    soft = [int(((m > 0) & (m < 255)).sum()) for m in (narrow, wide)]
    assert 0 < soft[0] < soft[1]


def test_points_alone_and_cancel() -> None:
    scene = composite("coffee.jpg", 0)
    with pytest.raises(JobError) as refused:
        refine(scene.rgb, None, SegmentPrompt(points=((10, 10),)))
    assert refused.value.field == "job.segment.points"
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(JobCancelled):
        refine(scene.rgb, None, SegmentPrompt(box=scene.box), cancel=cancel)
