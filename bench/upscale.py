"""Upscale benchmark: the daemon against calling the spandrel model directly on the same tiles, where
the difference goes, tiles per second, and the daemon's peak memory for 4096x4096 -> 16384x16384.

Run: python bench/upscale.py [--repeats N] [--size N] [--big N] [--kinds compact esrgan general] [--threads N]

1. Overhead, for each model kind (``KINDS``, random weights): an upscale of a ``--size`` square photo
   (default 512) by the model's native factor (x4) through a real daemon over a loopback socket (plan,
   upload, tiled pass with blending, result tiles stored and sent, the client receiving them) against
   the bare model call ``descriptor(tile)`` of the same loaded model (its layout as the daemon loads it:
   channels-last for these architectures on the CPU) on exactly the daemon's input tiles
   (``TiledPass.boxes``, context included) on a thread of its own like the daemon's. Between them, the
   breakdown: the daemon's upscale step itself (``execute_upscale`` on a job made in this process, no
   socket) with its results kept in memory, then stored on disk as the daemon stores them. Every stage
   runs once per round, rounds interleaved, median of ``--repeats`` after a warm-up round; wall time and
   this process's CPU time (everything shares the process). Before the next stage the bench waits for
   the background PNG writer, so no stage pays for another's PNGs; its CPU time is printed apart; so
   are the direct calls on spandrel's default layout. Target: daemon / direct <= 1.05. Also against the
   direct calls whose outputs are made 8-bit pixels (what a script must add to get an image; the
   daemon cannot do less than that, and for a model as cheap as ``compact`` that floor alone shows).
   ``--threads``
   sets torch's threads for both sides (torch's default: one per core; on a machine shared with other
   work, threads that wait for each other at every operation make both sides' times swing severalfold).
2. Tiles per second of the daemon in (1).
3. Peak memory: ``--big`` (default 4096) squared x4 through a daemon in a separate process, for the
   classical upscaler and the tiny Compact model; the client drops every tile as it arrives. Printed:
   the daemon's peak growth of anonymous memory during the job (RssAnon sampled every 50 ms, minus its
   value before; file pages such as torch's libraries are left out, they come and go with the page
   cache), the job's stated bound (``daemon.upscaling.memory_bound``), and the result's size.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from underpaint.canvas.tiles import TiledPass
from underpaint.engines.upscale import CHANNELS_LAST, MARGIN, SpandrelUpscaler, Upscaler
from underpaint.engines.weights import load_descriptor

ROOT = Path(__file__).resolve().parents[1]


KINDS = {
    "compact": "Real-ESRGAN SRVGGNetCompact x4 (16 features, 4 convolutions; realesr-general-x4v3 has 64 and 32)",
    "esrgan": "ESRGAN RRDBNet x4 (8 filters, 1 block)",
    "general": "Real-ESRGAN SRVGGNetCompact x4 (64 features, 32 convolutions: realesr-general-x4v3's size)",
}
"""The model kinds of part 1, random weights: the cheapest per pixel (where the daemon's own work weighs
most), a heavier one, and the size of the smallest Real-ESRGAN model artists use (``general``: minutes
per round on one CPU thread at 512 px, so not in the default ``--kinds``; try ``--size 256``)."""
DEFAULT_KINDS = ["compact", "esrgan"]


def tiny_model(folder: Path, kind: str = "compact") -> Path:
    from safetensors.torch import save_file
    from spandrel.architectures.Compact import Compact
    from spandrel.architectures.ESRGAN import ESRGAN

    torch.manual_seed(0)
    path = folder / f"bench-{kind}-x4.safetensors"
    models = {
        "compact": lambda: Compact(num_feat=16, num_conv=4, upscale=4),
        "esrgan": lambda: ESRGAN(num_filters=8, num_blocks=1),
        "general": lambda: Compact(num_feat=64, num_conv=32, upscale=4),
    }
    model = models[kind]()
    save_file(model.state_dict(), str(path))
    return path


def photo(size: int) -> np.ndarray:
    import cv2

    bgr = cv2.imread(str(ROOT / "tests" / "data" / "astronaut.jpg"))
    assert bgr is not None
    rgb = cv2.cvtColor(cv2.resize(bgr, (size, size), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
    return np.dstack([rgb, np.full((size, size), 255, np.uint8)])


def writer_cpu() -> float:
    """CPU seconds so far of the outputs' background PNG writers in this process (threads named
    ``outputs-png``), from the kernel's per-thread accounting."""
    used = 0
    for thread in threading.enumerate():
        if thread.name == "outputs-png" and thread.native_id is not None:
            with contextlib.suppress(FileNotFoundError):  # it ended
                used += int(Path(f"/proc/self/task/{thread.native_id}/schedstat").read_text().split()[0])
    return used / 1e9


def timed(run: Callable[[], object]) -> tuple[float, float, float]:
    """Wall seconds of ``run``, and CPU seconds of this process (all threads) in them: besides the PNG
    writer, and the writer's."""
    started, cpu, writer = time.perf_counter(), time.process_time(), writer_cpu()
    run()
    wall, writing = time.perf_counter() - started, writer_cpu() - writer
    return wall, time.process_time() - cpu - writing, writing


