"""`--workers ray`: does a second replica double throughput, and what does the Ray hop cost per job?

Measured side by side in one run, through the real websocket daemon driven like a plugin:

- throughput: 8 `tiny-random` txt2img jobs submitted at once, 1 replica vs 2 (torch limited to one
  thread per replica), after each replica has the model warm; the best of two turns each, the two
  deployments side by side when the GPUs allow; prints jobs/s and the ratio (target >= 1.7x).
  Without a GPU the replicas get logical GPUs and share this machine's cores; on a GPU machine (or
  with --address, a cluster) it compares 1 replica with one per GPU.
- upscale: tiles/s of a tiled x4 upscale (a random-weight Compact x4, the bench/upscale.py model), 1
  replica vs 2 (one torch thread each), deployed side by side, best of two turns: one job at a time
  (the daemon's tiled pass asks for its tiles one after another, so a second replica cannot speed up
  a single job) and two jobs from two clients at once (one per replica).
- overhead: the echo engine (returns its upload) at 512x512 and 4 MP, the in-process daemon vs the
  daemon on one Ray replica, interleaved; prints the median per job and the difference (target:
  under 10 ms added at 512x512; at 4 MP the pixels cross Ray's object store both ways), beside the
  floor: a bare Serve streaming call that carries the same pixels to a replica and back.

Run: ``python bench/scaleout.py [--only overhead|jobs|upscale]`` (needs ``underpaint[ray]`` and the
diffusion extra).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import ray
from ray import serve
from transfer import DaemonRoundTrip, photo
from upscale import tiny_model

from underpaint.daemon.config import DaemonConfig
from underpaint.daemon.server import Daemon, DaemonThread
from underpaint.engines.classical import ClassicalEngine
from underpaint.engines.echo import EchoEngine
from underpaint.scaleout.backend import RayOptions, RayWorkers
from underpaint.scaleout.replica import EngineSettings
from underpaint_protocol.client import UnderpaintClient
from underpaint_protocol.session import Event, ImageData

TEMP = Path(tempfile.mkdtemp(prefix="underpaint-bench-scaleout-"))


def start_daemon(engines: list, default_model: str, workers: RayWorkers | None = None) -> DaemonThread:
    config = DaemonConfig(port=0, token_file=TEMP / "token", outputs=None)
    return DaemonThread(Daemon(config, engines, default_model, workers=workers)).start()


def start_ray_daemon(settings: EngineSettings, options: RayOptions) -> tuple[DaemonThread, RayWorkers]:
    workers = RayWorkers(settings, options).start()
    return start_daemon(workers.engines, workers.default_model, workers), workers


def idle_cpus() -> tuple[float, float] | None:
    """(idle CPU seconds, wall seconds) so far, machine-wide (Linux), to tell a replica count that
    found no idle core from one that did not scale."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = stat.readline().split()
        return int(fields[4]) / os.sysconf("SC_CLK_TCK"), time.monotonic()
    except (OSError, ValueError, IndexError):
        return None


class Batch:
    """One client that submits many txt2img jobs at once and waits for all of them; it notes when
    each job started and ended on a worker, to say how many ran at once."""

    def __init__(self, url: str) -> None:
        self.finished: dict[str, str] = {}
        self.spans: dict[str, list[float]] = {}
        self.lock = threading.Lock()
        self.client = UnderpaintClient(url, client_name="bench", on_event=self._on_event, previews=False)
        self.client.connect()

    def _on_event(self, event: Event) -> None:
        if event.type == "started" and event.job_id:
            with self.lock:
                self.spans[event.job_id] = [time.perf_counter()]
        if event.type in ("finished", "failed", "cancelled") and event.job_id:
            with self.lock:
                self.finished[event.job_id] = event.type
                self.spans.get(event.job_id, []).append(time.perf_counter())

    def running_at_once(self, ids: list[str], elapsed: float) -> float:
        """Mean number of these jobs running on workers at once (job time summed / wall time)."""
        with self.lock:
            spans = [self.spans.get(job_id, []) for job_id in ids]
        return sum(span[1] - span[0] for span in spans if len(span) == 2) / elapsed

    def run(self, jobs: int, steps: int) -> tuple[float, float]:
        """Wall seconds for the jobs, and how many ran at once on average."""
        started = time.perf_counter()
        spec = {"mode": "txt2img", "model": "tiny-random", "steps": steps, "canvas": {"width": 128, "height": 128}}
        ids = [self.client.submit(spec, None, None).result(timeout=60)["job_id"] for _ in range(jobs)]
        while True:
            with self.lock:
                ended = [self.finished.get(job_id) for job_id in ids]
            if all(ended):
                break
            time.sleep(0.005)
        elapsed = time.perf_counter() - started
        if set(ended) != {"finished"}:
            raise RuntimeError(f"jobs ended as {ended}")
        return elapsed, self.running_at_once(ids, elapsed)

    def close(self) -> None:
        self.client.close()


