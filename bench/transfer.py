"""Round trip of one image through the daemon, against the floor and against the peer style.

For 1, 4 and 16 megapixel RGBA images, measured side by side, interleaved, in one run:

- floor:   a bare `websockets` echo server, compression off: the bytes go up and come back;
- daemon:  `underpaint serve --engine echo --no-outputs`, driven by the shared client exactly as a
           plugin drives it: plan, upload the region, the no-op job runs through the queue and a
           worker, the result layer comes back;
- durable: the same with outputs on (the default configuration): each result is on disk before
           its `result` event goes out;
- peer:    the image as base64 PNG inside JSON over the same kind of socket (what the common HTTP
           APIs do): encode, send, the server decodes and re-encodes, the client decodes.

Each server runs in its own process. Prints medians and the ratios the targets are about
(daemon/floor <= 1.5 and durable/floor <= 1.5 at 4 MP; peer/daemon >= 20 at 4 MP).

Then the PNG writer alone (``--png``, in this process, thread CPU time): one upscale result tile
(2048x1024 RGBA, 8 MiB) of a photograph, of a 4x upscaled photograph and of flat art, encoded for its
own PNG and the whole layer's as the writer does now (``outputs._Band``: libpng's adaptive row
filters, ``pngrows``; every result now) and as it did before (every row ``Sub``, run-length
deflate), beside OpenCV's PNG (libpng, what ``png_bytes`` writes, and the writer before for results
other than upscale tiles), interleaved: sizes and CPU side by side.
Run: ``python bench/transfer.py`` (both), ``--sizes ''`` (the PNG writer only), ``--png 0`` (no PNGs).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from websockets.asyncio.server import ServerConnection
from websockets.sync.client import ClientConnection, connect

from underpaint.daemon.images import png_bytes
from underpaint.daemon.outputs import _Band, _png_chunk
from underpaint_protocol.session import Event

ROOT = Path(__file__).resolve().parents[1]
SIZES = {1: (1024, 1024), 4: (2048, 2048), 16: (4096, 4096)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def photo(width: int, height: int) -> np.ndarray:
    """A real photograph scaled to the size, so PNG costs what it costs on real images."""
    with Image.open(ROOT / "tests" / "data" / "coffee.jpg") as file:
        rgb = np.asarray(file.convert("RGB").resize((width, height), Image.Resampling.BICUBIC))
    return np.ascontiguousarray(np.dstack([rgb, np.full((height, width), 255, np.uint8)]))


def upscaled_photo(width: int, height: int) -> np.ndarray:
    """The photograph at a quarter of the size, upscaled 4x (Lanczos): smooth, as upscale results are."""
    small = photo(width // 4, height // 4)
    return np.ascontiguousarray(cv2.resize(small, (width, height), interpolation=cv2.INTER_LANCZOS4))


def flat_art(width: int, height: int) -> np.ndarray:
    """Flat colours with anti-aliased shapes and text: a drawing, a diagram, a UI."""
    rng = np.random.default_rng(1)
    art = np.full((height, width, 4), (236, 232, 220, 255), np.uint8)
    for _ in range(60):
        colour = (*(int(v) for v in rng.integers(0, 256, 3)), 255)
        x, y, size = (int(v) for v in (rng.integers(0, width), rng.integers(0, height), rng.integers(20, 300)))
        if rng.random() < 0.5:
            cv2.circle(art, (x, y), size // 2, colour, -1, cv2.LINE_AA)
        else:
            cv2.rectangle(art, (x, y), (x + size, y + size // 2), colour, -1, cv2.LINE_AA)
        cv2.putText(art, "underpaint", (x, y), cv2.FONT_HERSHEY_SIMPLEX, 1.5, (20, 20, 20, 255), 2, cv2.LINE_AA)
    return art


class SubFilteredBand:
    """What the PNG writer did before (ad79798): every row ``Sub``, run-length deflate, the Adler-32
    read once for the tile's PNG and once more for the layer's, the segment framed once for each."""

    def __init__(self, rgba: np.ndarray) -> None:
        height, width = rgba.shape[:2]
        flat = rgba.reshape(height, width * 4)
        self.filtered = np.empty((height, 1 + width * 4), np.uint8)
        self.filtered[:, 0] = 1
        self.filtered[:, 1:5] = flat[:, :4]
        np.subtract(flat[:, 4:], flat[:, :-4], out=self.filtered[:, 5:])
        deflate = zlib.compressobj(1, zlib.DEFLATED, -15, 9, zlib.Z_RLE)
        self.segment = deflate.compress(self.filtered.data) + deflate.flush(zlib.Z_SYNC_FLUSH)

    def both(self) -> tuple[int, int]:
        """The tile PNG's IDAT chunk and the layer's piece, as the writer framed them: their sizes."""
        checksum = struct.pack(">I", zlib.adler32(self.filtered.data))
        tile = _png_chunk(b"IDAT", _Band.ZLIB_HEADER + self.segment + _Band.FINAL_BLOCK + checksum)
        zlib.adler32(self.filtered.data, 1)
        return len(tile), len(_png_chunk(b"IDAT", self.segment))


def png_writer(repeats: int) -> None:
    """Each way of writing a result tile's PNG, interleaved: median thread CPU and size."""
    width, height = 2048, 1024
    print(f"\nPNG writer: one {width}x{height} RGBA result tile, its PNG and its piece of the layer's PNG")
    print("(median thread CPU of interleaved rounds; sizes of the tile's PNG)\n")
    print(
        f"{'image':>15}  {'before (Sub)':>20}  {'now (adaptive)':>20}  {'OpenCV (libpng)':>20}"
        f"  {'size now/before':>15}  {'CPU now/before':>14}  {'size now/OpenCV':>15}"
    )
    params = {"mode": "upscale"}

    def before(pixels: np.ndarray) -> int:
        return SubFilteredBand(pixels).both()[0]

    def now(pixels: np.ndarray) -> int:
        return len(_Band(pixels).png(params))

    def opencv(pixels: np.ndarray) -> int:
        return len(png_bytes(pixels))

    for name, make in (("photograph", photo), ("upscaled photo", upscaled_photo), ("flat art", flat_art)):
        pixels = make(width, height)
        cpu: dict[str, list[float]] = {"before": [], "now": [], "opencv": []}
        size: dict[str, int] = {}
        for _ in range(repeats):
            for key, encode in (("before", before), ("now", now), ("opencv", opencv)):
                started = time.thread_time()
                size[key] = encode(pixels)
                cpu[key].append(time.thread_time() - started)
        was, new, lib = (statistics.median(cpu[key]) for key in ("before", "now", "opencv"))
        print(
            f"{name:>15}  {size['before'] / 1e6:>5.2f} MB {was * 1000:>6.1f} ms  {size['now'] / 1e6:>5.2f} MB"
            f" {new * 1000:>6.1f} ms  {size['opencv'] / 1e6:>5.2f} MB {lib * 1000:>6.1f} ms"
            f"  {size['now'] / size['before']:>14.2f}x  {new / was:>13.2f}x  {size['now'] / size['opencv']:>14.2f}x",
            flush=True,
        )