def direct(descriptor: Any, image: np.ndarray, tiled: TiledPass, to_pixels: bool = False) -> None:
    """The model alone on the daemon's input tiles (``TiledPass.boxes``: the same boxes, context
    included), on a thread of its own as the daemon's model calls are (on this 2-core machine under
    load, the same calls on the main thread took about 3x the CPU time). ``to_pixels``: each output
    also made 8-bit RGB pixels as a script calling spandrel does to save it (clamp, x255, round)."""

    def calls() -> None:
        for box, _ in tiled.boxes():
            crop = image[box.y : box.bottom, box.x : box.right, :3]
            tensor = torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1)[None].float().div(255.0)
            with torch.inference_mode():
                out = descriptor(tensor)
                if to_pixels:
                    out[0].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).contiguous().numpy()

    with ThreadPoolExecutor(max_workers=1) as thread:
        thread.submit(calls).result()


def wait_for_pngs(outputs: Path) -> float:
    """Wait until the background writer has turned every raw result into PNGs (the tiles', and the
    whole layer's it joins them into); its CPU seconds meanwhile."""
    writer = writer_cpu()
    while any(outputs.glob("*/*.rgba")):
        time.sleep(0.01)
    return writer_cpu() - writer


def in_process(engine: Any, upscaler: Upscaler, spec: Any, image: np.ndarray, store: Any) -> None:
    """The daemon's upscale step itself (``execute_upscale``) on a job made here: no socket, no
    client, events dropped; ``store`` in memory or on disk."""
    from underpaint.daemon.records import Job
    from underpaint.daemon.upscaling import execute_upscale, plan_upscale
    from underpaint_protocol.messages import Limits

    plan, up = plan_upscale(spec, upscaler, Limits())
    info = next(model for model in engine.models() if model.id == upscaler.id)
    job = Job(
        id=uuid.uuid4().hex,
        owner="bench",
        spec=spec,
        model=info,
        engine=engine,
        plan=plan,
        seed=0,
        steps=1,
        guidance=0.0,
        strength=1.0,
        image=image,
        mask=None,
        upscale=up,
    )
    execute_upscale(job, lambda *_: None, store, Path(tempfile.gettempdir()))


STAGES = ("daemon", "direct", "to pixels", "pass", "stored", "default layout")


