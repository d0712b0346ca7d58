"""Filling pixels from their surroundings without any model weights.

Two users: the diffusion pre-fill (what the model must invent starts as a blurred guess from the
surroundings, as every peer does) and the classical engine, which calls :func:`content_aware_fill`
and must look plausible on its own: a smooth colour membrane (Gaussian pull-push pyramid, the
multi-scale cousin of Telea / Navier-Stokes diffusion, but O(pixels) and free of streaks) plus real
texture copied patch-wise from nearby known pixels, so a large fill is not a flat blur.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from underpaint.errors import JobError

GREY = 128.0
_EPS = 1e-6


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
        cv2.resize(hole.astype(np.uint8) * 255, (sw, sh), interpolation=cv2.INTER_AREA) > 0
        if factor > 1
        else hole
    )
    filled = cv2.inpaint(np.ascontiguousarray(small), small_hole.astype(np.uint8), 3, method)
    if factor > 1:
        filled = cv2.resize(filled, (w, h), interpolation=cv2.INTER_LINEAR)
    out = image.copy()
    out[hole] = filled[hole]
    return out


def prefill(
    image: np.ndarray, unknown: np.ndarray, method: str, outpaint: bool, noise: float, seed: int
) -> np.ndarray:
    """Replace ``unknown`` pixels of an RGB uint8 image with a blurred guess from the surroundings.

    ``method``: auto (Navier-Stokes for outpaint as krita-ai-diffusion does, Telea for inpaint),
    telea, navier_stokes, edge, blur (pull-push pyramid) or none (grey where nothing is known,
    original pixels elsewhere). ``noise`` in [0, 1] adds seeded Gaussian noise of std noise x 48.
    """
    known = ~unknown
    if not unknown.any():
        return image
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


def _texture(image: np.ndarray, known: np.ndarray, depth: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """High-frequency detail for hole pixels, copied block-coherently from nearby known pixels.

    Returns float32 (n_hole, 3) in the raster order of the hole pixels.
    """
    h, w = known.shape
    kf = known.astype(np.float32)
    low = cv2.GaussianBlur(image * kf[..., None], (0, 0), sigma) / np.maximum(
        cv2.GaussianBlur(kf, (0, 0), sigma), _EPS
    )[..., None]
    detail = image - low
    # Keep texture, not structure: strong edges copied into the hole read as pasted fragments.
    spread = np.median(np.abs(detail[known]), axis=0) * 1.4826 + 0.5
    detail = np.clip(detail, -2.5 * spread, 2.5 * spread)
    # Sources must be far enough from the hole that their detail is not biased by its edge.
    dist_from_hole = cv2.distanceTransform(np.ascontiguousarray(known.astype(np.uint8)), cv2.DIST_L2, 3)
    safe = known & (dist_from_hole > sigma)
    if safe.sum() < 16:
        safe = known
    rng = np.random.default_rng(seed)
    ys, xs = np.nonzero(~known)
    n = ys.size
    block = max(8, int(4 * sigma))
    bw = (w + block - 1) // block
    bid = (ys // block) * bw + xs // block
    nblocks = int(bid.max()) + 1
    reach = np.zeros(nblocks, np.float32)
    np.maximum.at(reach, bid, depth[ys, xs])
    tries = 24
    radius = reach[:, None] + 2 * sigma + 2 + rng.uniform(0, 2 * block, size=(nblocks, tries))
    angle = rng.uniform(0, 2 * np.pi, size=(nblocks, tries))
    dy = np.rint(radius * np.sin(angle)).astype(np.int64)
    dx = np.rint(radius * np.cos(angle)).astype(np.int64)
    out = np.zeros((n, 3), np.float32)
    todo = np.arange(n)
    for k in range(tries):
        if todo.size == 0:
            break
        sy = ys[todo] + dy[bid[todo], k]
        sx = xs[todo] + dx[bid[todo], k]
        inside = (sy >= 0) & (sy < h) & (sx >= 0) & (sx < w)
        ok = inside.copy()
        ok[inside] = safe[sy[inside], sx[inside]]
        hit = todo[ok]
        out[hit] = detail[sy[ok], sx[ok]]
        todo = todo[~ok]
    if todo.size:
        std = detail[safe].std(axis=0) if safe.any() else np.zeros(3, np.float32)
        out[todo] = rng.normal(0.0, 1.0, size=(todo.size, 3)) * std
    return out


def content_aware_fill(image_rgb: np.ndarray, mask: np.ndarray, seed: int = 0) -> np.ndarray:
    """Fill pixels where ``mask`` > 0 plausibly from the surroundings; unmasked pixels are unchanged.

    ``image_rgb`` uint8 (h, w, 3); ``mask`` uint8 (h, w), 255 = replace, soft values blend the fill
    with the original (the hole proper is mask > 0). Colour comes from a pull-push pyramid (smooth,
    no streaks, continuous with the border), texture from block-wise offset copies of the known
    image's detail band, whose scale follows the hole's depth. Deterministic for a given ``seed``.
    """
    if not isinstance(image_rgb, np.ndarray) or image_rgb.dtype != np.uint8 or image_rgb.ndim != 3 or (
        image_rgb.shape[2] != 3
    ):
        raise JobError("size_mismatch", "image must be uint8 (h, w, 3)", "image")
    if mask.ndim == 3 and mask.shape[2] == 1:
        mask = mask[..., 0]
    if mask.dtype != np.uint8 or mask.shape != image_rgb.shape[:2]:
        raise JobError("size_mismatch", "mask must be uint8 (h, w) matching the image", "mask")
    hole = mask > 0
    if not hole.any():
        return image_rgb.copy()
    known = ~hole
    if not known.any():
        rng = np.random.default_rng(seed)
        grey = GREY + rng.normal(0.0, 6.0, size=image_rgb.shape)
        return np.clip(np.rint(cv2.GaussianBlur(grey, (0, 0), 1.5)), 0, 255).astype(np.uint8)
    img = image_rgb.astype(np.float32)
    base = pull_push(img, known.astype(np.float32))
    depth = cv2.distanceTransform(np.ascontiguousarray(hole.astype(np.uint8)), cv2.DIST_L2, 3)
    sigma = float(min(3.0, max(1.0, float(depth.max()) / 24.0)))
    ys, xs = np.nonzero(hole)
    fill = base[ys, xs] + _texture(img, known, depth, sigma, seed)
    soft = mask[ys, xs].astype(np.float32)[:, None] / 255.0
    orig = img[ys, xs]
    out = image_rgb.copy()
    out[ys, xs] = np.clip(np.rint(orig + (fill - orig) * soft), 0, 255).astype(np.uint8)
    return out
