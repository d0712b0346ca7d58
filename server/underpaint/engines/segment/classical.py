"""Refine a box or a rough selection into an object mask with OpenCV's GrabCut; no weights, always there.

GrabCut runs at most ``MODEL_SIDE`` pixels on the longer side (the plan's model size), one iteration at
a time so that cancel is honoured between them; the mask is then scaled back and its edge softened
along the image's own edges at full resolution (``edges.soft_mask``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import cv2
import numpy as np

from underpaint.canvas.plan import ModelResolution
from underpaint.engines.base import (
    Engine,
    GenerationInput,
    JobCancelled,
    ModelInfo,
    ProgressCallback,
    SegmentPrompt,
    StepProgress,
)
from underpaint.engines.segment.edges import soft_mask
from underpaint.errors import JobError
from underpaint.modes import Mode

REFINE_MODEL = "refine"
ITERATIONS = 5
MODEL_SIDE = 1024
POINT_RADIUS = 0.012
"""Radius of the sure-foreground / sure-background disc a click makes, as a fraction of the longer side."""
CONTEXT_RING = 0.25
"""Sure background GrabCut sees around the uncertain area, as a fraction of that area's longer side."""
ROUGH_MARGIN = 0.08
"""How far past a rough selection the object may reach, as a fraction of the selection's longer side."""


class RefineEngine(Engine):
    name = "refine"
    device = "cpu"
    uses_canvas_pipeline = False

    def models(self) -> list[ModelInfo]:
        return [
            ModelInfo(
                id=REFINE_MODEL,
                engine=self.name,
                family="classical",
                modes=(Mode.SEGMENT,),
                description="Refine a box or a rough selection into the object's edge (OpenCV GrabCut); no weights",
                default_steps=ITERATIONS,
                default_guidance=0.0,
                loaded=True,
                segment_inputs=("box", "points", "mask"),
            )
        ]

    def resolution(self, model: str) -> ModelResolution:
        return ModelResolution(pixel_budget=MODEL_SIDE * MODEL_SIDE, multiple=1, min_side=1, upscale_small=False)

    def generate(
        self, job: GenerationInput, batch_count: int, on_progress: ProgressCallback, cancel: threading.Event
    ) -> Iterator[np.ndarray]:
        if job.segment is None or job.image is None:
            raise JobError("unsupported_mode", "the refine model only selects objects (mode segment)", "job.mode")
        rgb = np.ascontiguousarray(job.image[..., :3])
        yield refine(rgb, job.mask, job.segment, ITERATIONS, on_progress, cancel)


