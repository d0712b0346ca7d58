"""Selecting objects: what a further click costs, what the daemon adds, and the classical refine.

Measured side by side, interleaved, in one run (CPU; the machine's load average is printed with them):

- second click vs first (tiny SAM, a 1 MP picture): a first click on a new picture runs the image
  encoder; a further click on the same picture takes the cached embedding and runs only the prompt
  encoder and mask decoder. Target: second < 10 % of first.
- daemon vs direct (tiny SAM, first clicks on new pictures): the whole job through a real daemon on a
  loopback socket, driven by the shared client as a plugin drives it (plan, upload the region, queue,
  worker, mask stored, result back), against the engine's own call on the same pixels. Target <= 1.05x.
- classical refine (GrabCut + soft edges, no weights) from a box on a 2 MP photograph.

Run: ``python bench/segment.py [--rounds N]``.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.daemon.conftest import Recorder, submit_job  # noqa: E402
from tests.segment.scenes import composite, iou  # noqa: E402
from underpaint.daemon.config import DaemonConfig  # noqa: E402
from underpaint.daemon.server import Daemon, DaemonThread  # noqa: E402
from underpaint.engines.base import SegmentPrompt  # noqa: E402
from underpaint.engines.segment.classical import RefineEngine, refine  # noqa: E402
from underpaint.engines.segment.learned import LearnedSegmentEngine  # noqa: E402
from underpaint_protocol.client import UnderpaintClient  # noqa: E402

SAM = "tiny-random-sam"


def picture(seed: int, width: int = 1152, height: int = 864) -> np.ndarray:
    """A distinct RGBA picture per seed (a photograph with the seed's object pasted in)."""
    scene = composite("coffee.jpg", seed, (width, height))
    return np.dstack([scene.rgb, np.full((height, width), 255, np.uint8)])


def timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    engine = LearnedSegmentEngine([SAM])
    spec = engine.specs[SAM]
    first_click = SegmentPrompt(points=((400, 300),))
    second_click = SegmentPrompt(points=((400, 300), (700, 500)), negative_points=((100, 100),))
    engine.segment(spec, picture(99)[..., :3], first_click, None)  # load the model once

    with tempfile.TemporaryDirectory() as folder:
        config = DaemonConfig(port=0, token_file=Path(folder) / "token", outputs=Path(folder) / "outputs")
        thread = DaemonThread(Daemon(config, [RefineEngine(), engine], "refine")).start()
        recorder = Recorder()
        client = UnderpaintClient(thread.url, client_name="bench", on_event=recorder)
        client.connect(timeout=10)

        def through_daemon(canvas: np.ndarray) -> None:
            job = {
                "mode": "segment",
                "model": SAM,
                "canvas": {"width": canvas.shape[1], "height": canvas.shape[0]},
                "segment": {"points": [{"x": 400, "y": 300}]},
            }
            accepted = submit_job(client, job, canvas)
            outcome = recorder.wait_outcome(accepted["job_id"], timeout=300)
            assert outcome.type == "finished", outcome.message

        firsts: list[float] = []
        seconds: list[float] = []
        daemon: list[float] = []
        direct: list[float] = []
        for round_ in range(args.rounds):
            rgb = np.ascontiguousarray(picture(round_)[..., :3])
            firsts.append(timed(functools.partial(engine.segment, spec, rgb, first_click, None)))
            seconds.append(timed(functools.partial(engine.segment, spec, rgb, second_click, None)))
            # new pictures for both sides, so that both pay the image encoder; alternate who goes first
            fresh, other = picture(1000 + round_), np.ascontiguousarray(picture(2000 + round_)[..., :3])
            pair: list[tuple[list[float], Callable[[], object]]] = [
                (daemon, functools.partial(through_daemon, fresh)),
                (direct, functools.partial(engine.segment, spec, other, first_click, None)),
            ]
            for into, work in pair if round_ % 2 else pair[::-1]:
                into.append(timed(work))
        client.close()
        thread.stop()

    scene = composite("coffee.jpg", 1, (1632, 1224))
    refine_times, quality = [], 0.0
    for _ in range(max(3, args.rounds // 2)):
        start = time.perf_counter()
        mask = refine(scene.rgb, None, SegmentPrompt(box=scene.box), cancel=threading.Event())
        refine_times.append(time.perf_counter() - start)
        quality = iou(mask, scene.truth)

    med = statistics.median
    load = os.getloadavg()
    cpus = os.cpu_count()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {cpus} CPUs; {args.rounds} rounds, medians")
    print(f"tiny SAM, 1152x864: first click {med(firsts) * 1000:.0f} ms, second click {med(seconds) * 1000:.0f} ms "
          f"-> second/first {med(seconds) / med(firsts):.3f} (target < 0.10)")  # fmt: skip
    print(f"tiny SAM first click, daemon {med(daemon) * 1000:.0f} ms vs direct {med(direct) * 1000:.0f} ms "
          f"-> {med(daemon) / med(direct):.3f}x (target <= 1.05)")  # fmt: skip
    print(f"classical refine, 1632x1224 (2.0 MP) from a box: {med(refine_times) * 1000:.0f} ms (IoU {quality:.3f})")


if __name__ == "__main__":
    main()
