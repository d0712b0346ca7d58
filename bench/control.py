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
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # keep the library chatter out of the figures
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")

import cv2
import numpy as np
import torch
from engine import SELECTION, SIZE, DaemonJob, direct, photo, selection_mask  # bench/engine.py, beside this file
from PIL import Image

from underpaint.daemon.config import DaemonConfig
from underpaint.daemon.server import Daemon, DaemonThread
from underpaint.engines.diffusion import DiffusionEngine


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
    client = DaemonJob(daemon.url)
    try:
        client.run(canvas, mask, 2, 0, control)  # loads the model and the ControlNet, warms every path
        client.run(canvas, mask, 2, 0)
        loaded = engine.loaded
        assert loaded is not None
        (controlnet,) = engine._controlnets.values()
        control_pipe = loaded.pipeline_for("inpaint", controlnet)
        plain_pipe = loaded.pipeline_for("inpaint")
        print(f"underpaint control benchmark: torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
        print(
            f"inpaint, canvas {SIZE}x{SIZE}, selection {SELECTION['width']}x{SELECTION['height']}, {args.steps} steps"
        )
        with_control = {"control_image": Image.fromarray(control[..., :3])}
        direct(control_pipe, canvas, mask, args.steps, 0, **with_control)
        times: dict[str, list[float]] = {key: [] for key in ("direct", "daemon", "direct-none", "daemon-none")}
        for round_index in range(args.repeats):
            times["direct"].append(direct(control_pipe, canvas, mask, args.steps, round_index, **with_control))
            times["daemon"].append(client.run(canvas, mask, args.steps, round_index, control))
            times["direct-none"].append(direct(plain_pipe, canvas, mask, args.steps, round_index))
            times["daemon-none"].append(client.run(canvas, mask, args.steps, round_index))
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
