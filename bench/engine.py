"""What the daemon adds on top of diffusers, measured side by side in one run on the CPU.

- direct: the tiny-random inpaint pipeline called the plain diffusers way (PIL in, PIL out, default
  settings) at 512x512;
- daemon: the same job sent by the shared client over a websocket to a daemon serving the same
  engine: plan, upload, queue, canvas pipeline (masks, crop, pre-fill, composite), a preview every
  step, the layer back.

Both use the same loaded pipeline object, the same steps and seed; rounds alternate. Also prints
the cost of switching modes on a loaded model (diffusers ``from_pipe``: no reload).
Also the cost of the linear step preview against one step.
Targets: daemon/direct <= 1.05; mode switch < 50 ms; a preview < 5% of a step. Run: ``python bench/engine.py``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # keep the library chatter out of the figures
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")

import numpy as np
import torch
from PIL import Image

from underpaint.daemon.config import DaemonConfig
from underpaint.daemon.server import Daemon, DaemonThread
from underpaint.engines.diffusion import DiffusionEngine
from underpaint.engines.diffusion.previews import LinearPreview
from underpaint_protocol.client import UnderpaintClient
from underpaint_protocol.session import Event, ImageData

ROOT = Path(__file__).resolve().parents[1]
SIZE = 512
SELECTION = {"x": 128, "y": 128, "width": 256, "height": 256}  # context makes the work area the whole canvas


def photo() -> np.ndarray:
    with Image.open(ROOT / "tests" / "data" / "astronaut.jpg") as file:
        rgb = np.asarray(file.convert("RGB").resize((SIZE, SIZE)))
    return np.ascontiguousarray(np.dstack([rgb, np.full((SIZE, SIZE), 255, np.uint8)]))


def selection_mask() -> np.ndarray:
    mask = np.zeros((SIZE, SIZE), np.uint8)
    x, y, w, h = SELECTION["x"], SELECTION["y"], SELECTION["width"], SELECTION["height"]
    mask[y : y + h, x : x + w] = 255
    return mask


class DaemonJob:
    def __init__(self, url: str) -> None:
        self.done = threading.Event()
        self.previews = 0
        self.client = UnderpaintClient(url, client_name="bench-engine", on_event=self._on_event)
        self.client.connect()

    def _on_event(self, event: Event) -> None:
        if event.type == "progress" and event.image is not None:
            self.previews += 1
        elif event.type in ("finished", "failed", "cancelled"):
            self.outcome = event.message
            self.done.set()

    def run(
        self, canvas: np.ndarray, mask: np.ndarray, steps: int, seed: int, control: np.ndarray | None = None
    ) -> float:
        """One inpaint job over the socket, timed from plan to outcome; ``control``: a canny control layer
        on the canvas, uploaded as ``planned.control`` asks."""
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
        region, region_mask = np.ascontiguousarray(canvas[rows, cols]), np.ascontiguousarray(mask[rows, cols])
        controls = []
        if control is not None:
            c = planned["control"]
            layer = np.ascontiguousarray(control[c["y"] : c["y"] + c["height"], c["x"] : c["x"] + c["width"]])
            controls.append(ImageData("rgba8", c["width"], c["height"], layer.tobytes()))
        self.client.submit(
            job,
            up,
            ImageData("rgba8", up["width"], up["height"], region.tobytes()),
            ImageData("gray8", up["width"], up["height"], region_mask.tobytes()),
            controls=controls,
        ).result(timeout=60)
        if not self.done.wait(600):
            raise RuntimeError("the daemon job did not finish")
        elapsed = time.perf_counter() - started
        assert self.outcome["type"] == "finished", self.outcome
        self.model_size = (planned["model_width"], planned["model_height"])
        return elapsed


def direct(pipe: Any, canvas: np.ndarray, mask: np.ndarray, steps: int, seed: int, **extra: Any) -> float:
    """The diffusers pipeline called the plain way (PIL in, PIL out), timed: what the daemon is held to."""
    image, mask_image = Image.fromarray(canvas[..., :3]), Image.fromarray(mask)
    started = time.perf_counter()
    out = pipe(
        prompt="an astronaut",
        image=image,
        mask_image=mask_image,
        width=SIZE,
        height=SIZE,
        num_inference_steps=steps,
        generator=torch.Generator("cpu").manual_seed(seed),
        **extra,
    ).images[0]
    elapsed = time.perf_counter() - started
    assert out.size == (SIZE, SIZE)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    engine = DiffusionEngine(sources=["tiny-random"], device="cpu")
    folder = Path(tempfile.mkdtemp())
    daemon = DaemonThread(
        Daemon(DaemonConfig(port=0, token_file=folder / "token", outputs=None), [engine], "tiny-random")
    ).start()
    canvas, mask = photo(), selection_mask()
    client = DaemonJob(daemon.url)
    try:
        client.run(canvas, mask, 2, 0)  # loads the model and warms every path
        loaded = engine.loaded
        assert loaded is not None
        print(f"underpaint engine benchmark: torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
        print(
            f"daemon job: canvas {SIZE}x{SIZE}, selection {SELECTION['width']}x{SELECTION['height']}, "
            f"model size {client.model_size[0]}x{client.model_size[1]}, {args.steps} steps, previews on"
        )
        pipe = loaded.pipeline_for("inpaint")
        direct(pipe, canvas, mask, args.steps, 0)
        times: dict[str, list[float]] = {"direct": [], "daemon": []}
        for round_index in range(args.repeats):
            times["direct"].append(direct(pipe, canvas, mask, args.steps, round_index))
            client.previews = 0
            times["daemon"].append(client.run(canvas, mask, args.steps, round_index))
            previews = client.previews
        direct_s, daemon_s = statistics.median(times["direct"]), statistics.median(times["daemon"])
        print(f"direct diffusers call  {direct_s:8.3f} s   (median of {args.repeats})")
        print(f"through the daemon     {daemon_s:8.3f} s   ({previews} previews received in the last job)")
        print(f"daemon/direct          {daemon_s / direct_s:8.3f}   (target <= 1.05)")

        switches = {}
        for kind in ("img2img", "txt2img"):
            loaded.pipes.pop(kind, None)  # measure the first switch, when from_pipe builds the pipeline
            started = time.perf_counter()
            loaded.pipeline_for(kind)
            switches[kind] = (time.perf_counter() - started) * 1000
        print(
            "mode switch on the loaded model (from_pipe, no reload): "
            + ", ".join(f"-> {kind} {ms:.1f} ms" for kind, ms in switches.items())
            + "   (target < 50 ms)"
        )
        preview = LinearPreview(loaded.spec.family)
        latents = torch.randn(1, 4, SIZE // 8, SIZE // 8)
        preview(latents)
        started = time.perf_counter()
        for _ in range(50):
            preview(latents)
        per_preview = (time.perf_counter() - started) / 50
        per_step = direct_s / args.steps
        print(
            f"linear step preview {per_preview * 1000:.3f} ms = {per_preview / per_step:.2%} of one "
            f"{SIZE}px step (the direct call's per-step time; target < 5%)"
        )
    finally:
        client.client.close()
        daemon.stop()


if __name__ == "__main__":
    main()
