"""Upscale on the client side: what the shared controller holds while an upscale's result tiles land.

Run: python bench/upscale_client.py [--size N] [--factor F]

A classical upscale of a ``--size`` square photo (default 2048) by ``--factor`` (default 4: an
8192x8192 layer, 256 MiB of RGBA) through a daemon in a separate process, landed twice by the same
``controller.Controller`` over a real socket: on a canvas that takes each tile as it arrives
(``controller.TileCanvas``, what the Krita and GIMP glue are; here it digests the pixels, as a host
keeps them in its own memory) and on one that cannot (the tiles joined first, ``upscale.TileSet``).
Printed per way: the peak growth of this process's Python allocations from ``accepted`` (the upload
sent) until the layer is in (``tracemalloc``: frames received, tiles, the joined layer; the daemon is
elsewhere), the largest piece the canvas got, and the ratio of the two peaks. The stated bound of the
tile way: a few copies of one result tile (the frame's bytes, the tile, the host call's copy; one tile
is at most 8 MiB today, never more than ``max_frame_bytes``), whatever the layer's size.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import time
import tracemalloc
from typing import Any

import numpy as np
from upscale import daemon_process  # bench/upscale.py, beside this file

from underpaint_protocol.controller import Controller, NewLayer, Request, WorkQueue
from underpaint_protocol.jobs import Bounds
from underpaint_protocol.session import ImageData
from underpaint_protocol.upscale import UpscaleRequest


class JoiningCanvas:
    """A scalable canvas without the tile calls: the controller joins the tiles before ``paste``."""

    def __init__(self, size: int) -> None:
        self.width = self.height = size
        self.photo = np.random.default_rng(0).integers(0, 256, (size, size, 4), np.uint8)
        self.photo[:, :, 3] = 255
        self.digest = hashlib.sha256()
        self.largest = 0

    def is_open(self) -> bool:
        return True

    def size(self) -> tuple[int, int]:
        return self.width, self.height

    def selection(self) -> Bounds | None:
        return None

    def read_image(self, rect: Bounds) -> ImageData:
        pixels = self.photo[rect.y : rect.y + rect.height, rect.x : rect.x + rect.width]
        return ImageData("rgba8", rect.width, rect.height, pixels.tobytes())

    def read_mask(self, rect: Bounds) -> ImageData:
        return ImageData("gray8", rect.width, rect.height, bytes(rect.width * rect.height))

    def grow(self, width: int, height: int, offset_x: int, offset_y: int) -> None:
        raise AssertionError("an upscale scales, never grows")

    def scale(self, width: int, height: int) -> None:
        self.width, self.height = width, height

    def paste(self, layers: list[NewLayer], group: str | None) -> list[Any]:
        for layer in layers:
            self.largest = max(self.largest, len(layer.image.data))
            self.digest.update(layer.image.data)
        return list(layers)


class TilingCanvas(JoiningCanvas):
    """The same canvas taking each tile as it arrives (``controller.TileCanvas``)."""

    def begin_layer(self, name: str, rect: Bounds) -> Any:
        return name

    def paste_tile(self, handle: Any, tile: NewLayer) -> None:
        self.largest = max(self.largest, len(tile.image.data))
        self.digest.update(bytes(tile.image.data))  # a host's call copies the tile once, like this

    def end_layer(self, handle: Any, keep: bool) -> list[Any]:
        return [handle] if keep else []


class Host:
    def __init__(self, canvas: JoiningCanvas) -> None:
        self.active = canvas

    def canvas(self) -> JoiningCanvas:
        return self.active

    def show(self, controller: Controller) -> None:
        pass


def land(hello: dict[str, str], canvas: JoiningCanvas, factor: float) -> tuple[float, int]:
    """One upscale landed on ``canvas``; returns seconds and the peak growth of Python allocations from
    the daemon's ``accepted`` (the upload sent) until the layer is in."""
    work = WorkQueue()
    controller = Controller(Host(canvas), work.post, client_name="bench", previews=False)
    controller.connect(hello["url"], hello["token"])
    assert work.run_until(lambda: controller.connection == "connected", 30), controller.status
    started = time.perf_counter()
    request = Request(mode="upscale", model="classical-upscale", strength=None, upscale=UpscaleRequest(factor))
    job = controller.generate(request, canvas)
    assert job is not None, controller.error
    assert work.run_until(lambda: job.job_id is not None or job.done, 300), job.describe()
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    assert work.run_until(lambda: job.settled, 1800), job.describe()
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] - before
    assert job.state == "finished" and not controller.error, (job.describe(), controller.error)
    controller.close()
    return seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--factor", type=float, default=4.0)
    args = parser.parse_args()
    side = round(args.size * args.factor)
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(
        f"classical upscale {args.size}x{args.size} x{args.factor:g} -> {side}x{side} "
        f"(the layer: {side * side * 4 / 2**20:.0f} MiB RGBA), landed by the controller:"
    )
    with daemon_process() as (_, hello):
        tracemalloc.start()
        try:
            peaks, digests = {}, {}
            for label, canvas in (("tile by tile", TilingCanvas(args.size)), ("joined", JoiningCanvas(args.size))):
                seconds, peak = land(hello, canvas, args.factor)
                peaks[label], digests[label] = peak, canvas.digest.hexdigest()
                print(
                    f"   {label}: {seconds:.1f} s; peak Python allocations as the result lands {peak / 2**20:.0f} MiB "
                    f"(largest piece the canvas got: {canvas.largest / 2**20:.1f} MiB)"
                )
        finally:
            tracemalloc.stop()
    assert digests["tile by tile"] == digests["joined"], "the same pixels either way"
    print(f"   ratio tile by tile / joined: {peaks['tile by tile'] / peaks['joined']:.3f}")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