@dataclass
class Rate:
    """The best turn of one replica count: jobs/s, jobs running at once, and the machine's idle CPUs."""

    jobs_per_second: float = 0.0
    at_once: float = 0.0
    idle_cpus: float | None = None


def throughput(counts: list[int], jobs: int, steps: int, settings: EngineSettings, cpus: float) -> dict[int, Rate]:
    """Jobs/s for each replica count: deployed side by side and measured in turns when the cluster
    has the GPUs for all of them at once (so both see the same machine load), else one after another."""
    side_by_side = int(ray.cluster_resources()["GPU"]) >= sum(counts)
    best: dict[int, Rate] = {}

    def deploy(count: int) -> tuple[DaemonThread, RayWorkers, Batch]:
        options = RayOptions(replicas=count, cpus_per_replica=cpus, app=f"bench-{count}")
        thread, workers = start_ray_daemon(settings, options)
        batch = Batch(thread.url)
        batch.run(count, steps)  # every replica loads the model once
        return thread, workers, batch

    def measure(count: int, batch: Batch) -> None:
        before = idle_cpus()
        elapsed, at_once = batch.run(jobs, steps)
        after = idle_cpus()
        idle = None if before is None or after is None else (after[0] - before[0]) / (after[1] - before[1])
        if jobs / elapsed > best.get(count, Rate()).jobs_per_second:
            best[count] = Rate(jobs / elapsed, at_once, idle)

    if side_by_side:
        running = {count: deploy(count) for count in counts}
        for _ in range(2):
            for count, (_, _, batch) in running.items():
                measure(count, batch)
        deployed = list(running.values())
    else:
        deployed = []
        for count in counts:
            deployed.append(deploy(count))
            measure(count, deployed[-1][2])
    for thread, workers, batch in deployed:
        batch.close()
        thread.stop()
        workers.close()
    return best


class Upscales:
    """One client that submits upscale jobs of one photo and waits for them; counts the tiles they ran."""

    def __init__(self, url: str, model: str, size: int, tile: int) -> None:
        self.job = {
            "mode": "upscale",
            "model": model,
            "canvas": {"width": size, "height": size},
            "upscale": {"factor": 4.0, "tile": tile},
        }
        self.region = {"x": 0, "y": 0, "width": size, "height": size}
        self.pixels = ImageData("rgba8", size, size, photo(size, size).tobytes())
        self.ended: dict[str, str] = {}
        self.tiles: dict[str, int] = {}
        self.lock = threading.Lock()
        self.client = UnderpaintClient(url, client_name="bench", on_event=self._on_event, previews=False)
        self.client.connect()

    def _on_event(self, event: Event) -> None:
        if event.job_id is None:
            return
        with self.lock:
            if event.type == "progress":
                self.tiles[event.job_id] = int(event.message["total"])
            elif event.type in ("finished", "failed", "cancelled"):
                self.ended[event.job_id] = event.type

    def submit(self) -> str:
        return str(self.client.submit(self.job, self.region, self.pixels, None).result(timeout=60)["job_id"])

    def wait(self, job_id: str) -> int:
        """The job's tiles, once it has finished."""
        while True:
            with self.lock:
                ended = self.ended.get(job_id)
            if ended:
                break
            time.sleep(0.005)
        if ended != "finished":
            raise RuntimeError(f"an upscale ended as {ended}")
        return self.tiles[job_id]

    def close(self) -> None:
        self.client.close()


