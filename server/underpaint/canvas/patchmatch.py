"""Exemplar-based hole filling: multi-scale PatchMatch inpainting.

Every hole pixel is rebuilt from real 7x7 patches of the known image, so texture and structure
continue into the hole instead of being averaged away. The algorithm is Wexler, Shechtman & Irani
(2007): coarse-to-fine expectation-maximisation, alternating (E) a nearest-neighbour field that gives
every patch overlapping the hole its most similar fully known patch and (M) a weighted vote of the
overlapping matches for each hole pixel. The field is found with PatchMatch (Barnes et al. 2009):
propagation of good offsets from neighbours plus random search, here vectorised over all target
pixels at once (Jacobi-style jump-flood propagation instead of the sequential scan order).

Patch distances are computed on a compact descriptor, not on 147 raw values: low-frequency 2D DCT
coefficients of each patch in an orthonormal opponent colour space (luminance gets more of them
than chroma). The DCT is orthonormal, so the descriptor distance is the sum of squared differences
of the patches' low-pass part; it costs a few separable filters per level and keeps every candidate
evaluation a small gather.
"""

from __future__ import annotations

import math
import threading

import cv2
import numpy as np

PATCH = 7
RADIUS = PATCH // 2
#: DCT orders kept per opponent channel (u + v <= order): luminance 15 coefficients, chroma 3 each.
ORDERS = (6, 2, 2)
#: Stop halving once the hole is this thin (in pixels from its border): coarser, the structures
#: the onion peel must continue blur into their neighbours.
COARSEST_DEPTH = 8.0
#: A level needs at least this many whole known patches to be worth matching against.
MIN_SOURCES = 64
#: The onion peel searches at most this many sources per ring (a seeded sample), and only runs when
#: the coarsest hole is thin enough; otherwise (a huge hole in a small image) Telea seeds the EM.
PEEL_SOURCES = 3000
#: Propagated (coherent) candidates count with their distance times this: Ashikhmin's coherence bias,
#: without which near-equal matches chosen independently make neighbouring votes disagree (blur).
COHERENCE = 0.5
#: With a guide, each EM vote at the coarse levels is pulled this far back towards it.
GUIDE_PULL = 0.5
#: Per level kind: EM iterations, PatchMatch passes per EM iteration, propagation steps, random search
#: radius (0: the whole level). Coarse levels are cheap and decide the structure; at the finest level
#: the upsampled field is already good and one refinement pass keeps large holes fast.
SCHEDULE = {
    "coarsest": (4, 4, (4, 2, 1), 0),
    "middle": (3, 2, (4, 2, 1), 16),
    "finest": (0, 1, (2, 1), 4),
}
_OPPONENT = np.array(
    [
        [1 / math.sqrt(3)] * 3,
        [1 / math.sqrt(2), 0.0, -1 / math.sqrt(2)],
        [1 / math.sqrt(6), -2 / math.sqrt(6), 1 / math.sqrt(6)],
    ],
    np.float32,
)


def _dct_basis(n: int) -> np.ndarray:
    i = np.arange(n)
    rows = [np.cos(math.pi * (2 * i + 1) * u / (2 * n)) * math.sqrt((1 if u == 0 else 2) / n) for u in range(n)]
    return np.asarray(rows, np.float32)


_BASIS = _dct_basis(PATCH)


def descriptors(image: np.ndarray) -> np.ndarray:
    """Per-pixel patch descriptors (h, w, d) float32 of an RGB float32 image (see module docstring)."""
    opp = cv2.transform(image, _OPPONENT)
    out = []
    for ch, order in enumerate(ORDERS):
        plane = np.ascontiguousarray(opp[..., ch])
        for u in range(min(order, PATCH - 1) + 1):
            for v in range(min(order - u, PATCH - 1) + 1):
                out.append(cv2.sepFilter2D(plane, -1, _BASIS[v], _BASIS[u], borderType=cv2.BORDER_REFLECT_101))
    return cv2.merge(out)  # interleaves far faster than np.stack


