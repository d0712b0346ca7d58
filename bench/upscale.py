"""Upscale benchmark: the daemon against calling the spandrel model directly on the same tiles, tiles per
second, and the daemon's peak memory for 4096x4096 -> 16384x16384.

Run: python bench/upscale.py [--repeats N] [--size N] [--big N]

1. Overhead: an upscale of a ``--size`` square photo (default 512) by the model's native factor through
   a real daemon over a loopback socket (plan, upload, tiled pass with blending, result tiles stored and
   sent) against the bare model call ``descriptor(tile)`` of the same loaded model (its layout as the
   daemon loads it: channels-last for this architecture on the CPU) on exactly the daemon's input tiles
   (``TiledPass.boxes``, context included) on a thread of its own like the daemon's, interleaved,
   median of repeats after a warm-up round; wall time and this process's CPU time (the daemon, its
   client and the direct calls share the process; CPU time is what other work on a shared machine
   disturbs least). Before each direct run the bench waits for the daemon's background PNG writer to
   finish, so neither side pays for it; its CPU time is printed apart; so is the direct call on
   spandrel's default layout. Target: ratio <= 1.05. The model is a Real-ESRGAN SRVGGNetCompact x4
   with random weights (the realesr-general-x4v3 architecture with 16 features and 4 convolutions, a
   quarter of its cost).
2. Tiles per second of the daemon in (1).
3. Peak memory: ``--big`` (default 4096) squared x4 through a daemon in a separate process, for the
   classical upscaler and the tiny model; the client drops every tile as it arrives. Printed: the
   daemon's peak growth of anonymous memory during the job (RssAnon sampled every 50 ms, minus its
   value before; file pages such as torch's libraries are left out, they come and go with the page
   cache), the job's stated bound (``daemon.upscaling.memory_bound``), and the result's size.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from underpaint.canvas.tiles import TiledPass
from underpaint.engines.upscale import MARGIN, SpandrelUpscaler
from underpaint.engines.weights import load_descriptor

ROOT = Path(__file__).resolve().parents[1]


def tiny_model(folder: Path) -> Path:
    from safetensors.torch import save_file
    from spandrel.architectures.Compact import Compact

    torch.manual_seed(0)
    path = folder / "bench-compact-x4.safetensors"
    save_file(Compact(num_feat=16, num_conv=4, upscale=4).state_dict(), str(path))
    return path


def photo(size: int) -> np.ndarray:
    import cv2

    bgr = cv2.imread(str(ROOT / "tests" / "data" / "astronaut.jpg"))
    assert bgr is not None
    rgb = cv2.cvtColor(cv2.resize(bgr, (size, size), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
    return np.dstack([rgb, np.full((size, size), 255, np.uint8)])


def direct(descriptor: Any, image: np.ndarray, tiled: TiledPass) -> tuple[float, float]:
    """The model alone on the daemon's input tiles (``TiledPass.boxes``: the same boxes, context
    included), on a thread of its own as the daemon's model calls are (on this 2-core machine under
    load, the same calls on the main thread took about 3x the CPU time): wall and CPU seconds."""

    def calls() -> None:
        for box, _ in tiled.boxes():
            crop = image[box.y : box.bottom, box.x : box.right, :3]
            tensor = torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1)[None].float().div(255.0)
            with torch.inference_mode():
                descriptor(tensor)

    started, cpu = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(max_workers=1) as thread:
        thread.submit(calls).result()
    return time.perf_counter() - started, time.process_time() - cpu


def wait_for_pngs(outputs: Path) -> float:
    """Wait until the background writer has turned every raw result into PNGs (the tiles', and the
    whole layer's it joins them into); its CPU seconds."""
    cpu = time.process_time()
    while any(outputs.glob("*/*.rgba")):
        time.sleep(0.01)
    return time.process_time() - cpu


def overhead(model: Path, size: int, repeats: int) -> None:
    from underpaint.daemon.config import DaemonConfig
    from underpaint.daemon.server import Daemon, DaemonThread
    from underpaint.engines.registry import build_engines
    from underpaint_protocol.client import UnderpaintClient
    from underpaint_protocol.messages import Limits
    from underpaint_protocol.session import ImageData

    upscaler = SpandrelUpscaler(str(model), "cpu")
    image = photo(size)
    with tempfile.TemporaryDirectory() as tmp:
        engines, default = build_engines("classical", [f"upscale:{model}"], [], "cpu")
        folder = Path(tmp)
        config = DaemonConfig(
            host="127.0.0.1", port=0, token_file=folder / "token", outputs=folder / "outputs", limits=Limits()
        )
        thread = DaemonThread(Daemon(config, engines, default)).start()
        ended = threading.Event()
        progress: list[dict] = []

        def on_event(event) -> None:
            if event.type == "progress":
                progress.append(event.message)
            elif event.type in ("finished", "failed", "cancelled"):
                ended.set()

        client = UnderpaintClient(thread.url, token=thread.daemon.token, client_name="bench", on_event=on_event)
        client.connect(timeout=30)
        try:
            job = {"mode": "upscale", "model": model.stem, "canvas": {"width": size, "height": size}}
            job["upscale"] = {"factor": 4.0}
            tile = upscaler.tile_for(4.0, None)
            tiled = TiledPass(size, size, size * upscaler.scale, size * upscaler.scale, tile, MARGIN)
            plain = load_descriptor(model).eval()  # spandrel's own layout (the daemon's is channels-last)
            direct(upscaler.descriptor, image, tiled)  # warm-up: torch's first calls, the allocator
            direct(plain, image, tiled)
            daemon_times, daemon_cpu, direct_times, direct_cpu, png_cpu, plain_times = [], [], [], [], [], []
            for _ in range(repeats + 1):
                ended.clear()
                started, cpu = time.perf_counter(), time.process_time()
                client.plan(job).result(timeout=30)
                data = ImageData("rgba8", size, size, image.tobytes())
                client.submit(job, {"x": 0, "y": 0, "width": size, "height": size}, data, None).result(timeout=60)
                ended.wait(600)
                daemon_times.append(time.perf_counter() - started)
                daemon_cpu.append(time.process_time() - cpu)
                png_cpu.append(wait_for_pngs(folder / "outputs"))
                wall, used = direct(upscaler.descriptor, image, tiled)
                direct_times.append(wall)
                direct_cpu.append(used)
                plain_times.append(direct(plain, image, tiled)[0])
            tiles = progress[-1]["total"]
        finally:
            client.close()
            thread.stop()
    # the first daemon job is a warm-up (the pass's buffers, the outputs folder)
    through, bare = statistics.median(daemon_times[1:]), statistics.median(direct_times[1:])
    through_cpu, bare_cpu = statistics.median(daemon_cpu[1:]), statistics.median(direct_cpu[1:])
    print(f"1. overhead, {size}x{size} x4 with a Compact x4 (random weights), {tiles} model tiles of {tile} px:")
    print(
        f"   wall: daemon {through:.3f} s, direct model calls {bare:.3f} s, ratio {through / bare:.3f} (target <= 1.05)"
    )
    print(
        f"   CPU (this process, all threads; steadier than wall on a shared machine): daemon {through_cpu:.3f} s "
        f"(client included), direct {bare_cpu:.3f} s, ratio {through_cpu / bare_cpu:.3f}"
    )
    plain_wall = statistics.median(plain_times[1:])
    print(
        f"   the same calls on spandrel's default layout: {plain_wall:.3f} s (the daemon runs this architecture "
        f"channels-last on the CPU: daemon / default-layout direct {through / plain_wall:.3f})"
    )
    print(
        f"   not in either: the background PNG conversion, {statistics.median(png_cpu[1:]):.3f} s CPU per job "
        "(waited for after each job, lowest priority)"
    )
    megapixels = size * size * 16 / through / 1e6
    print(f"2. daemon: {tiles / through:.2f} model tiles per second ({megapixels:.1f} MP/s of output)")


DAEMON = """
import json, sys
from pathlib import Path
from underpaint.daemon.config import DaemonConfig
from underpaint.daemon.server import Daemon, DaemonThread
from underpaint.engines.registry import build_engines
from underpaint_protocol.messages import Limits
folder = Path(sys.argv[1])
engines, default = build_engines("classical", sys.argv[2:], [], "cpu")
outputs = folder / "outputs"
config = DaemonConfig(host="127.0.0.1", port=0, token_file=folder / "token", outputs=outputs, limits=Limits())
thread = DaemonThread(Daemon(config, engines, default)).start()
import threading, time
def status():
    fields = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
    return {k: int(fields[k].split()[0]) * 1024 for k in ("VmRSS", "VmHWM", "RssAnon")}
peak = [0]
def sample():  # anonymous memory only: file pages (torch's libraries) come and go with the page cache
    while True:
        peak[0] = max(peak[0], status()["RssAnon"])
        time.sleep(0.05)
threading.Thread(target=sample, daemon=True).start()
print(json.dumps({"url": thread.url, "token": thread.daemon.token, **status()}), flush=True)
for line in sys.stdin:
    if line.strip() == "status":
        print(json.dumps({**status(), "peak_anon": peak[0]}), flush=True)
    else:
        break
thread.stop()
"""


def peak_memory(model: Path, big: int) -> None:
    from underpaint.daemon.upscaling import memory_bound, plan_upscale
    from underpaint.engines.upscale import ClassicalUpscaler
    from underpaint_protocol.client import UnderpaintClient
    from underpaint_protocol.messages import JobSpec, Limits, Size, UpscaleSpec
    from underpaint_protocol.session import ImageData

    image = photo(big)
    print(
        f"3. peak memory of the daemon process, {big}x{big} -> {4 * big}x{4 * big} "
        f"(the result alone: {16 * big * big * 4 / 2**20:.0f} MiB RGBA):"
    )
    for label, model_id, upscaler in (
        ("classical", "classical-upscale", ClassicalUpscaler()),
        ("tiny model", model.stem, SpandrelUpscaler(str(model), "cpu")),
    ):
        spec = JobSpec(
            mode="upscale", model=model_id, canvas=Size(width=big, height=big), upscale=UpscaleSpec(factor=4.0)
        )
        _, up = plan_upscale(spec, upscaler, Limits())
        with tempfile.TemporaryDirectory() as tmp:
            child = subprocess.Popen(
                [sys.executable, "-c", DAEMON, tmp, f"upscale:{model}"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
            assert child.stdout is not None and child.stdin is not None
            hello = json.loads(child.stdout.readline())
            done = threading.Event()
            count = [0]

            def on_event(event, done=done, count=count) -> None:
                if event.type == "result":
                    count[0] += 1  # the tile is dropped at once
                elif event.type in ("finished", "failed", "cancelled"):
                    done.set()

            client = UnderpaintClient(hello["url"], token=hello["token"], client_name="bench", on_event=on_event)
            client.connect(timeout=30)
            job = spec.model_dump(exclude_none=True)
            started = time.perf_counter()
            client.plan(job).result(timeout=30)
            data = ImageData("rgba8", big, big, image.tobytes())
            client.submit(job, {"x": 0, "y": 0, "width": big, "height": big}, data, None).result(timeout=120)
            done.wait(3600)
            seconds = time.perf_counter() - started
            child.stdin.write("status\n")
            child.stdin.flush()
            after = json.loads(child.stdout.readline())
            client.close()
            child.stdin.write("quit\n")
            child.stdin.flush()
            child.wait(60)
        growth = after["peak_anon"] - hello["RssAnon"]
        upload = big * big * 4
        print(
            f"   {label}: {count[0]} result tiles in {seconds:.1f} s; peak anonymous memory growth "
            f"{growth / 2**20:.0f} MiB (the upload: {upload / 2**20:.0f} MiB, twice while its frame is decoded; "
            f"the job's stated bound {memory_bound(up) / 2**20:.0f} MiB; tiles waiting to be sent: at most 64 MB)"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--big", type=int, default=4096)
    args = parser.parse_args()
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; torch threads {torch.get_num_threads()}")
    with tempfile.TemporaryDirectory() as tmp:
        model = tiny_model(Path(tmp))
        overhead(model, args.size, args.repeats)
        if args.big:  # 0: the overhead only
            peak_memory(model, args.big)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