def both(clients: list[Upscales]) -> int:
    """One upscale from each client at once; the tiles they ran."""
    ids = [(client, client.submit()) for client in clients]
    return sum(client.wait(job_id) for client, job_id in ids)


def upscale_rates(counts: list[int], size: int, tile: int, cpus: float) -> dict[int, tuple[float, float, float | None]]:
    """Tiles/s for each replica count, deployed side by side: (one job at a time, two jobs at once, the
    machine's idle CPUs during the best two-job turn)."""
    model = tiny_model(TEMP)
    settings = EngineSettings(engine="classical", models=(f"upscale:{model}",), device="cpu", torch_threads=1)
    deployed = {}
    for count in counts:
        options = RayOptions(replicas=count, cpus_per_replica=cpus, app=f"bench-upscale-{count}")
        thread, workers = start_ray_daemon(settings, options)
        clients = [Upscales(thread.url, model.stem, size, tile) for _ in range(2)]
        deployed[count] = (thread, workers, clients)
        for _ in range(2):  # every replica loads the model (Serve waits a while for a warm one first)
            both(clients)
    best: dict[int, tuple[float, float, float | None]] = {count: (0.0, 0.0, None) for count in counts}
    try:
        for _ in range(2):
            for count, (_, _, clients) in deployed.items():
                started = time.perf_counter()
                one = clients[0].wait(clients[0].submit()) / (time.perf_counter() - started)
                started, before = time.perf_counter(), idle_cpus()
                two = both(clients) / (time.perf_counter() - started)
                after = idle_cpus()
                idle = None if before is None or after is None else (after[0] - before[0]) / (after[1] - before[1])
                if two <= best[count][1]:
                    idle = best[count][2]
                best[count] = (max(best[count][0], one), max(best[count][1], two), idle)
    finally:
        for thread, workers, clients in deployed.values():
            for client in clients:
                client.close()
            thread.stop()
            workers.close()
    return best


class Floor:
    """Ray Serve alone: a streaming call that sends the pixels to a replica and gets them back."""

    def __init__(self, cpus: float) -> None:
        @serve.deployment(name="floor", max_ongoing_requests=1, ray_actor_options={"num_cpus": cpus})
        class Returns:
            async def call(self, pixels: np.ndarray) -> AsyncIterator[np.ndarray]:
                yield pixels

        self.handle = serve.run(Returns.bind(), name="floor", route_prefix=None).options(stream=True)  # type: ignore[attr-defined]

    def __call__(self, pixels: np.ndarray) -> float:
        started = time.perf_counter()
        (back,) = list(self.handle.call.remote(pixels))  # type: ignore[arg-type]
        elapsed = time.perf_counter() - started
        assert back.shape == pixels.shape
        return elapsed

    def close(self) -> None:
        serve.delete("floor")


