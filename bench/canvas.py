"""Canvas pipeline benchmark: cost must follow the selection, not the canvas.

Run: python bench/canvas.py

1. A 256x256 full-strength inpaint on an 8192x8192 canvas against the same selection on a 512x512
   canvas: plan + prepare + finish (composite), interleaved in one run, median of repeats. The host is
   simulated by slicing plan.upload out of the canvas array. The engine is skipped (generated =
   prepared image) because its cost is the same for both. Target: ratio <= 1.2.
2. Preparing jobs on a 16384x16384 canvas (target < 1 s each): whole-canvas img2img scaled to an
   SDXL budget (the host uploads all 1 GiB of RGBA), and a 4096x4096 full-strength inpaint
   (pre-fill included).
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from underpaint.canvas import BlendSettings, Box, ModelResolution, finish_job, plan_job, prepare_job
from underpaint.modes import Mode

SD15 = ModelResolution(512 * 512, multiple=8, min_side=256, max_side=1024)
SDXL = ModelResolution(1024 * 1024, multiple=8, min_side=512, max_side=2048)
SETTINGS = BlendSettings()


def canvas_of(side: int, seed: int = 0) -> np.ndarray:
    """A textured opaque RGBA canvas, built without a full-size random array (cheap at 16k)."""
    rng = np.random.default_rng(seed)
    tile = rng.integers(0, 256, (257, 263, 4), dtype=np.uint8)
    reps = (side // 257 + 1, side // 263 + 1, 1)
    out = np.tile(tile, reps)[:side, :side]
    out[..., 3] = 255
    return out


def one_job(canvas: np.ndarray, sel: Box, mode: Mode, strength: float, res: ModelResolution) -> float:
    start = time.perf_counter()
    side = canvas.shape[0]
    plan = plan_job(mode, side, side, sel, None, strength, res, SETTINGS)
    upload = canvas[plan.upload.slices(plan.canvas)]
    prepared = prepare_job(plan, upload, None, SETTINGS)
    finish_job(prepared, prepared.image)
    return time.perf_counter() - start


def selection_cost(repeats: int = 25) -> None:
    small, big = canvas_of(512), canvas_of(8192)
    sel_small = Box(128, 128, 256, 256)
    sel_big = Box(4001, 2999, 256, 256)
    for _ in range(3):  # warm up
        one_job(small, sel_small, Mode.INPAINT, 1.0, SD15)
        one_job(big, sel_big, Mode.INPAINT, 1.0, SD15)
    t_small, t_big = [], []
    for _ in range(repeats):
        t_small.append(one_job(small, sel_small, Mode.INPAINT, 1.0, SD15))
        t_big.append(one_job(big, sel_big, Mode.INPAINT, 1.0, SD15))
    m_small, m_big = statistics.median(t_small), statistics.median(t_big)
    ratio = m_big / m_small
    print("256x256 inpaint, strength 1.0, SD1.5 budget (plan + prepare + finish), median of", repeats)
    print(f"  canvas   512x512:  {m_small * 1000:8.2f} ms")
    print(f"  canvas 8192x8192:  {m_big * 1000:8.2f} ms")
    print(f"  ratio 8192/512:    {ratio:8.3f}  (target <= 1.2: {'ok' if ratio <= 1.2 else 'FAIL'})")


def prepare_16k(repeats: int = 3) -> None:
    side = 16384
    canvas = canvas_of(side)
    cases = [
        ("whole-canvas img2img 16384x16384 -> SDXL", None, Mode.IMG2IMG, 0.6),
        ("4096x4096 inpaint, strength 1.0 -> SDXL", Box(6001, 7003, 4096, 4096), Mode.INPAINT, 1.0),
    ]
    print("prepare_job on a 16384x16384 canvas (upload sliced from the canvas), median of", repeats)
    for label, sel, mode, strength in cases:
        plan = plan_job(mode, side, side, sel, None, strength, SDXL, SETTINGS)
        upload = canvas[plan.upload.slices(plan.canvas)]
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            prepare_job(plan, upload, None, SETTINGS)
            times.append(time.perf_counter() - start)
        t = statistics.median(times)
        print(
            f"  {label}: upload {plan.upload.width}x{plan.upload.height}, model "
            f"{plan.model_width}x{plan.model_height}: {t * 1000:8.1f} ms (target < 1000: {'ok' if t < 1 else 'FAIL'})"
        )


if __name__ == "__main__":
    selection_cost()
    prepare_16k()
