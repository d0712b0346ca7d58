"""PNG's row filters chosen per row as libpng chooses them, vectorised, for the PNG writer (``outputs``).

A PNG's rows are each filtered (None, Sub, Up, Average or Paeth: a byte minus a prediction from its
left, upper and upper-left neighbours) before deflate; libpng's default tries all five on each row and
keeps the one whose bytes, read as signed, have the smallest sum of absolute values (near zero
deflates best). Done here with numpy and OpenCV on blocks of rows small enough to stay in the CPU's
cache. The first row of a band uses only None or Sub, which need no row above: a band is both a PNG
of its own (nothing above its first row) and a piece of a taller one (the band above's last row
above it), and its filtered bytes must mean the same pixels in both.
"""

from __future__ import annotations

import zlib

import cv2
import numpy as np

NONE, SUB, UP, AVERAGE, PAETH = range(5)
BLOCK_BYTES = 64 * 1024
"""Rows filtered together: the five candidates and Paeth's temporaries of this size stay in a core's
cache (a 2048x1024 RGBA tile in blocks of 8 rows: 21-30 ms of CPU here; 16 rows ~40 ms, all at once ~65)."""


def filter_rows(pixels: np.ndarray) -> np.ndarray:
    """``pixels`` (height x width x channels, uint8, not empty) as PNG scanlines: each row its filter
    type byte, then its filtered bytes; height x (1 + width * channels)."""
    height, width, channels = pixels.shape
    flat = pixels.reshape(height, width * channels)
    scanlines = np.empty((height, 1 + flat.shape[1]), np.uint8)
    first = np.empty((2, 1, flat.shape[1]), np.uint8)
    first[NONE] = flat[:1]
    _sub(flat[:1], channels, first[SUB])
    _keep_best(first, scanlines[:1])
    step = max(1, BLOCK_BYTES // max(1, flat.shape[1]))
    candidates = np.empty((5, min(step, height), flat.shape[1]), np.uint8)
    for start in range(1, height, step):
        stop = min(height, start + step)
        block = candidates[:, : stop - start]
        _candidates(flat[start:stop], flat[start - 1 : stop - 1], channels, block)
        _keep_best(block, scanlines[start:stop])
    return scanlines


def deflate_strategy(scanlines: np.ndarray) -> int:
    """zlib's strategy for these filtered rows: run-length where runs of zeros are common (at least
    half the bytes a zero after a zero, in every 8th row: flat art, where Huffman coding alone came
    out 1.4-4x larger), else Huffman coding alone (photographs and upscales of them: 0.96-1.02x the
    run-length size for ~15% less CPU; their filtered bytes seldom repeat)."""
    sample = scanlines[::8]
    zero_pairs = sample[:, 1:].size - np.count_nonzero(sample[:, 1:] | sample[:, :-1])
    return zlib.Z_RLE if 2 * zero_pairs >= sample[:, 1:].size else zlib.Z_HUFFMAN_ONLY


def _candidates(rows: np.ndarray, above: np.ndarray, channels: int, out: np.ndarray) -> None:
    """The five filters of ``rows`` (each row's previous row in ``above``) into ``out[filter]``."""
    out[NONE] = rows
    _sub(rows, channels, out[SUB])
    np.subtract(rows, above, out=out[UP])
    x, a, b, c = rows[:, channels:], rows[:, :-channels], above[:, channels:], above[:, :-channels]
    # the first pixel has no left neighbour (a = c = 0): Average predicts b // 2, Paeth predicts b
    np.subtract(rows[:, :channels], above[:, :channels] >> 1, out=out[AVERAGE, :, :channels])
    out[PAETH, :, :channels] = out[UP, :, :channels]
    if not x.size:  # one pixel wide: OpenCV has nothing to say about empty arrays
        return
    mean = np.bitwise_and(a, b)
    mean += np.bitwise_xor(a, b) >> 1  # (a + b) // 2 without overflowing a byte
    np.subtract(x, mean, out=out[AVERAGE, :, channels:])
    np.subtract(x, _paeth(a, b, c), out=out[PAETH, :, channels:])


def _paeth(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Paeth's predictor: whichever of left (a), up (b), upper-left (c) is nearest a + b - c, ties in
    that order. Two distances are byte differences; |p - c| is summed in int16, then saturated to a
    byte (a distance over 255 loses to any other that is not); the choice as bit masks: no branching."""
    to_a, to_b = cv2.absdiff(b, c), cv2.absdiff(a, c)  # |p - a| = |b - c|, |p - b| = |a - c|
    to_c = cv2.convertScaleAbs(cv2.add(cv2.subtract(a, c, dtype=cv2.CV_16S), cv2.subtract(b, c, dtype=cv2.CV_16S)))
    take_a = cv2.compare(to_a, cv2.min(to_b, to_c), cv2.CMP_LE)
    take_b = cv2.compare(to_b, to_c, cv2.CMP_LE)
    predicted: np.ndarray = np.bitwise_xor(b, c)
    predicted &= take_b
    predicted ^= c  # b where take_b, else c
    differs = np.bitwise_xor(a, predicted)
    differs &= take_a
    predicted ^= differs  # a where take_a
    return predicted


def _sub(rows: np.ndarray, channels: int, out: np.ndarray) -> None:
    out[:, :channels] = rows[:, :channels]
    np.subtract(rows[:, channels:], rows[:, :-channels], out=out[:, channels:])


def _keep_best(candidates: np.ndarray, out: np.ndarray) -> None:
    """Per row, the candidate with the least sum of absolute values of its bytes read as signed
    (libpng's heuristic; ties to the lower filter type), written with its type byte into ``out``."""
    kinds, rows, width = candidates.shape
    magnitudes = np.abs(candidates.reshape(kinds * rows, width).view(np.int8)).view(np.uint8)  # |-128|: 128
    costs = cv2.reduce(magnitudes, 1, cv2.REDUCE_SUM, dtype=cv2.CV_32S).reshape(kinds, rows)
    best = costs.argmin(axis=0)
    out[:, 0] = best
    out[:, 1:] = candidates[best, np.arange(len(best))]