def overhead(sizes: list[int], rounds: int, cpus: float) -> dict[int, dict[str, float]]:
    local = start_daemon([ClassicalEngine(), EchoEngine()], "echo")
    remote, workers = start_ray_daemon(EngineSettings(engine="echo"), RayOptions(replicas=1, cpus_per_replica=cpus))
    floor = Floor(cpus)
    medians = {}
    try:
        for side in sizes:
            pixels = photo(side, side)
            clients = {"local": DaemonRoundTrip(local.url), "ray": DaemonRoundTrip(remote.url)}
            paths: dict[str, Callable[[np.ndarray], float]] = {**clients, "floor": floor}
            times: dict[str, list[float]] = {name: [] for name in paths}
            for _ in range(3):  # warm every path
                for path in paths.values():
                    path(pixels)
            for _ in range(rounds):
                for name, path in paths.items():
                    times[name].append(path(pixels))
            for client in clients.values():
                client.close()
            medians[side] = {name: statistics.median(values) for name, values in times.items()}
    finally:
        floor.close()
        local.stop()
        remote.stop()
        workers.close()
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--address", help="a Ray cluster to run on (default: a local one)")
    parser.add_argument("--only", choices=["overhead", "jobs", "upscale"], help="run one part (default: all)")
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=4, help="denoising steps per tiny-random job")
    parser.add_argument("--rounds", type=int, default=30, help="echo jobs per size and path")
    parser.add_argument("--device", default="auto", help="device the replicas run tiny-random on")
    parser.add_argument("--upscale-size", type=int, default=256, help="side of the photo upscaled x4")
    parser.add_argument("--tile", type=int, default=64, help="input pixels per upscale tile side")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logical = False
    if args.address:
        ray.init(address=args.address, log_to_driver=False)
    else:
        import torch

        logical = not torch.cuda.is_available()
        ray.init(num_gpus=3 if logical else None, include_dashboard=False, log_to_driver=False)  # 1 + 2 replicas
    gpus = int(ray.cluster_resources()["GPU"])
    cpus = min(1.0, ray.cluster_resources()["CPU"] / max(gpus, 1) / 2)  # logical: Ray does not pin cores
    print(f"Ray cluster: {gpus} {'logical ' if logical else ''}GPU(s), {ray.cluster_resources()['CPU']:.0f} CPU(s)")
    many = 2 if logical else gpus
    if args.only in (None, "overhead"):
        print_overhead(overhead([512, 2048], args.rounds, cpus), args.rounds)
    if args.only in (None, "jobs"):
        settings = EngineSettings(engine="classical", models=("tiny-random",), device=args.device, torch_threads=1)
        print_throughput(throughput([1, many], args.jobs, args.steps, settings, cpus), args.jobs, args.steps, many)
    if args.only in (None, "upscale"):
        rates = upscale_rates([1, many], args.upscale_size, args.tile, cpus)
        side = args.upscale_size
        print(f"\nupscale tiles/s, {side}x{side} x4 in tiles of {args.tile} px (Compact x4, random weights),")
        print("  1 torch thread per replica, best of two turns, the deployments side by side")
        print(f"  {'replicas':>8} {'one job at a time':>18} {'two jobs at once':>17} {'CPUs idle (two)':>16}")
        for count in (1, many):
            one, two, idle = rates[count]
            idle_text = "?" if idle is None else f"{idle:.2f}"
            print(f"  {count:>8} {one:>12.2f} tiles/s {two:>10.2f} tiles/s {idle_text:>16}")
        print(
            f"  ratio {many} vs 1: {rates[many][0] / rates[1][0]:.2f}x one job at a time (its tiles go one after"
            f" another), {rates[many][1] / rates[1][1]:.2f}x two jobs at once"
        )
        print(f"  load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    ray.shutdown()


def print_overhead(medians: dict[int, dict[str, float]], rounds: int) -> None:
    print("\nper-job time, echo engine, median of", rounds, "(floor: a bare Serve streaming call with the pixels)")
    print("(added beyond the floor: what the daemon's Ray path costs on top of Serve's own call)")
    print(f"{'size':>10} {'in-process':>12} {'Ray':>10} {'added':>10} {'Serve floor':>12} {'beyond floor':>13}")
    for side, m in medians.items():
        added = m["ray"] - m["local"]
        print(
            f"{side}x{side:<5} {m['local'] * 1e3:10.1f} ms {m['ray'] * 1e3:7.1f} ms {added * 1e3:7.1f} ms"
            f" {m['floor'] * 1e3:9.1f} ms {(added - m['floor']) * 1e3:10.1f} ms"
        )
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


def print_throughput(rates: dict[int, Rate], jobs: int, steps: int, many: int) -> None:
    print(f"\nthroughput, {jobs} tiny-random txt2img jobs, {steps} steps at 512x512, 1 torch thread each")
    print("  (at once: jobs running on workers at the same time, on average; idle: the machine's idle CPUs")
    print("  meanwhile; with no idle CPU left a second replica on a shared machine cannot run any faster)")
    for count in (1, many):
        rate = rates[count]
        idle = "?" if rate.idle_cpus is None else f"{rate.idle_cpus:.2f}"
        print(
            f"  {count} replica{'s' if count > 1 else ' '}: {rate.jobs_per_second:.3f} jobs/s,"
            f" {rate.at_once:.2f} at once, {idle} CPUs idle"
        )
    print(f"  ratio {rates[many].jobs_per_second / rates[1].jobs_per_second:.2f}x (target >= 1.7x with 2)")
    print(f"  load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
