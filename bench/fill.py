"""Fill benchmark: the classical fill before and after the border-continuation rule, and the learned
fill served by a real daemon against calling the model directly.

Run: python bench/fill.py [--repeats N] [--model PATH.safetensors]

1. Classical fill (content_aware_fill) at 1 MP and 4 MP: an inpaint hole (a box a quarter of the side)
   and an outpaint strip (the right fifth), on the astronaut photo scaled up. "Before" is main's
   fill.py and patchmatch.py (read with git show, imported beside the current ones); both run
   interleaved in one process, median of repeats. Printed: seconds and after/before ratio.
2. Learned fill: a 512x512 inpaint through a real daemon over a loopback socket (plan, upload,
   prepare, model, composite, result frame) against the model's own fill on the same prepared input,
   interleaved, median of repeats. Target: ratio <= 1.05. Without --model a LaMa with random weights
   is built (same architecture and cost as big-lama).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import subprocess
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from underpaint.canvas import content_aware_fill

ROOT = Path(__file__).resolve().parents[1]
Fill = Callable[[np.ndarray, np.ndarray], np.ndarray]


def main_fill() -> Fill:
    """content_aware_fill as main has it, with main's patchmatch, as a separate module."""

    def show(path: str) -> str:
        return subprocess.check_output(["git", "show", f"main:{path}"], cwd=ROOT, text=True)

    patchmatch = types.ModuleType("main_patchmatch")
    exec(compile(show("server/underpaint/canvas/patchmatch.py"), "main:patchmatch.py", "exec"), patchmatch.__dict__)
    source = show("server/underpaint/canvas/fill.py").replace("from underpaint.canvas import patchmatch\n", "")
    fill = types.ModuleType("main_fill")
    fill.__dict__["patchmatch"] = patchmatch
    exec(compile(source, "main:fill.py", "exec"), fill.__dict__)
    return fill.content_aware_fill


def photo(side: int) -> np.ndarray:
    image = np.asarray(Image.open(ROOT / "tests" / "data" / "astronaut.jpg").convert("RGB"))
    return np.ascontiguousarray(cv2.resize(image, (side, side), interpolation=cv2.INTER_CUBIC))


def masks(side: int) -> dict[str, np.ndarray]:
    inpaint = np.zeros((side, side), np.uint8)
    q = side // 4
    inpaint[side // 2 - q // 2 : side // 2 + q // 2, side // 3 : side // 3 + q] = 255
    outpaint = np.zeros((side, side), np.uint8)
    outpaint[:, side - side // 5 :] = 255
    return {"inpaint": inpaint, "outpaint": outpaint}


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def classical(repeats: int) -> None:
    before = main_fill()
    print("classical fill: seconds (median), after/before")
    for side in (1024, 2048):
        image = photo(side)
        for kind, mask in masks(side).items():
            times: dict[str, list[float]] = {"before": [], "after": []}
            for _ in range(repeats):
                times["before"].append(timed(functools.partial(before, image, mask)))
                times["after"].append(timed(functools.partial(content_aware_fill, image, mask)))
            b, a = statistics.median(times["before"]), statistics.median(times["after"])
            print(f"  {side * side / 1e6:.0f} MP {kind:8s} before {b:7.2f}  after {a:7.2f}  ratio {a / b:.2f}")


def random_lama(folder: Path) -> Path:
    import torch
    from safetensors.torch import save_file
    from spandrel.architectures.LaMa import LaMa

    torch.manual_seed(0)
    path = folder / "random-lama.safetensors"
    save_file({k: v.contiguous() for k, v in LaMa(in_nc=4, out_nc=3).state_dict().items()}, str(path))
    return path


def learned(repeats: int, model: Path | None) -> None:
    from underpaint.canvas import BlendSettings, Box, plan_job, prepare_job
    from underpaint.daemon.config import DaemonConfig
    from underpaint.daemon.server import Daemon, DaemonThread
    from underpaint.engines.erase import LearnedFillEngine, hole_of
    from underpaint.engines.registry import build_engines
    from underpaint.modes import Mode
    from underpaint_protocol.client import UnderpaintClient
    from underpaint_protocol.session import Event, ImageData

    with tempfile.TemporaryDirectory() as tmp:
        path = model or random_lama(Path(tmp))
        engines, default = build_engines("classical", [f"erase:{path}"], [], "cpu")
        erase = next(e for e in engines if isinstance(e, LearnedFillEngine))
        config = DaemonConfig(port=0, token_file=Path(tmp) / "token", outputs=Path(tmp) / "outputs")
        thread = DaemonThread(Daemon(config, engines, default)).start()
        done: set[str] = set()

        def on_event(event: Event) -> None:
            if event.type == "finished" and event.job_id is not None:
                done.add(event.job_id)

        client = UnderpaintClient(thread.url, client_name="bench", on_event=on_event)
        client.connect(timeout=10)
        side = 512
        canvas = np.dstack([photo(side), np.full((side, side), 255, np.uint8)])
        sel = Box(160, 180, 190, 150)
        mask = np.zeros((side, side), np.uint8)
        mask[sel.slices(Box(0, 0, side, side))] = 255
        job = {
            "mode": "inpaint",
            "model": default,
            "canvas": {"width": side, "height": side},
            "selection": {"x": sel.x, "y": sel.y, "width": sel.width, "height": sel.height},
        }
        resolution = erase.resolution(default)
        plan = plan_job(Mode.INPAINT, side, side, sel, None, 1.0, resolution, BlendSettings())
        prepared = prepare_job(
            plan, canvas[plan.upload.slices(plan.canvas)], mask[plan.upload.slices(plan.canvas)], BlendSettings()
        )
        fill = erase.loaded[default]

        def direct() -> None:
            fill.fill(prepared.image, hole_of(prepared.denoise_mask))

        def daemon() -> None:
            planned = client.plan(job).result(timeout=30)
            up = Box(**planned["upload"])
            region = np.ascontiguousarray(canvas[up.slices(Box(0, 0, side, side))])
            part = np.ascontiguousarray(mask[up.slices(Box(0, 0, side, side))])
            accepted = client.submit(
                job,
                planned["upload"],
                ImageData("rgba8", region.shape[1], region.shape[0], region.tobytes()),
                ImageData("gray8", part.shape[1], part.shape[0], part.tobytes()),
            ).result(timeout=30)
            while accepted["job_id"] not in done:
                time.sleep(0.001)

        direct()
        daemon()  # warm both paths
        times: dict[str, list[float]] = {"direct": [], "daemon": []}
        for _ in range(repeats):
            times["direct"].append(timed(direct))
            times["daemon"].append(timed(daemon))
        client.close()
        thread.stop()
    d, s = statistics.median(times["direct"]), statistics.median(times["daemon"])
    print(f"learned fill {side}x{side} inpaint: direct {d:.3f} s, daemon {s:.3f} s, ratio {s / d:.3f} (target <= 1.05)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", type=Path, default=None, help="a learned fill model (default: random LaMa)")
    parser.add_argument("--skip-classical", action="store_true")
    args = parser.parse_args()
    if not args.skip_classical:
        classical(args.repeats)
    learned(max(args.repeats, 5), args.model)
