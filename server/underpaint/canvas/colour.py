"""Colour matching of generated pixels to the original around the selection.

VAE round trips shift and desaturate colours (krita-ai-diffusion #1789, #907). Where the model had no
freedom (outside the denoise mask) its output should equal the original, so the per-channel mean and
spread there tell us exactly how to correct the whole generated crop.
"""

from __future__ import annotations

import numpy as np

MAX_SAMPLES = 200_000
GAIN_RANGE = (0.75, 1.33)


def fit_colour_lut(generated: np.ndarray, original: np.ndarray, reference: np.ndarray) -> np.ndarray | None:
    """Per-channel affine map (mean and spread, gain clamped) fitted on ``reference`` pixels, as a
    (256, 3) lookup table; None when there is too little to trust or nothing to correct.

    ``generated`` and ``original`` are RGB uint8 of one shape; ``reference`` a bool mask of (h, w).
    """
    idx = np.flatnonzero(reference.ravel())
    if idx.size < 64:
        return None
    if idx.size > MAX_SAMPLES:
        idx = idx[:: idx.size // MAX_SAMPLES + 1]
    gen = generated.reshape(-1, 3)[idx].astype(np.float64)
    ref = original.reshape(-1, 3)[idx].astype(np.float64)
    gen_mean, ref_mean = gen.mean(axis=0), ref.mean(axis=0)
    gen_std, ref_std = gen.std(axis=0), ref.std(axis=0)
    gain = np.where(gen_std > 2.0, ref_std / np.maximum(gen_std, 1e-6), 1.0)
    gain = np.clip(gain, *GAIN_RANGE)
    offset = ref_mean - gain * gen_mean
    if np.all(np.abs(gain - 1.0) < 1e-3) and np.all(np.abs(offset) < 0.25):
        return None
    return np.clip(np.rint(np.arange(256)[:, None] * gain[None, :] + offset[None, :]), 0, 255).astype(np.uint8)


def apply_lut(image: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Apply a (256, 3) per-channel lookup table to an RGB uint8 image."""
    out = np.empty_like(image)
    for c in range(3):
        out[..., c] = lut[:, c][image[..., c]]
    return out


def match_colours(generated: np.ndarray, original: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``generated`` corrected towards ``original`` as measured on ``reference`` pixels."""
    lut = fit_colour_lut(generated, original, reference)
    return generated if lut is None else apply_lut(generated, lut)