def overhead(kind: str, model: Path, size: int, repeats: int) -> None:
    """Part 1 for one model kind: the daemon job, then the same work stage by stage, interleaved."""
    from underpaint.daemon.config import DaemonConfig
    from underpaint.daemon.outputs import OutputStore
    from underpaint.daemon.server import Daemon, DaemonThread
    from underpaint.engines.registry import build_engines
    from underpaint.engines.upscale import UpscaleEngine
    from underpaint_protocol.client import UnderpaintClient
    from underpaint_protocol.messages import JobSpec, Limits, Size, UpscaleSpec
    from underpaint_protocol.session import ImageData

    spec = JobSpec(
        mode="upscale", model=model.stem, canvas=Size(width=size, height=size), upscale=UpscaleSpec(factor=4.0)
    )
    engine = UpscaleEngine([str(model)], "cpu")
    upscaler = engine.upscaler(model.stem)
    assert isinstance(upscaler, SpandrelUpscaler)
    image = photo(size)
    tile = upscaler.tile_for(4.0, None)
    tiled = TiledPass(size, size, size * upscaler.scale, size * upscaler.scale, tile, MARGIN)
    plain = load_descriptor(model).eval()  # spandrel's own layout (channels-last where the daemon uses it)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        engines, default = build_engines("classical", [f"upscale:{model}"], [], "cpu")
        config = DaemonConfig(
            host="127.0.0.1", port=0, token_file=folder / "token", outputs=folder / "outputs", limits=Limits()
        )
        thread = DaemonThread(Daemon(config, engines, default)).start()
        memory, disk = OutputStore(None, 0), OutputStore(folder / "stored", 1 << 30)
        disk.start()
        ended = threading.Event()
        progress: list[dict] = []

        def on_event(event) -> None:
            if event.type == "progress":
                progress.append(event.message)
            elif event.type in ("finished", "failed", "cancelled"):
                ended.set()

        client = UnderpaintClient(thread.url, token=thread.daemon.token, client_name="bench", on_event=on_event)
        client.connect(timeout=30)
        job = spec.model_dump(exclude_none=True)

        def through_daemon() -> None:
            ended.clear()
            client.plan(job).result(timeout=30)
            data = ImageData("rgba8", size, size, image.tobytes())
            client.submit(job, {"x": 0, "y": 0, "width": size, "height": size}, data, None).result(timeout=60)
            ended.wait(600)

        runs: dict[str, Callable[[], None]] = {
            "daemon": through_daemon,
            "direct": lambda: direct(upscaler.descriptor, image, tiled),
            "pass": lambda: in_process(engine, upscaler, spec, image, memory),
            "stored": lambda: in_process(engine, upscaler, spec, image, disk),
            "to pixels": lambda: direct(upscaler.descriptor, image, tiled, to_pixels=True),
            "default layout": lambda: direct(plain, image, tiled),
        }
        times: dict[str, list[tuple[float, float, float]]] = {stage: [] for stage in STAGES}
        png_cpu: list[float] = []
        try:
            for _ in range(repeats + 1):  # the first round is a warm-up (torch's first calls, the allocator)
                for stage in STAGES:
                    times[stage].append(timed(runs[stage]))
                    if stage in ("daemon", "stored"):  # neither side pays for the PNGs of another
                        later = wait_for_pngs(folder / ("outputs" if stage == "daemon" else "stored"))
                        png_cpu.append(times[stage][-1][2] + later)
            tiles = progress[-1]["total"]
        finally:
            client.close()
            thread.stop()
            disk.stop()
    wall = {stage: statistics.median(t[0] for t in runs_[1:]) for stage, runs_ in times.items()}
    cpu = {stage: statistics.median(t[1] for t in runs_[1:]) for stage, runs_ in times.items()}
    print(f"1. {kind}: {KINDS[kind]}, random weights; {size}x{size} x4, {tiles} model tiles of {tile} px")
    print(
        "   wall / CPU seconds (CPU: this process's threads but the PNG writer's; steadier than wall on a shared "
        "machine):"
    )
    rows = (
        ("direct", "the model calls alone", "direct"),
        ("to pixels", "the model calls, each output made 8-bit RGB pixels (clamp, x255, round)", "direct"),
        ("pass", "the upscale step, results kept in memory (scale, blend, result tiles)", "direct"),
        ("stored", "the upscale step, results stored raw on disk", "pass"),
        ("daemon", "the daemon job (plan, upload, queue, socket, client)", "stored"),
    )
    for stage, label, before in rows:
        added = "" if stage == before else f"  (+{wall[stage] - wall[before]:.3f} / +{cpu[stage] - cpu[before]:.3f})"
        print(f"   {label}: {wall[stage]:.3f} / {cpu[stage]:.3f}{added}")
    for against, label in (("direct", "direct"), ("to pixels", "direct calls made 8-bit pixels")):
        rounds = list(zip(times["daemon"][1:], times[against][1:], strict=True))
        wall_ratio, cpu_ratio = (statistics.median(d[k] / m[k] for d, m in rounds) for k in (0, 1))
        print(
            f"   daemon / {label}: wall {wall['daemon'] / wall[against]:.3f}, CPU "
            f"{cpu['daemon'] / cpu[against]:.3f} (target <= 1.05); median of the rounds' own ratios (steadier "
            f"when the load drifts): wall {wall_ratio:.3f}, CPU {cpu_ratio:.3f}"
        )
    print(
        f"   the direct calls on spandrel's default layout: {wall['default layout']:.3f} / {cpu['default layout']:.3f} "
        f"(the daemon runs {upscaler.family} "
        f"{'channels-last' if upscaler.descriptor.architecture.id in CHANNELS_LAST else 'as spandrel does'})"
    )
    print(
        f"   not in either: the background PNG writer, {statistics.median(png_cpu[2:]):.3f} s CPU per job "
        f"(lowest priority; during the daemon job {statistics.median(t[2] for t in times['daemon'][1:]):.3f}, "
        "the rest waited for after it)"
    )
    megapixels = size * size * 16 / wall["daemon"] / 1e6
    print(f"2. {kind}, daemon: {tiles / wall['daemon']:.2f} model tiles per second ({megapixels:.1f} MP/s of output)")


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


@contextlib.contextmanager
def daemon_process(*weights: str) -> Iterator[tuple[subprocess.Popen[str], dict[str, Any]]]:
    """A daemon (the classical engines plus ``weights``, e.g. ``upscale:FILE``) in a process of its own,
    so its memory and this process's are measured apart; yields it and its hello (url, token, memory).
    Lines on its stdin: ``status`` answers its memory now and at its peak; leaving the block stops it."""
    with tempfile.TemporaryDirectory() as tmp:
        child = subprocess.Popen(
            [sys.executable, "-c", DAEMON, tmp, *weights],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert child.stdout is not None and child.stdin is not None
        try:
            yield child, json.loads(child.stdout.readline())
        finally:
            child.stdin.write("quit\n")
            child.stdin.flush()
            child.wait(60)


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
        with daemon_process(f"upscale:{model}") as (child, hello):
            assert child.stdout is not None and child.stdin is not None
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
    parser.add_argument("--kinds", nargs="+", choices=list(KINDS), default=DEFAULT_KINDS)
    parser.add_argument("--threads", type=int, help="torch's threads, for both sides (default: torch's own)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; torch threads {torch.get_num_threads()}")
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.kinds:
            overhead(kind, tiny_model(Path(tmp), kind), args.size, args.repeats)
        if args.big:  # 0: the overhead only
            peak_memory(tiny_model(Path(tmp), "compact"), args.big)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