def refine(
    rgb: np.ndarray,
    rough: np.ndarray | None,
    prompt: SegmentPrompt,
    iterations: int = ITERATIONS,
    on_progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> np.ndarray:
    """The soft uint8 mask of the object that ``prompt`` (a box, points) and ``rough`` point at."""
    height, width = rgb.shape[:2]
    scale = min(1.0, MODEL_SIDE / max(width, height))
    small_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = cv2.resize(rgb, small_size, interpolation=cv2.INTER_AREA) if scale < 1.0 else rgb
    small_rough = None
    if rough is not None:
        small_rough = cv2.resize(rough, small_size, interpolation=cv2.INTER_AREA) if scale < 1.0 else rough
    seeds = _initial_labels(small.shape[:2], small_rough, prompt, scale)
    labels = seeds.copy()
    if (labels == cv2.GC_PR_FGD).any() or (labels == cv2.GC_FGD).any():
        # Far from the uncertain area every pixel is sure background: GrabCut runs on the uncertain
        # area plus a ring of background to learn from (its graph cut costs per pixel).
        x, y, w, h = cv2.boundingRect((labels != cv2.GC_BGD).astype(np.uint8))
        ring = max(8, round(CONTEXT_RING * max(w, h)))
        rows = slice(max(0, y - ring), min(labels.shape[0], y + h + ring))
        cols = slice(max(0, x - ring), min(labels.shape[1], x + w + ring))
        part = np.ascontiguousarray(labels[rows, cols])
        background, foreground = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        bgr = cv2.cvtColor(np.ascontiguousarray(small[rows, cols]), cv2.COLOR_RGB2BGR)
        # GrabCut's k-means start draws from OpenCV's per-thread RNG, which earlier jobs advanced: a
        # fixed seed makes the same request give the same mask every time
        cv2.setRNGSeed(0)
        for step in range(iterations):
            if cancel is not None and cancel.is_set():
                raise JobCancelled()
            mode = cv2.GC_INIT_WITH_MASK if step == 0 else cv2.GC_EVAL
            try:
                cv2.grabCut(bgr, part, (0, 0, 0, 0), background, foreground, 1, mode)
            except cv2.error:  # one colour class empty (e.g. the box is the whole image): keep the seeds
                break
            if on_progress is not None:
                on_progress(StepProgress(step=step + 1, total=iterations))
        labels[rows, cols] = part
    selected = ((labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)).astype(np.uint8)
    selected = _clean(selected, seeds)
    mask = soft_mask(rgb, selected.astype(np.float32), prompt.soften)
    if prompt.box is not None:  # the object lies inside the box: its soft edge does not leave it
        x, y, w, h = prompt.box
        inside = np.zeros_like(mask)
        inside[max(0, y) : max(0, y + h), max(0, x) : max(0, x + w)] = 1
        mask *= inside
    return mask


def _initial_labels(
    shape: tuple[int, int], rough: np.ndarray | None, prompt: SegmentPrompt, scale: float
) -> np.ndarray:
    height, width = shape
    if prompt.box is None and rough is None:
        raise JobError(
            "invalid_value",
            "the refine model needs a box or a rough selection; points only add to them (SAM takes points alone)",
            "job.segment.points",
        )
    labels = np.full(shape, cv2.GC_BGD, np.uint8)
    if prompt.box is not None:
        x, y, w, h = (round(v * scale) for v in prompt.box)
        labels[max(0, y) : max(0, y + max(1, h)), max(0, x) : max(0, x + max(1, w))] = cv2.GC_PR_FGD
    if rough is not None:
        inside = rough >= 128
        ys, xs = np.nonzero(inside)
        if len(xs):
            margin = max(2, round(ROUGH_MARGIN * max(int(np.ptp(xs)) + 1, int(np.ptp(ys)) + 1)))
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin + 1, 2 * margin + 1))
            near = cv2.dilate(inside.astype(np.uint8), kernel) > 0
            allowed = labels != cv2.GC_BGD if prompt.box is not None else np.ones(shape, bool)
            labels[near & allowed] = cv2.GC_PR_BGD
            labels[inside & allowed] = cv2.GC_PR_FGD
    radius = max(2, round(POINT_RADIUS * max(width, height)))
    for points, label in ((prompt.points, cv2.GC_FGD), (prompt.negative_points, cv2.GC_BGD)):
        for px, py in points:
            cv2.circle(labels, (round(px * scale), round(py * scale)), radius, int(label), -1)
    return labels


def _clean(selected: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """Keep the parts of the object (components holding a click, and the large ones); fill its small
    holes, except those a negative click or the box's outside made."""
    count, components, stats, _ = cv2.connectedComponentsWithStats(selected, connectivity=8)
    if count <= 1:
        return selected
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = set((np.nonzero(areas >= 0.15 * areas.max())[0] + 1).tolist())
    keep |= {int(c) for c in np.unique(components[seeds == cv2.GC_FGD]) if c}
    kept = np.isin(components, list(keep)).astype(np.uint8)
    holes, hole_labels, hole_stats, _ = cv2.connectedComponentsWithStats(1 - kept, connectivity=4)
    edge = np.concatenate([hole_labels[0], hole_labels[-1], hole_labels[:, 0], hole_labels[:, -1]])
    refused = set(np.unique(edge).tolist()) | set(np.unique(hole_labels[seeds == cv2.GC_BGD]).tolist())
    small = [
        label
        for label in range(1, holes)
        if label not in refused and hole_stats[label, cv2.CC_STAT_AREA] <= 0.01 * kept.sum()
    ]
    kept[np.isin(hole_labels, small)] = 1
    return kept