def valid_sources(hole: np.ndarray) -> np.ndarray:
    """Patch centres whose whole patch lies inside the image and outside the hole."""
    known = (~hole).astype(np.uint8)
    kernel = np.ones((PATCH, PATCH), np.uint8)
    return cv2.erode(known, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0) > 0


class Cancelled(Exception):
    """The fill's cancel event was set: the caller abandons the job."""


def _pyramid(
    image: np.ndarray, hole: np.ndarray, allowed: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Halve until the hole is a few pixels thick (so Telea's guess there is harmless) while the
    coarser level still has enough whole known patches to copy from (``allowed`` is halved along:
    where patch centres may be taken from)."""
    levels = [(image, hole, allowed)]
    while True:
        img, hl, ok = levels[-1]
        depth = float(cv2.distanceTransform(hl.astype(np.uint8), cv2.DIST_L2, 3).max())
        h, w = hl.shape
        nh, nw = (h + 1) // 2, (w + 1) // 2
        if depth <= COARSEST_DEPTH or min(nh, nw) < 2 * PATCH:
            return levels
        # Normalised averaging of known pixels only: hole content never leaks into coarse pixels, and
        # a coarse pixel stays known when most of it is (an "any" rule would grow the hole each level).
        known = (~hl).astype(np.float32)
        area = cv2.resize(known, (nw, nh), interpolation=cv2.INTER_AREA)
        total = cv2.resize(img * known[..., None], (nw, nh), interpolation=cv2.INTER_AREA)
        small = total / np.maximum(area, 1e-6)[..., None]
        small_hole = area < 0.5
        small_ok = cv2.resize(ok.astype(np.float32), (nw, nh), interpolation=cv2.INTER_AREA) >= 0.5
        if np.count_nonzero(valid_sources(small_hole) & small_ok) < MIN_SOURCES:
            return levels
        levels.append((small, small_hole, small_ok))


class _Field:
    """The nearest-neighbour field of the target pixels (patches overlapping the hole) at one level."""

    def __init__(self, desc: np.ndarray, tdesc: np.ndarray, valid: np.ndarray, ty, tx, sy, sx, anchor) -> None:
        self.h, self.w = valid.shape
        self.desc, self.tdesc, self.valid = desc.reshape(self.h * self.w, -1), tdesc, valid.ravel()
        self.ty, self.tx = ty, tx
        self.ay, self.ax, self.reach2 = anchor
        self.sy, self.sx = sy.astype(np.int32), sx.astype(np.int32)
        diff = self.desc[self.sy * self.w + self.sx] - tdesc
        self.cost = np.einsum("ij,ij->i", diff, diff) * self._distance_factor(np.arange(ty.size), self.sy, self.sx)
        # The field also as (h, w) source coordinate maps (identity off the targets), for propagation.
        self.fy, self.fx = np.indices((self.h, self.w), dtype=np.int32)
        self.fy[ty, tx] = self.sy
        self.fx[ty, tx] = self.sx

    def consider(self, cy: np.ndarray, cx: np.ndarray, bias: float = 1.0) -> None:
        """Keep the candidate sources (cy, cx) that are valid and closer than the current match
        (their distance multiplied by ``bias``)."""
        cy = np.clip(cy, 0, self.h - 1)
        cx = np.clip(cx, 0, self.w - 1)
        flat = cy * self.w + cx
        # Only new valid candidates are scored: in coherent regions most propagated ones are the same.
        idx = np.flatnonzero(self.valid[flat] & (flat != self.sy * self.w + self.sx))
        diff = self.desc[flat[idx]] - self.tdesc[idx]
        cost = np.einsum("ij,ij->i", diff, diff) * bias * self._distance_factor(idx, cy[idx], cx[idx])
        better = cost < self.cost[idx]
        idx, cost = idx[better], cost[better]
        self.sy[idx] = cy[idx]
        self.sx[idx] = cx[idx]
        self.cost[idx] = cost
        self.fy[self.ty[idx], self.tx[idx]] = cy[idx]
        self.fx[self.ty[idx], self.tx[idx]] = cx[idx]

    def _distance_factor(self, idx: np.ndarray, cy: np.ndarray, cx: np.ndarray) -> np.ndarray:
        """1 + (distance from the target's anchor / reach)^2: a source far along the border from the
        point a target continues costs more, so each part of the hole copies what lies next to it."""
        dy = (cy - self.ay[idx]).astype(np.float32)
        dx = (cx - self.ax[idx]).astype(np.float32)
        return 1.0 + (dy * dy + dx * dx) / self.reach2

    def iterate(self, rng: np.random.Generator, radius: int, steps: tuple[int, ...]) -> None:
        """One PatchMatch pass: jump-flood propagation from the four neighbours at each step, then
        random search in windows halving from ``radius`` down to one pixel."""
        for k in steps:
            for dy, dx in ((0, k), (k, 0), (0, -k), (-k, 0)):
                ny = np.clip(self.ty - dy, 0, self.h - 1)
                nx = np.clip(self.tx - dx, 0, self.w - 1)
                self.consider(self.fy[ny, nx] + dy, self.fx[ny, nx] + dx, COHERENCE)
        r = radius
        n = self.ty.size
        while r >= 1:
            self.consider(self.sy + rng.integers(-r, r + 1, n), self.sx + rng.integers(-r, r + 1, n))
            r //= 2


def anchors(hole: np.ndarray, ty: np.ndarray, tx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each target pixel, the nearest known pixel (itself when known): the point it continues."""
    src = np.ascontiguousarray(hole.astype(np.uint8))
    _, labels = cv2.distanceTransformWithLabels(src, cv2.DIST_L2, cv2.DIST_MASK_5, labelType=cv2.DIST_LABEL_PIXEL)
    ky, kx = np.nonzero(~hole)  # labels number the known pixels in raster order, from 1
    lab = labels[ty, tx] - 1
    return ky[lab].astype(np.int32), kx[lab].astype(np.int32)


def _box(ty: np.ndarray, tx: np.ndarray, shape: tuple[int, ...], margin: int) -> tuple[int, int, int, int]:
    h, w = shape[:2]
    return (
        max(int(ty.min()) - margin, 0),
        min(int(ty.max()) + 1 + margin, h),
        max(int(tx.min()) - margin, 0),
        min(int(tx.max()) + 1 + margin, w),
    )


def target_descriptors(estimate: np.ndarray, ty: np.ndarray, tx: np.ndarray) -> np.ndarray:
    """Descriptors of the target patches, computed on their bounding box only (it changes each EM step)."""
    y0, y1, x0, x1 = _box(ty, tx, estimate.shape, RADIUS)
    return descriptors(estimate[y0:y1, x0:x1])[ty - y0, tx - x0]


def vote(image: np.ndarray, hole: np.ndarray, ty, tx, sy, sx, weight: np.ndarray) -> np.ndarray:
    """Each hole pixel becomes the weighted mean of what the overlapping matched patches say it is.

    Done densely over the targets' bounding box, one whole-box gather per patch offset."""
    w = hole.shape[1]
    y0, y1, x0, x1 = _box(ty, tx, hole.shape, 0)
    bh, bw = y1 - y0, x1 - x0
    r = RADIUS
    weights = np.zeros((bh + 2 * r, bw + 2 * r), np.float32)  # zero off the targets
    sources = np.zeros((bh + 2 * r, bw + 2 * r), np.int64)
    weights[ty - y0 + r, tx - x0 + r] = weight
    sources[ty - y0 + r, tx - x0 + r] = sy.astype(np.int64) * w + sx
    flat = image.reshape(-1, 3)
    acc = np.zeros((bh, bw, 3), np.float32)
    total = np.zeros((bh, bw), np.float32)
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            # Pixel q gets the vote of the patch centred at q - d: its source's pixel at offset d.
            wv = weights[r - dy : r - dy + bh, r - dx : r - dx + bw]
            sv = sources[r - dy : r - dy + bh, r - dx : r - dx + bw] + (dy * w + dx)
            acc += np.take(flat, sv, axis=0, mode="clip") * wv[..., None]
            total += wv
    out = image.copy()
    box_hole = hole[y0:y1, x0:x1]
    out[y0:y1, x0:x1][box_hole] = acc[box_hole] / np.maximum(total[box_hole], 1e-12)[:, None]
    return out


def _patches(image: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Raw patches centred on (ys, xs), flattened to (n, PATCH * PATCH * c); outside reads as zero."""
    img = image if image.ndim == 3 else image[..., None]
    padded = np.pad(img, ((RADIUS, RADIUS), (RADIUS, RADIUS), (0, 0)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (PATCH, PATCH), axis=(0, 1))
    return windows[ys, xs].transpose(0, 2, 3, 1).reshape(len(ys), -1)


def onion_peel(image: np.ndarray, hole: np.ndarray, valid: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Coarsest-level initialisation: fill the hole ring by ring from its border, each pixel taking
    the centre of the known patch closest to what is already known around it (exhaustive search,
    cheap at this size). Unlike a diffusion (Telea) guess this starts EM from real structure."""
    est = image.copy()
    filled = ~hole
    sy, sx = np.nonzero(valid)
    if sy.size > PEEL_SOURCES:
        pick = np.sort(rng.choice(sy.size, PEEL_SOURCES, replace=False))
        sy, sx = sy[pick], sx[pick]
    src = _patches(image, sy, sx)
    src_sq = _patches((image**2).sum(axis=-1), sy, sx)
    centres = image[sy, sx]
    ring_kernel = np.ones((3, 3), np.uint8)
    while not filled.all():
        ring = ~filled & (cv2.dilate(filled.astype(np.uint8), ring_kernel) > 0)
        if not ring.any():  # nothing known touches the rest: give up on it (cannot happen with sources)
            break
        ly, lx = np.nonzero(ring)
        known = _patches(filled.astype(np.float32), ly, lx)
        cross = _patches(est * filled[..., None], ly, lx) @ src.T
        dist = known @ src_sq.T - 2.0 * cross
        est[ly, lx] = centres[np.argmin(dist, axis=1)]
        filled |= ring
    return est


def _weights(cost: np.ndarray) -> np.ndarray:
    """Similarity weights exp(-d / 2 sigma^2), sigma^2 the 75th percentile distance (Wexler et al.)."""
    finite = np.isfinite(cost)
    scale = float(np.percentile(cost[finite], 75)) if finite.any() else 1.0
    # Floored so that a hole pixel covered only by poor matches still gets their mean, not black.
    return np.maximum(np.where(finite, np.exp(-cost / (2.0 * scale + 1e-6)), 0.0), 1e-6).astype(np.float32)


def inpaint(
    image: np.ndarray,
    hole: np.ndarray,
    rng: np.random.Generator,
    allowed: np.ndarray | None = None,
    reach: float = math.inf,
    guide: np.ndarray | None = None,
    cancel: threading.Event | None = None,
) -> np.ndarray | None:
    """Fill ``hole`` of an RGB float32 image coarse to fine; None when no whole known patch exists.

    ``allowed`` (bool, like ``hole``): where source patches may be centred (default: anywhere known);
    the caller keeps them near the hole. ``reach`` (pixels): how far along the hole's border a
    source may lie from the point a target continues before its distance doubles (see
    _Field._distance_factor). ``guide`` (like ``image``): the coarsest level's starting guess for the
    hole, when the caller knows the layout better than an onion peel would (an outpaint continues its
    border). ``cancel`` is checked per level and per PatchMatch pass and
    raises :class:`Cancelled` once set.
    """
    levels = _pyramid(image, hole, ~hole if allowed is None else allowed)
    prev: np.ndarray | None = None  # the previous level's field as (2, h, w) source coordinates
    prev_cost = np.zeros((1, 1), np.float32)  # and its match distances
    estimate = image
    for index in range(len(levels) - 1, -1, -1):
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        img, hl, ok = levels[index]
        h, w = hl.shape
        valid = valid_sources(hl) & ok
        sources = np.flatnonzero(valid)
        if sources.size == 0:
            return None
        targets = cv2.dilate(hl.astype(np.uint8), np.ones((PATCH, PATCH), np.uint8)) > 0
        ty, tx = np.nonzero(targets)
        ty, tx = ty.astype(np.int32), tx.astype(np.int32)
        coarsest, finest = prev is None, index == 0
        level_guide = None if guide is None else cv2.resize(guide, (w, h), interpolation=cv2.INTER_AREA)
        if prev is None:
            depth = float(cv2.distanceTransform(hl.astype(np.uint8), cv2.DIST_L2, 3).max())
            if level_guide is not None:
                estimate = img.copy()
                estimate[hl] = level_guide[hl]
            elif depth <= 2 * COARSEST_DEPTH:
                estimate = onion_peel(img, hl, valid, rng)
            else:
                seed_img = np.clip(np.rint(img), 0, 255).astype(np.uint8)
                estimate = cv2.inpaint(seed_img, hl.astype(np.uint8), 3, cv2.INPAINT_TELEA).astype(np.float32)
                estimate[~hl] = img[~hl]
            sy, sx = np.divmod(sources[rng.integers(0, sources.size, ty.size)], w)
        else:
            py, px = prev[0], prev[1]
            cy = np.minimum(ty // 2, py.shape[0] - 1)
            cx = np.minimum(tx // 2, py.shape[1] - 1)
            sy = np.clip(py[cy, cx] * 2 + (ty - 2 * cy), 0, h - 1)
            sx = np.clip(px[cy, cx] * 2 + (tx - 2 * cx), 0, w - 1)
            bad = ~valid[sy, sx]
            sy[bad], sx[bad] = np.divmod(sources[rng.integers(0, sources.size, int(bad.sum()))], w)
        em_iters, pm_iters, steps, radius = SCHEDULE["coarsest" if coarsest else "finest" if finest else "middle"]
        radius = radius or max(h, w)
        if prev is not None:
            # The upsampled field's first vote, weighted by how well each patch matched one level up.
            estimate = vote(img, hl, ty, tx, sy, sx, _weights(prev_cost[cy, cx]))
        if em_iters:
            desc = descriptors(img)  # valid sources have whole known patches: once per level
            level_reach = reach * w / image.shape[1]
            anchor = (*anchors(hl, ty, tx), np.float32(max(level_reach, 1.0) ** 2))
        for _ in range(em_iters):
            field = _Field(desc, target_descriptors(estimate, ty, tx), valid, ty, tx, sy, sx, anchor)
            for _ in range(pm_iters):
                if cancel is not None and cancel.is_set():
                    raise Cancelled()
                field.iterate(rng, radius, steps)
            sy, sx = field.sy, field.sx
            estimate = vote(img, hl, ty, tx, sy, sx, _weights(field.cost))
            if level_guide is not None and coarsest:  # the layout stays the guide's; patches bring the texture
                estimate[hl] += GUIDE_PULL * (level_guide[hl] - estimate[hl])
        prev_cost = np.zeros((h, w), np.float32)
        if em_iters:
            prev_cost[ty, tx] = field.cost
        prev = np.indices((h, w), dtype=np.int32)
        prev[0][ty, tx], prev[1][ty, tx] = sy, sx
    return estimate
