"""Live painting: the daemon's overhead per frame, stroke-to-result latency at 30 Hz, bytes per frame.

A daemon runs in its own process with a model whose call takes exactly T (it sleeps T and returns
its input: a real Engine, so everything else a live frame costs is the daemon's). The client is the
shared ``UnderpaintClient``. Measured in one run, side by side, on a 512x512 canvas (whole-canvas
img2img; the model works at 512x512):

- overhead: one frame at a time (a 16x16 dab, never a backlog): client round trip minus T, and the
  daemon's own share (``live_result.latency_ms`` minus T: patch, scale in and out, composite, queue
  turn); as milliseconds and as a fraction of the frame time, for T = 0 and T = 50 ms, interleaved;
- latency: a stroke stream at 30 frames/s for ``--seconds`` with T = ``--model-ms`` (100 by default):
  for every stroke frame, the time from sending it to the first result that includes it; p50 and p95
  against the bound 2T + overhead (a stroke waits at most one model call, then its own), and against
  the p95 of the floor for the same strokes: each waits for the rest of the model call that was
  running when it was sent (the daemon's log of its calls), then T, then the overhead once -- a
  daemon that never preempts a model call cannot do better, so this ratio is the daemon's own share
  of the tail (for strokes spread evenly over the calls, p95 / bound is near 1 - 0.05 T / (2T +
  overhead) at best: a stroke that arrives just after a call began waits for nearly all of it);
- bytes: what one frame puts on the wire (message + binary frame) for a small stroke (16x16), a
  larger one (64x64) and the full region, against the pixel ratio.

Run: ``python bench/live.py`` (prints the machine's load average before and after).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

SIDE = 512


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ------------------------------------------------------------------ the daemon (a subprocess)


def serve(port: int, calls: Path) -> None:
    """The daemon with timed models ``tN`` (N milliseconds per call); each call's start and end
    (``time.monotonic``, the same clock in both processes) are appended to ``calls`` (under load a
    sleep overshoots: that time is the model's, not overhead)."""
    from underpaint.canvas.plan import ModelResolution
    from underpaint.daemon.config import DaemonConfig
    from underpaint.daemon.server import Daemon, run_forever
    from underpaint.engines.base import Engine, GenerationInput, JobCancelled, ModelInfo, ProgressCallback
    from underpaint.modes import Mode

    class TimedEngine(Engine):
        """Its model call takes exactly the model's milliseconds and returns the input."""

        name = "timed"

        def models(self) -> list[ModelInfo]:
            return [
                ModelInfo(f"t{ms}", self.name, "test", (Mode.IMG2IMG,), f"{ms} ms per call", 1, 0.0, loaded=True)
                for ms in (0, 50, 100, 200)
            ]

        def resolution(self, model: str) -> ModelResolution:
            return ModelResolution(pixel_budget=SIDE * SIDE)

        def generate(
            self, job: GenerationInput, batch_count: int, on_progress: ProgressCallback, cancel: threading.Event
        ) -> Iterator[np.ndarray]:
            started = time.monotonic()
            time.sleep(int(job.model[1:]) / 1000)
            if cancel.is_set():
                raise JobCancelled()
            with calls.open("a") as log:
                log.write(f"{started:.6f} {time.monotonic():.6f}\n")
            assert job.image is not None
            yield job.image

    folder = Path(tempfile.mkdtemp(prefix="underpaint-bench-live-"))
    config = DaemonConfig(
        host="127.0.0.1",
        port=port,
        token_file=folder / "token",
        outputs=None,
        styles_file=folder / "styles.json",
        history_file=None,
    )
    run_forever(Daemon(config, [TimedEngine()], "t0"))


# ------------------------------------------------------------------ the client side


class Live:
    """One client with a live session on a model; results by seq with their arrival times."""

    def __init__(self, url: str) -> None:
        from underpaint_protocol.client import UnderpaintClient

        self.arrived: dict[int, float] = {}
        self.latency_ms: dict[int, float] = {}
        self.session: str | None = None
        self.client = UnderpaintClient(url, client_name="bench-live", on_event=self._event)
        self.client.connect(timeout=30)
        self.canvas = np.zeros((SIDE, SIDE, 4), np.uint8)
        self.canvas[..., 3] = 255
        self.seq = 0

    def _event(self, event: Any) -> None:
        if event.type == "live_result" and event.message["session_id"] == self.session:
            self.arrived[event.message["seq"]] = time.monotonic()
            self.latency_ms[event.message["seq"]] = event.message["latency_ms"]

    def start(self, model: str) -> None:
        started = self.client.live_start({"model": model, "canvas": {"width": SIDE, "height": SIDE}}).result(30)
        self.session = started["session_id"]
        self.arrived.clear()
        self.seq = 0
        self.send(0, 0, SIDE)
        self.wait(self.seq)

    def send(self, x: int, y: int, size: int) -> tuple[int, float]:
        from underpaint_protocol.session import ImageData

        self.canvas[y : y + size, x : x + size, :3] = (self.seq * 37) % 256
        patch = np.ascontiguousarray(self.canvas[y : y + size, x : x + size])
        self.seq += 1
        sent = time.monotonic()
        self.client.live_frame(self.seq, x, y, ImageData("rgba8", size, size, patch.tobytes()))
        return self.seq, sent

    def wait(self, seq: int, timeout: float = 30) -> float:
        deadline = time.monotonic() + timeout
        while seq not in self.arrived:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no result for frame {seq}")
            time.sleep(0.0005)
        return self.arrived[seq]

    def stop(self) -> dict[str, Any]:
        return self.client.live_stop().result(30)


def call_spans(calls: Path) -> list[tuple[float, float]]:
    """The model calls' (start, end) in ``time.monotonic`` seconds since the file was last emptied."""
    lines = calls.read_text().splitlines() if calls.exists() else []
    return [(float(start), float(end)) for start, end in (line.split() for line in lines)]


def model_calls(calls: Path) -> list[float]:
    """The model's real call durations (ms) since the file was last emptied."""
    return [(end - start) * 1000 for start, end in call_spans(calls)]


def ideal_latencies(sent: list[float], spans: list[tuple[float, float]], call_ms: float, over_ms: float) -> list[float]:
    """What a daemon that never preempts a model call and adds nothing beyond ``over_ms`` (once) would
    give each stroke sent at ``sent`` (monotonic s): the rest of the call in progress, then its own."""
    ideal = []
    for at in sent:
        busy = next((end for start, end in spans if start <= at < end), at)
        ideal.append((busy - at) * 1000 + call_ms + over_ms)
    return ideal


def overhead(live: Live, model_ms: int, frames: int, calls: Path) -> tuple[list[float], list[float], list[float]]:
    """Sequential dabs (never a backlog): per frame, the model's call (ms), the client's round trip
    minus that call, and the daemon's own share (``latency_ms`` minus that call)."""
    trips, seqs = [], []
    rng = np.random.default_rng(model_ms)
    calls.write_text("")
    for _ in range(frames):
        x, y = (int(v) for v in rng.integers(0, SIDE - 16, 2))
        seq, sent = live.send(x, y, 16)
        trips.append((live.wait(seq) - sent) * 1000)
        seqs.append(seq)
    durations = model_calls(calls)
    assert len(durations) == frames, (len(durations), frames)
    return (
        durations,
        [trip - call for trip, call in zip(trips, durations, strict=True)],
        [live.latency_ms[seq] - call for seq, call in zip(seqs, durations, strict=True)],
    )


def stream(live: Live, seconds: float) -> tuple[list[float], list[float], dict[str, Any]]:
    """Dabs at 30 frames/s; per stroke frame, when it was sent and ms from then to the first result
    answering it or a later one."""
    sends: list[tuple[int, float]] = []
    start = time.monotonic()
    count = int(seconds * 30)
    for index in range(count):
        time.sleep(max(0.0, start + index / 30 - time.monotonic()))
        x = 16 + (index * 5) % (SIDE - 48)
        sends.append(live.send(x, SIDE // 2, 16))
    last = sends[-1][0]
    live.wait(last)
    answered = sorted(live.arrived.items())
    latencies = []
    for seq, sent in sends:
        first = next(arrival for answered_seq, arrival in answered if answered_seq >= seq)
        latencies.append((first - sent) * 1000)
    return [sent for _, sent in sends], latencies, live.stop()


def frame_bytes(size: int) -> int:
    from underpaint_protocol.session import ClientSession, ImageData

    parts = ClientSession().live_frame(7, 0, 0, ImageData("rgba8", size, size, bytes(size * size * 4)))
    return len(parts[0].encode()) + sum(len(bytes(part)) for part in parts[1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=60, help="sequential frames per overhead round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=6.0, help="length of the 30 Hz stroke stream")
    parser.add_argument("--model-ms", type=int, default=100, choices=(50, 100, 200))
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--calls", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, Path(args.calls))
        return
    print(f"load average before: {' '.join(f'{v:.1f}' for v in os.getloadavg())} ({os.cpu_count()} CPUs)")
    port = free_port()
    calls = Path(tempfile.mkdtemp(prefix="underpaint-bench-live-")) / "calls"
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port), "--calls", str(calls)])
    try:
        url = f"ws://127.0.0.1:{port}"
        live = connect_when_up(url)
        model: dict[int, list[float]] = {0: [], 50: []}
        trips: dict[int, list[float]] = {0: [], 50: []}
        inside: dict[int, list[float]] = {0: [], 50: []}
        for _ in range(args.rounds):  # interleaved: both models see the same machine
            for model_ms in (0, 50):
                live.start(f"t{model_ms}")
                spent, round_trips, daemon_share = overhead(live, model_ms, args.frames, calls)
                model[model_ms] += spent
                trips[model_ms] += round_trips
                inside[model_ms] += daemon_share
                live.stop()
        print(f"\noverhead per live frame at {SIDE}x{SIDE} (a 16x16 dab in, the {SIDE}x{SIDE} layer back), medians:")
        for model_ms in (0, 50):
            call = statistics.median(model[model_ms])
            trip, own = statistics.median(trips[model_ms]), statistics.median(inside[model_ms])
            frame = trip + call
            print(
                f"  model T = {model_ms:3d} ms (its calls took {call:6.2f} ms): in the daemon {own:5.2f} ms "
                f"= {own / frame:5.1%} of the frame; client round trip minus the call {trip:5.2f} ms "
                f"= {trip / frame:5.1%}"
            )
        over = statistics.median(trips[0])
        live.start(f"t{args.model_ms}")
        calls.write_text("")
        sent, latencies, stopped = stream(live, args.seconds)
        call = statistics.median(model_calls(calls))
        bound = 2 * call + over
        p50, p95 = percentile(latencies, 0.5), percentile(latencies, 0.95)
        ideal = percentile(ideal_latencies(sent, call_spans(calls), call, over), 0.95)
        print(
            f"\nstroke-to-result latency, 30 Hz strokes for {args.seconds:g} s, model T = {args.model_ms} ms "
            f"(its calls took {call:.1f} ms):"
        )
        print(f"  p50 {p50:.1f} ms, p95 {p95:.1f} ms, max {max(latencies):.1f} ms")
        print(f"  bound 2T + overhead = 2 x {call:.1f} + {over:.1f} = {bound:.1f} ms")
        print(f"  p95 / bound = {p95 / bound:.2f} ({'within' if p95 <= bound else 'OVER'} the bound)")
        print(
            f"  the same strokes against the model's real calls, if a frame waited only for the call in "
            f"progress, then its own, plus the overhead once (no preemption): p95 {ideal:.1f} ms; "
            f"p95 / that = {p95 / ideal:.2f}"
        )
        print(
            f"  frames {stopped['frames']}, model runs {stopped['results']}, dropped for newer ones "
            f"{stopped['dropped']}"
        )
        full = frame_bytes(SIDE)
        print("\nbytes sent per frame (message + binary frame):")
        for size in (16, 64, SIDE):
            on_wire = frame_bytes(size)
            pixels = size * size / (SIDE * SIDE)
            share = on_wire / full
            print(f"  {size:3d}x{size:<3d} {on_wire:8d} B = {share:7.4f} of the full region (pixels: {pixels:.4f})")
        live.client.close()
    finally:
        server.terminate()
        server.wait(10)
    print(f"\nload average after: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")


def connect_when_up(url: str) -> Live:
    deadline = time.monotonic() + 60
    while True:
        try:
            return Live(url)
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


if __name__ == "__main__":
    main()