# ------------------------------------------------------------------ servers (run as subprocesses)


async def serve_echo(port: int) -> None:
    from websockets.asyncio.server import serve

    async def echo(websocket: ServerConnection) -> None:
        async for message in websocket:
            await websocket.send(message)

    async with serve(echo, "127.0.0.1", port, compression=None, max_size=None):
        await asyncio.Future()


async def serve_base64_png(port: int) -> None:
    from websockets.asyncio.server import serve

    def handle(text: str) -> str:
        request = json.loads(text)
        with Image.open(io.BytesIO(base64.b64decode(request["image"]))) as file:
            pixels = np.asarray(file.convert("RGBA"))
        buffer = io.BytesIO()
        Image.fromarray(pixels, "RGBA").save(buffer, "PNG")
        return json.dumps({"images": [base64.b64encode(buffer.getvalue()).decode()]})

    async def api(websocket: ServerConnection) -> None:
        async for message in websocket:
            await websocket.send(await asyncio.to_thread(handle, str(message)))

    async with serve(api, "127.0.0.1", port, compression=None, max_size=None):
        await asyncio.Future()


def start(args: list[str], port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"server {args} did not start")


# ------------------------------------------------------------------ one round trip each


def round_trip_floor(websocket: ClientConnection, frame: bytes) -> float:
    started = time.perf_counter()
    websocket.send(frame)
    echoed = websocket.recv()
    elapsed = time.perf_counter() - started
    assert len(echoed) == len(frame)
    return elapsed


def round_trip_peer(websocket: ClientConnection, pixels: np.ndarray) -> float:
    started = time.perf_counter()
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGBA").save(buffer, "PNG")
    websocket.send(json.dumps({"image": base64.b64encode(buffer.getvalue()).decode()}))
    reply = json.loads(websocket.recv())
    with Image.open(io.BytesIO(base64.b64decode(reply["images"][0]))) as file:
        back = np.asarray(file.convert("RGBA"))
    elapsed = time.perf_counter() - started
    assert back.shape == pixels.shape
    return elapsed


