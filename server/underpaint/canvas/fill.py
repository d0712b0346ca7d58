"""Filling pixels from their surroundings without any model weights.

Two users: the diffusion pre-fill (what the model must invent starts as a blurred guess from the
surroundings, as every peer does) and the classical engine, which calls :func:`content_aware_fill`
and must look plausible on its own. A blurred guess does not: removed objects leave smudges. So the
classical fill is exemplar-based (multi-scale PatchMatch inpainting, :mod:`.patchmatch`): every
filled pixel is copied from real patches of the image near the hole, texture and structure included.
An outpaint (a hole on the image border) must continue that border, not collage the subject: its
layout starts as the border carried outward (:func:`continuation`) and stays close to it at the
coarsest level, and its patches come only from a band along the border, each part of the strip
preferring what lies next to it.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

import cv2
import numpy as np

from underpaint.canvas import patchmatch
from underpaint.errors import JobError

GREY = 128.0
#: Where the classical fill takes its sources: known pixels within a band around the hole, this times
#: the hole's thickness wide, at least BAND_MIN; for a hole on the image border (outpaint) at most
#: BAND_FRACTION of the image's shorter side. The cap is what keeps a wide outpaint strip continuing
#: its border instead of collaging the subject from the middle of the picture. Inside the band, a
#: source far along the border from what a hole pixel continues costs more (patchmatch ``reach``).
BAND_FACTOR = 3.0
BAND_MIN = 48
BAND_FRACTION = 0.1
#: Mask value from which a pixel is synthesised; a softer pixel is kept as it is (see content_aware_fill).
SYNTH_MASK = 255
_EPS = 1e-6

LearnedFill = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""(RGB uint8 image, bool hole) -> the image with the hole filled by a learned model."""
_learned: list[LearnedFill] = []


def use_learned_fill(fill: LearnedFill | None) -> None:
    """Set (or clear) what the ``learned`` pre-fill runs: the engine registry does when a learned fill
    model is loaded. The canvas cannot import engines, so the engine hands its fill down here."""
    _learned[:] = [] if fill is None else [fill]


def pull_push(image: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Fill where ``weight`` is 0 with normalised Gaussian-pyramid averages of the weighted pixels.

    ``image`` float32 (h, w, c), ``weight`` float32 (h, w) in [0, 1]; pixels of weight 1 are kept.
    """
    levels: list[tuple[np.ndarray, np.ndarray]] = []
    num = image * weight[..., None]
    den = weight
    while True:
        levels.append((num, den))
        if den.min() > 1e-3 or min(den.shape[:2]) <= 2:
            break
        num = cv2.pyrDown(num)
        den = cv2.pyrDown(den)
        if num.ndim == 2:
            num = num[..., None]
    num, den = levels[-1]
    total = float(den.sum())
    fallback = num.reshape(-1, num.shape[2]).sum(axis=0) / total if total > _EPS else np.full(num.shape[2], GREY)
    colour = np.where(den[..., None] > _EPS, num / np.maximum(den, _EPS)[..., None], fallback)
    colour = colour.astype(np.float32)
    for num, den in reversed(levels[:-1]):
        up = cv2.pyrUp(colour, dstsize=(den.shape[1], den.shape[0]))
        if up.ndim == 2:
            up = up[..., None]
        own = num / np.maximum(den, _EPS)[..., None]
        a = np.clip(den * 2.0, 0.0, 1.0)[..., None]
        colour = (own * a + up * (1.0 - a)).astype(np.float32)
    return colour


def nearest_known(image: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Edge extension: every pixel takes the colour of the nearest known pixel."""
    src = np.ascontiguousarray((~known).astype(np.uint8))
    _, labels = cv2.distanceTransformWithLabels(src, cv2.DIST_L2, cv2.DIST_MASK_5, labelType=cv2.DIST_LABEL_PIXEL)
    ys, xs = np.nonzero(known)  # labels number known pixels in raster order, from 1
    out = image.copy()
    hole = ~known
    lab = labels[hole] - 1
    out[hole] = image[ys[lab], xs[lab]]
    return out


def cv_inpaint(image: np.ndarray, known: np.ndarray, method: int) -> np.ndarray:
    """OpenCV Telea / Navier-Stokes run on a pyramid level where the hole is a few pixels thick.

    Full-resolution cv2.inpaint costs hole-area x radius^2 and smears; at a coarse level it is fast
    and only carries the large-scale structure, which the later blur would keep anyway.
    """
    hole = ~known
    depth = float(cv2.distanceTransform(np.ascontiguousarray(hole.astype(np.uint8)), cv2.DIST_L2, 3).max())
    factor = max(1, 2 ** math.ceil(math.log2(max(depth / 8.0, 1.0))))
    h, w = hole.shape
    sw, sh = max(1, round(w / factor)), max(1, round(h / factor))
    small = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA) if factor > 1 else image
    small_hole = (
        cv2.resize(hole.astype(np.uint8) * 255, (sw, sh), interpolation=cv2.INTER_AREA) > 0 if factor > 1 else hole
    )
    filled = cv2.inpaint(np.ascontiguousarray(small), small_hole.astype(np.uint8), 3, method)
    if factor > 1:
        filled = cv2.resize(filled, (w, h), interpolation=cv2.INTER_LINEAR)
    out = image.copy()
    out[hole] = filled[hole]
    return out


