"""Shared helpers: photos, a simulated host, fake engines and the invariant checks."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from underpaint.canvas import (
    BlendSettings,
    Box,
    JobPlan,
    ModelResolution,
    PixelLayer,
    PreparedJob,
    composite_over,
    content_aware_fill,
    finish_job_with_composite,
    prepare_job,
)

DATA = Path(__file__).resolve().parents[1] / "data"
PHOTOS = ("coffee", "chelsea", "astronaut")
SD15 = ModelResolution(512 * 512, multiple=8, min_side=256, max_side=1024)
SDXL = ModelResolution(1024 * 1024, multiple=8, min_side=512, max_side=2048)
CLASSICAL = ModelResolution(1024 * 1024, multiple=1, min_side=1, max_side=4096, upscale_small=False)


def photo(name: str) -> np.ndarray:
    """An RGBA uint8 photo from tests/data."""
    return np.asarray(Image.open(DATA / f"{name}.jpg").convert("RGBA")).copy()


def upload_of(canvas_rgba: np.ndarray, plan: JobPlan) -> np.ndarray:
    """What a host sends: just plan.upload cut out of its canvas."""
    return canvas_rgba[plan.upload.slices(plan.canvas)]


def classical_engine(prepared: PreparedJob) -> np.ndarray:
    return content_aware_fill(prepared.image, prepared.denoise_mask, seed=prepared.seed)


def shifted_engine(prepared: PreparedJob) -> np.ndarray:
    """Like a VAE round trip: colours shifted and desaturated everywhere, plus new content in the mask."""
    img = prepared.image.astype(np.float32)
    grey = img.mean(axis=2, keepdims=True)
    img = (0.8 * img + 0.2 * grey) * 0.92 + np.array([14.0, 4.0, -6.0])
    rng = np.random.default_rng(1)
    noise = rng.normal(0, 20, img.shape) * (prepared.denoise_mask[..., None] / 255.0)
    return np.clip(np.rint(img + noise), 0, 255).astype(np.uint8)


def work_original(canvas_rgba: np.ndarray, plan: JobPlan) -> np.ndarray:
    """The original over plan.work: canvas pixels, transparent where the work leaves the canvas."""
    out = np.zeros((plan.work.height, plan.work.width, 4), np.uint8)
    out[plan.upload.slices(plan.work)] = upload_of(canvas_rgba, plan)
    return out


def run_job(
    canvas_rgba: np.ndarray,
    plan: JobPlan,
    mask: np.ndarray | None = None,
    settings: BlendSettings | None = None,
    engine=classical_engine,
    seed: int = 0,
) -> tuple[PreparedJob, PixelLayer, np.ndarray]:
    settings = settings or BlendSettings()
    prepared = prepare_job(plan, upload_of(canvas_rgba, plan), mask, settings, seed)
    generated = engine(prepared)
    layer, composite = finish_job_with_composite(prepared, generated)
    return prepared, layer, composite


def check_invariants(
    canvas_rgba: np.ndarray, plan: JobPlan, layer: PixelLayer, composite: np.ndarray, fully_selected: np.ndarray | None
) -> None:
    """The issue's invariants, on one finished job.

    ``fully_selected``: bool over plan.work marking what the host selected at 255 (None = skip).
    """
    original = work_original(canvas_rgba, plan)
    # The layer placed at its offset over the original reproduces the pipeline's composite exactly.
    placed = composite_over(original, layer, plan.work)
    assert np.array_equal(placed, composite)
    # Trimmed: every border row/column of the layer has some alpha.
    alpha = layer.pixels[..., 3]
    if layer.width:
        assert alpha[0].any() and alpha[-1].any() and alpha[:, 0].any() and alpha[:, -1].any()
    # Inside the new canvas and the work crop, in original canvas coordinates.
    assert plan.new_canvas.contains(layer.rect)
    assert plan.work.contains(layer.rect)
    assert layer.canvas == plan.new_canvas
    # Where alpha is 0 (and outside the layer) the composite is the original, bit for bit.
    full_alpha = np.zeros(original.shape[:2], np.uint8)
    full_alpha[layer.rect.slices(plan.work)] = alpha
    untouched = full_alpha == 0
    assert np.array_equal(composite[untouched], original[untouched])
    # Straight alpha: layer colour is the composite colour where alpha is 255.
    opaque = full_alpha == 255
    layer_rgb = np.zeros((*original.shape[:2], 3), np.uint8)
    layer_rgb[layer.rect.slices(plan.work)] = layer.pixels[..., :3]
    assert np.array_equal(composite[opaque][:, :3], layer_rgb[opaque])
    # Fully opaque inside the original selection; everything new (outpaint) is opaque too.
    if fully_selected is not None:
        assert (full_alpha[fully_selected] == 255).all()
    new_area = np.ones(original.shape[:2], bool)
    new_area[plan.upload.slices(plan.work)] = False
    assert (full_alpha[new_area] == 255).all()


def _gradient(rgb: np.ndarray) -> np.ndarray:
    g = cv2.cvtColor(np.ascontiguousarray(rgb[..., :3]), cv2.COLOR_RGB2GRAY).astype(np.float32)
    return np.hypot(cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3))


def _edge_band(region: np.ndarray, width: int) -> np.ndarray:
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * width + 1, 2 * width + 1))
    r = region.astype(np.uint8)
    return (cv2.dilate(r, kernel) - cv2.erode(r, kernel)) > 0


def seam_ratio(
    before: np.ndarray, after: np.ndarray, selection: np.ndarray, alpha: np.ndarray, width: int = 2
) -> float:
    """Seam metric: mean Sobel gradient magnitude of ``after`` across the edit's boundaries, relative to
    the original image's own mean gradient magnitude on the same pixels.

    Boundaries are the selection's edge and the edge of the layer's alpha support (where a paste
    would show), each +-``width`` px. 1.0 means the edit left exactly as much edge energy there as
    the photo had: nothing added. A hard seam adds a step and pushes it above 1.
    """
    band = _edge_band(selection, width) | _edge_band(alpha > 0, width)
    own = float(_gradient(before)[band].mean())
    return float(_gradient(after)[band].mean()) / max(own, 1e-6)


def rect_mask(shape: tuple[int, int], rect: Box, origin: Box) -> np.ndarray:
    out = np.zeros(shape, bool)
    inter = rect.intersect(origin)
    if not inter.is_empty:
        out[inter.slices(origin)] = True
    return out