class DaemonRoundTrip:
    """One connected plugin-style client; each call runs one full job."""

    def __init__(self, url: str) -> None:
        from underpaint_protocol.client import UnderpaintClient

        self.done = threading.Event()
        self.result: object = None
        self.client = UnderpaintClient(url, client_name="bench", on_event=self._on_event, previews=False)
        self.client.connect()

    def _on_event(self, event: Event) -> None:
        if event.type == "result":
            self.result = event.image
        elif event.type in ("finished", "failed", "cancelled"):
            self.outcome = event.message
            self.done.set()

    def __call__(self, pixels: np.ndarray) -> float:
        from underpaint_protocol.session import ImageData

        height, width = pixels.shape[:2]
        job = {"mode": "img2img", "model": "echo", "canvas": {"width": width, "height": height}}
        self.done.clear()
        started = time.perf_counter()
        planned = self.client.plan(job).result(timeout=60)
        image = ImageData("rgba8", width, height, pixels.data.cast("B"))
        self.client.submit(job, planned["upload"], image).result(timeout=60)
        if not self.done.wait(120):
            raise RuntimeError("daemon job did not finish")
        elapsed = time.perf_counter() - started
        assert self.outcome["type"] == "finished", self.outcome
        result = self.result
        assert result is not None and len(result.data) == pixels.nbytes  # type: ignore[attr-defined]
        return elapsed

    def close(self) -> None:
        self.client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1,4,16", help="megapixels to measure (of 1, 4, 16; '' for none)")
    parser.add_argument("--png", type=int, default=9, help="interleaved rounds of the PNG writer part (0: none)")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds per size (16 MP: at most 3)")
    parser.add_argument("--serve", choices=["echo", "peer"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve == "echo":
        asyncio.run(serve_echo(args.port))
        return
    if args.serve == "peer":
        asyncio.run(serve_base64_png(args.port))
        return
    print(f"underpaint transfer benchmark: {os.cpu_count()} CPUs, python {sys.version.split()[0]}")
    if args.sizes:
        round_trips([int(size) for size in args.sizes.split(",")], args.repeats)
    if args.png:
        png_writer(args.png)


def round_trips(sizes: list[int], repeats: int) -> None:
    """The round trip table: every path side by side for each size."""

    ports = {name: free_port() for name in ("floor", "daemon", "durable", "peer")}
    scratch = Path(tempfile.mkdtemp())
    token_file = scratch / "token"

    def daemon_command(name: str, outputs: list[str]) -> list[str]:
        return [
            *(sys.executable, "-m", "underpaint", "serve", "--engine", "echo", *outputs),
            *("--port", str(ports[name]), "--token-file", str(token_file), "--log-level", "warning"),
        ]

    servers = [
        start([sys.executable, __file__, "--serve", "echo", "--port", str(ports["floor"])], ports["floor"]),
        start([sys.executable, __file__, "--serve", "peer", "--port", str(ports["peer"])], ports["peer"]),
        start(daemon_command("daemon", ["--no-outputs"]), ports["daemon"]),
        start(daemon_command("durable", ["--outputs", str(scratch / "outputs")]), ports["durable"]),
    ]
    urls = {name: f"ws://127.0.0.1:{port}" for name, port in ports.items()}
    # every path keeps one connection open, as a plugin does
    daemon = DaemonRoundTrip(urls["daemon"])
    durable = DaemonRoundTrip(urls["durable"])
    floor_socket = connect(urls["floor"], compression=None, max_size=None)
    peer_socket = connect(urls["peer"], compression=None, max_size=None)
    print("round trip of one RGBA image (median of interleaved rounds; lower is better)\n")
    print(
        f"{'image':>7}  {'floor (raw echo)':>17}  {'daemon (no-op job)':>19}  {'durable (outputs on)':>21}"
        f"  {'peer (b64 PNG JSON)':>20}  {'daemon/floor':>12}  {'durable/floor':>13}  {'peer/daemon':>11}"
    )
    try:
        for megapixels in sizes:
            width, height = SIZES[megapixels]
            pixels = photo(width, height)
            frame = pixels.tobytes()
            times: dict[str, list[float]] = {"floor": [], "daemon": [], "durable": [], "peer": []}
            round_trip_floor(floor_socket, frame)  # warm up every path once
            daemon(pixels)
            durable(pixels)
            for _ in range(min(repeats, 3) if megapixels >= 16 else repeats):
                times["floor"].append(round_trip_floor(floor_socket, frame))
                times["daemon"].append(daemon(pixels))
                times["durable"].append(durable(pixels))
                times["peer"].append(round_trip_peer(peer_socket, pixels))
            floor, ours, kept, peer = (
                statistics.median(times[name]) for name in ("floor", "daemon", "durable", "peer")
            )
            print(
                f"{megapixels:>5}MP  {floor * 1000:>14.1f} ms  {ours * 1000:>16.1f} ms  {kept * 1000:>18.1f} ms"
                f"  {peer * 1000:>17.1f} ms  {ours / floor:>11.2f}x  {kept / floor:>12.2f}x  {peer / ours:>10.1f}x",
                flush=True,
            )
    finally:
        daemon.close()
        durable.close()
        floor_socket.close()
        peer_socket.close()
        for server in servers:
            server.terminate()
            server.wait(10)
    print("\ntargets at 4 MP: daemon/floor <= 1.5, durable/floor <= 1.5, peer/daemon >= 20")


if __name__ == "__main__":
    main()