def prefill(image: np.ndarray, unknown: np.ndarray, method: str, outpaint: bool, noise: float, seed: int) -> np.ndarray:
    """Replace ``unknown`` pixels of an RGB uint8 image with a blurred guess from the surroundings.

    ``method``: auto (Navier-Stokes for outpaint as krita-ai-diffusion does, Telea for inpaint),
    telea, navier_stokes, edge, blur (pull-push pyramid), learned (the loaded learned fill model,
    see :func:`use_learned_fill`, not blurred) or none (grey where nothing is known, original pixels
    elsewhere). ``noise`` in [0, 1] adds seeded Gaussian noise of std noise x 48.
    """
    known = ~unknown
    if not unknown.any():
        return image
    if method == "learned":
        if not _learned:
            raise JobError("invalid_value", "prefill 'learned' needs a learned fill model loaded", "settings.prefill")
        if not known.any():
            method = "none"
        else:
            image = _learned[0](image, unknown)
            method = "done"
    if not known.any():
        filled = np.full_like(image, int(GREY))
        method = "none"
    elif method == "auto":
        method = "navier_stokes" if outpaint else "telea"
    if method == "telea":
        filled = cv_inpaint(image, known, cv2.INPAINT_TELEA)
    elif method == "navier_stokes":
        filled = cv_inpaint(image, known, cv2.INPAINT_NS)
    elif method == "edge":
        filled = nearest_known(image, known)
    elif method == "blur":
        filled = np.clip(np.rint(pull_push(image.astype(np.float32), known.astype(np.float32))), 0, 255)
        filled = filled.astype(np.uint8)
    elif method == "none" and known.any():
        filled = image.copy()
        if outpaint:
            filled[unknown] = int(GREY)
    elif method == "done":
        filled = image
    out = filled
    if method in ("telea", "navier_stokes", "edge"):
        # Blur the guess so the model takes colours and layout from it, not hard streaks.
        depth = float(cv2.distanceTransform(np.ascontiguousarray(unknown.astype(np.uint8)), cv2.DIST_L2, 3).max())
        sigma = min(32.0, max(2.0, depth / 4.0))
        blurred = cv2.GaussianBlur(filled, (0, 0), sigma)
        out = image.copy()
        out[unknown] = blurred[unknown]
    if noise > 0:
        rng = np.random.default_rng(seed)
        grain = rng.normal(0.0, noise * 48.0, size=(int(unknown.sum()), 3))
        out = out.copy() if out is image else out
        out[unknown] = np.clip(out[unknown].astype(np.float64) + grain, 0, 255).astype(np.uint8)
    return out


