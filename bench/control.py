"""What a control layer costs through the daemon, measured side by side in one run on the CPU.

- direct: the tiny-random model's diffusers ControlNet inpaint pipeline called the plain way (PIL in, PIL
  out) with one tiny random ControlNet at 512x512;
- daemon: the same job sent by the shared client over a websocket to a daemon serving the same engine:
  plan, upload of the image, mask and control layer, queue, canvas pipeline, previews, the layer back;
- the added cost of one control over none, through the daemon and directly.

Both use the same loaded pipeline and ControlNet objects, the same steps and seed; rounds alternate.
Target: daemon/direct <= 1.05. Run: ``python bench/control.py``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # keep the library chatter out of the figures
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")

import cv2
import numpy as np
import torch
from engine import SELECTION, SIZE, DaemonJob, photo, selection_mask  # bench/engine.py, beside this file
from PIL import Image

from underpaint.daemon.config import DaemonConfig
from underpaint.daemon.server import Daemon, DaemonThread
from underpaint.engines.diffusion import DiffusionEngine
from underpaint_protocol.session import ImageData


class ControlJob(DaemonJob):
    """``DaemonJob`` with an optional control layer read over ``planned.control``."""

    def run_control(
        self, canvas: np.ndarray, mask: np.ndarray, control: np.ndarray | None, steps: int, seed: int
    ) -> float:
        job = {
            "mode": "inpaint",
            "model": "tiny-random",
            "prompt": "an astronaut",
            "steps": steps,
            "seed": seed,
            "canvas": {"width": SIZE, "height": SIZE},
            "selection": SELECTION,
        }
        if control is not None:
            job["controls"] = [{"kind": "canny"}]
        self.done.clear()
        started = time.perf_counter()
        planned = self.client.plan(job).result(timeout=60)
        up = planned["upload"]
        rows, cols = slice(up["y"], up["y"] + up["height"]), slice(up["x"], up["x"] + up["width"])
        controls = []
        if control is not None:
            c = planned["control"]
            layer = np.ascontiguousarray(control[c["y"] : c["y"] + c["height"], c["x"] : c["x"] + c["width"]])
            controls.append(ImageData("rgba8", c["width"], c["height"], layer.tobytes()))
        self.client.submit(
            job,
            up,
            ImageData("rgba8", up["width"], up["height"], np.ascontiguousarray(canvas[rows, cols]).tobytes()),
            ImageData("gray8", up["width"], up["height"], np.ascontiguousarray(mask[rows, cols]).tobytes()),
            controls=controls,
        ).result(timeout=60)
        if not self.done.wait(600):
            raise RuntimeError("the daemon job did not finish")
        elapsed = time.perf_counter() - started
        assert self.outcome["type"] == "finished", self.outcome
        return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    engine = DiffusionEngine(sources=["tiny-random"], device="cpu", controls=["canny=tiny-random"])
    config = DaemonConfig(port=0, token_file=Path(tempfile.mkdtemp()) / "token", outputs=None)
    daemon = DaemonThread(Daemon(config, [engine], "tiny-random")).start()
    canvas, mask = photo(), selection_mask()
    edges = cv2.Canny(cv2.cvtColor(canvas[..., :3], cv2.COLOR_RGB2GRAY), 100, 200)
    control = np.ascontiguousarray(np.dstack([edges, edges, edges, np.full_like(edges, 255)]))
    client = ControlJob(daemon.url)
    try:
        client.run_control(canvas, mask, control, 2, 0)  # loads the model and the ControlNet, warms every path
        client.run_control(canvas, mask, None, 2, 0)
        loaded = engine.loaded
        assert loaded is not None
        (controlnet,) = engine._controlnets.values()
        control_pipe = loaded.pipeline_for("inpaint", controlnet)
        plain_pipe = loaded.pipeline_for("inpaint")
        print(f"underpaint control benchmark: torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
        print(
            f"inpaint, canvas {SIZE}x{SIZE}, selection {SELECTION['width']}x{SELECTION['height']}, {args.steps} steps"
        )
        image, mask_image = Image.fromarray(canvas[..., :3]), Image.fromarray(mask)
        control_image = Image.fromarray(control[..., :3])

        def direct(seed: int, with_control: bool) -> float:
            extra = {"control_image": control_image} if with_control else {}
            started = time.perf_counter()
            out = (control_pipe if with_control else plain_pipe)(
                prompt="an astronaut",
                image=image,
                mask_image=mask_image,
                width=SIZE,
                height=SIZE,
                num_inference_steps=args.steps,
                generator=torch.Generator("cpu").manual_seed(seed),
                **extra,
            ).images[0]
            elapsed = time.perf_counter() - started
            assert out.size == (SIZE, SIZE)
            return elapsed

        direct(0, True)
        times: dict[str, list[float]] = {key: [] for key in ("direct", "daemon", "direct-none", "daemon-none")}
        for round_index in range(args.repeats):
            times["direct"].append(direct(round_index, True))
            times["daemon"].append(client.run_control(canvas, mask, control, args.steps, round_index))
            times["direct-none"].append(direct(round_index, False))
            times["daemon-none"].append(client.run_control(canvas, mask, None, args.steps, round_index))
        median = {key: statistics.median(values) for key, values in times.items()}
        print(f"direct ControlNet call     {median['direct']:8.3f} s   (median of {args.repeats})")
        print(f"through the daemon         {median['daemon']:8.3f} s")
        print(f"daemon/direct              {median['daemon'] / median['direct']:8.3f}   (target <= 1.05)")
        for way in ("daemon", "direct"):
            with_one, without = median[way], median[f"{way}-none"]
            print(f"one control over none, {way:<6} {with_one / without:6.3f}x (+{with_one - without:.3f} s)")
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    finally:
        client.client.close()
        daemon.stop()


if __name__ == "__main__":
    main()