def content_aware_fill(
    image_rgb: np.ndarray, mask: np.ndarray, seed: int = 0, cancel: threading.Event | None = None
) -> np.ndarray:
    """Fill pixels where ``mask`` > 0 plausibly from the surroundings; unmasked pixels are unchanged.

    ``image_rgb`` uint8 (h, w, 3); ``mask`` uint8 (h, w), 255 = replace, soft values blend the fill
    with the original. Where the mask has 255s, only those are synthesised and softer pixels are kept
    (they are the original, so used as sources); a mask with no 255 is all hole. The hole is
    synthesised by multi-scale PatchMatch from known patches in a band around it (:func:`source_band`);
    holes touching the image border (outpaint strips) work the same way, so they continue the band
    along the border they extend. Deterministic for a given ``seed`` (the random search is seeded).
    ``cancel`` is checked per pyramid level and PatchMatch pass (raises patchmatch.Cancelled).
    """
    if (
        not isinstance(image_rgb, np.ndarray)
        or image_rgb.dtype != np.uint8
        or image_rgb.ndim != 3
        or (image_rgb.shape[2] != 3)
    ):
        raise JobError("size_mismatch", "image must be uint8 (h, w, 3)", "image")
    if mask.ndim == 3 and mask.shape[2] == 1:
        mask = mask[..., 0]
    if mask.dtype != np.uint8 or mask.shape != image_rgb.shape[:2]:
        raise JobError("size_mismatch", "mask must be uint8 (h, w) matching the image", "mask")
    hole = mask > 0
    if not hole.any():
        return image_rgb.copy()
    if (mask >= SYNTH_MASK).any():
        # Soft pixels still show the original (the pipeline's outpaint mask ramps 24% of the image):
        # used as sources they keep the fill from copying the few hard-known objects everywhere, and
        # their "fill" is themselves, so they stay unchanged; the hard hole is synthesised to match them.
        hole = mask >= SYNTH_MASK
    known = ~hole
    if not known.any():
        rng = np.random.default_rng(seed)
        grey = GREY + rng.normal(0.0, 6.0, size=image_rgb.shape)
        return np.clip(np.rint(cv2.GaussianBlur(grey, (0, 0), 1.5)), 0, 255).astype(np.uint8)
    outward = bool(hole[0].any() or hole[-1].any() or hole[:, 0].any() or hole[:, -1].any())
    band = source_band_width(hole, outward)
    allowed = known & (cv2.distanceTransform(known.astype(np.uint8), cv2.DIST_L2, 3) <= band)
    y0, y1, x0, x1 = _box(hole | allowed)
    crop, crop_hole = image_rgb[y0:y1, x0:x1].astype(np.float32), hole[y0:y1, x0:x1]
    rng = np.random.default_rng(seed)
    guide = continuation(crop, crop_hole) if outward else None
    filled = patchmatch.inpaint(crop, crop_hole, rng, allowed[y0:y1, x0:x1], band, guide, cancel)
    if filled is None:  # no whole 7x7 known patch to copy from: a smooth membrane is all there is
        filled = pull_push(crop, (~crop_hole).astype(np.float32))
    ys, xs = np.nonzero(crop_hole)
    fill = filled[ys, xs]  # soft pixels below SYNTH_MASK are not in crop_hole: left as they are
    soft = mask[ys + y0, xs + x0].astype(np.float32)[:, None] / 255.0
    orig = crop[ys, xs]
    out = image_rgb.copy()
    out[ys + y0, xs + x0] = np.clip(np.rint(orig + (fill - orig) * soft), 0, 255).astype(np.uint8)
    return out


def continuation(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """The border carried outward: each hole pixel takes its nearest known colour, blurred more the
    farther it is (sigma a third of the distance), so structure leaves the border as soft streaks."""
    edge = nearest_known(image, ~hole)
    distance = cv2.distanceTransform(hole.astype(np.uint8), cv2.DIST_L2, 3)
    out = edge.copy()
    sigma = 1.0
    while sigma < max(2.0, float(distance.max()) / 3.0):
        sigma *= 2.0
        far = hole & (distance / 3.0 >= sigma / 2.0)
        out[far] = _wide_blur(edge, sigma)[far]
    return out


def _wide_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of a large ``sigma`` done on a smaller copy (a full-size kernel of 6 sigma costs
    seconds at 4 MP); the area reduction's own blur is taken out of the Gaussian's."""
    factor = int(sigma // 4)
    if factor < 2:
        return cv2.GaussianBlur(image, (0, 0), sigma)
    h, w = image.shape[:2]
    small = cv2.resize(image, (max(1, w // factor), max(1, h // factor)), interpolation=cv2.INTER_AREA)
    rest = math.sqrt(max(sigma * sigma - factor * factor / 12.0, 1.0)) / factor
    return cv2.resize(cv2.GaussianBlur(small, (0, 0), rest), (w, h), interpolation=cv2.INTER_LINEAR)


def source_band_width(hole: np.ndarray, outward: bool) -> float:
    """How far from the hole its sources may lie (see BAND_FACTOR): what the fill continues is what
    surrounds the hole, and the work scales with the hole, not the image. ``outward``: the hole
    touches the image border (an outpaint), so the band is also capped by BAND_FRACTION."""
    depth = float(cv2.distanceTransform(hole.astype(np.uint8), cv2.DIST_L2, 3).max())
    width = max(BAND_MIN, BAND_FACTOR * depth)
    return min(width, max(BAND_MIN, BAND_FRACTION * min(hole.shape))) if outward else width


def _box(region: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(region.any(axis=1))[0], np.nonzero(region.any(axis=0))[0]
    return int(ys[0]), int(ys[-1]) + 1, int(xs[0]), int(xs[-1]) + 1
