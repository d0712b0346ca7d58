"""Where results live: on disk before they are reported, and in memory for a fast refetch.

A host that crashes or a socket that drops must lose nothing, so each result is on disk with a
JSON sidecar (placement, canvas and every parameter) before its ``result`` event goes out. At wire
speed: the pixels are first written uncompressed (``<job>-<index>.rgba``, the size is in the
sidecar), and one background thread, on CPU time nothing else wants (``_yield_to_the_daemon``),
turns each into the PNG that ``output`` names (``_Band``: rows filtered as libpng's default does,
``pngrows``, deflated at level 1; carrying its parameters as A1111's ``parameters`` text and our
JSON, see ``underpaint_protocol.pnginfo``), then removes the raw file; raw files left by a crash are
converted at the next start. An upscale's result comes as tiles (one PNG each, what ``fetch``
replays); the writer also joins them, tile after tile as it converts them, into one PNG of the whole
layer, ``<job>.png`` (``_LayerPng``: one tile in memory), from the same deflated bytes as each
tile's own PNG.
Refetches read the disk (PNG or raw); only when outputs are off do results live in a bounded
in-memory cache instead.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import queue
import struct
import sys
import threading
import time
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from underpaint.daemon import pngrows
from underpaint_protocol import pnginfo

log = logging.getLogger("underpaint.outputs")
RAW = ".rgba"
SPARE_FOLDER = ".spare"
SPARES = 8
"""Converted raw files kept (in ``<outputs>/.spare``) to be overwritten by the next results: writing
over a file's blocks costs a copy into the page cache, while a new 16 MB file here took 3-130 ms to
allocate (the filesystem frees and discards the blocks of every deleted one; a 5.6 MB upscale result
tile: 15 ms of CPU new, 0.5 ms over a spare). Eight cover the result tiles of an upscale up to a
4096x4096 layer (at most 8 MiB each: 64 MiB of disk), all written before the writer, which gets only
CPU time the job leaves, frees any."""


@dataclass(frozen=True)
class StoredResult:
    """One batch item: the layer pixels plus everything the ``result`` message says about them."""

    job_id: str
    index: int
    owner_key: str
    name: str
    x: int
    y: int
    canvas: dict[str, int]
    params: dict[str, Any]
    pixels: np.ndarray
    output: str | None
    upscale: dict[str, Any] | None = None
    """An upscale result tile's placement (the wire ``UpscaleResult``), kept so a fetch replays it."""

    def sidecar(self) -> dict[str, Any]:
        extra = {} if self.upscale is None else {"upscale": self.upscale}
        return {
            "job_id": self.job_id,
            "index": self.index,
            "owner_key": self.owner_key,
            "name": self.name,
            "x": self.x,
            "y": self.y,
            "width": int(self.pixels.shape[1]),
            "height": int(self.pixels.shape[0]),
            "canvas": self.canvas,
            "params": self.params,
            **extra,
        }


def owner_key(client_id: str) -> str:
    """What is stored on disk instead of the client id, which is a bearer secret."""
    return hashlib.sha256(client_id.encode()).hexdigest()[:32]


class OutputStore:
    def __init__(self, folder: Path | None, memory_budget_bytes: int) -> None:
        self.folder = folder
        self.memory_budget_bytes = memory_budget_bytes
        self._memory: OrderedDict[tuple[str, int], StoredResult] = OrderedDict()
        self._memory_bytes = 0
        self._lock = threading.Lock()
        self._to_compress: queue.SimpleQueue[Path | None] = queue.SimpleQueue()
        self._compressor: threading.Thread | None = None
        self._spares: list[Path] = []
        self._spare_names = itertools.count()
        self._layers: dict[str, _LayerPng] = {}
        """Upscales being joined into one PNG, by job (the writer thread's own)."""

    def start(self) -> None:
        """Start the background PNG writer, first queueing raw files an earlier run left behind."""
        if self.folder is None or self._compressor is not None:
            return
        spares = self.folder / SPARE_FOLDER
        if spares.is_dir():  # an earlier run's: their names may be taken again
            for old in spares.iterdir():
                old.unlink()
        self._compressor = threading.Thread(target=self._compress_loop, name="outputs-png", daemon=True)
        self._compressor.start()
        if self.folder.is_dir():
            for raw in sorted(self.folder.glob(f"*/*{RAW}"), key=_in_order):
                self._to_compress.put(raw)

    def stop(self) -> None:
        """Finish the PNGs already queued, then stop (raw files still waiting are converted next start)."""
        if self._compressor is not None:
            self._to_compress.put(None)
            self._compressor.join()
            self._compressor = None
        for layer in self._layers.values():  # a job whose last tiles never came: its tiles stay
            layer.abandon()
        self._layers.clear()

    def save(self, result: StoredResult) -> StoredResult:
        """Persist (when a folder is set) and cache; returns the result with its output path.

        Written raw (a plain copy of the pixels) so the result is on disk at once; the PNG that
        ``output`` names follows in the background."""
        if self.folder is not None:
            day = self.folder / time.strftime("%Y-%m-%d")
            day.mkdir(parents=True, exist_ok=True)
            stem = day / f"{result.job_id}-{result.index}"
            result = StoredResult(**{**result.__dict__, "output": str(stem.with_suffix(".png"))})
            raw = stem.with_suffix(RAW)
            self._write_raw(raw, np.ascontiguousarray(result.pixels).data.cast("B") if result.pixels.size else b"")
            _write_atomically(stem.with_suffix(".json"), json.dumps(result.sidecar(), indent=2).encode())
            self._to_compress.put(raw)
            return result  # the disk answers refetches; memory keeps nothing
        with self._lock:
            self._memory[(result.job_id, result.index)] = result
            self._memory_bytes += result.pixels.nbytes
            while self._memory_bytes > self.memory_budget_bytes and len(self._memory) > 1:
                _, evicted = self._memory.popitem(last=False)
                self._memory_bytes -= evicted.pixels.nbytes
        return result

    def _compress_loop(self) -> None:
        _yield_to_the_daemon()
        while (raw := self._to_compress.get()) is not None:
            try:
                pixels = _read_raw(raw)
                if pixels is not None and pixels.size:
                    sidecar = json.loads(raw.with_suffix(".json").read_text(encoding="utf-8"))
                    band = _Band(pixels)
                    _write_atomically(raw.with_suffix(".png"), band.png(sidecar["params"]))
                    if sidecar.get("upscale") is not None:  # a tile of a layer: deflated once for both PNGs
                        self._join(raw.parent, sidecar, band)
                    self._retire(raw)
            except (OSError, ValueError, KeyError, cv2.error) as error:  # the raw file still answers fetch
                log.warning("could not write %s: %s", raw.with_suffix(".png").name, error)

    def _join(self, folder: Path, sidecar: dict[str, Any], band: _Band) -> None:
        """Add an upscale's result tile to the job's whole-layer PNG (tiles come in order, top to bottom)."""
        job_id, index, upscale = str(sidecar["job_id"]), int(sidecar["index"]), sidecar["upscale"]
        layer = self._layers.pop(job_id, None)
        if index == 0:
            if layer is not None:
                layer.abandon()
            width, height = int(upscale["layer"]["width"]), int(upscale["layer"]["height"])
            layer = _LayerPng(folder / f"{job_id}.png", width, height, band.channels, sidecar["params"])
        if layer is None or layer.tiles != index:  # a tile missing (converted by an earlier run): no whole PNG
            if layer is not None:
                layer.abandon()
            return
        try:
            layer.add(band)
            if index + 1 == int(upscale["tiles"]):
                layer.finish()
                return
        except (OSError, ValueError) as error:  # the tiles are there still; only the whole picture is not
            log.warning("could not write %s: %s", layer.path.name, error)
            layer.abandon()
            return
        self._layers[job_id] = layer

    def _write_raw(self, raw: Path, data: bytes | memoryview) -> None:
        """Write over a spare file when there is one (then rename it into place), else a new file."""
        with self._lock:
            spare = self._spares.pop() if self._spares else None
        if spare is None:
            _write_atomically(raw, data)
            return
        with open(spare, "r+b") as file:
            file.write(data)
            file.truncate()
        os.replace(spare, raw)

    def _retire(self, raw: Path) -> None:
        """A converted raw file becomes a spare, or goes when there are enough."""
        assert self.folder is not None
        with self._lock:
            keep = len(self._spares) < SPARES
        if not keep:
            raw.unlink()
            return
        folder = self.folder / SPARE_FOLDER
        folder.mkdir(exist_ok=True)
        spare = folder / f"{next(self._spare_names)}.bin"
        os.replace(raw, spare)
        with self._lock:
            self._spares.append(spare)

    def load(self, job_id: str) -> list[StoredResult]:
        """Every stored item of a job, from disk (or memory when outputs are off), in index order
        ([] when unknown)."""
        if self.folder is None:
            with self._lock:
                items = (item for key, item in self._memory.items() if key[0] == job_id)
                return sorted(items, key=lambda item: item.index)
        if not self.folder.is_dir():
            return []
        found: list[StoredResult] = []
        for sidecar in self._sidecars(job_id):
            data = json.loads(sidecar.read_text(encoding="utf-8"))
            png = sidecar.with_suffix(".png")
            pixels = _read_png(png)
            if pixels is None:
                pixels = _read_raw(sidecar.with_suffix(RAW))
            if pixels is None:
                pixels = _read_png(png)  # converted between the two reads
            if pixels is None or data.get("job_id") != job_id:
                continue
            found.append(
                StoredResult(
                    job_id=job_id,
                    index=int(data["index"]),
                    owner_key=str(data["owner_key"]),
                    name=str(data["name"]),
                    x=int(data["x"]),
                    y=int(data["y"]),
                    canvas=dict(data["canvas"]),
                    params=dict(data["params"]),
                    pixels=pixels,
                    output=str(png),
                    upscale=data.get("upscale"),
                )
            )
        return sorted(found, key=lambda item: item.index)

    def _sidecars(self, job_id: str) -> list[Path]:
        """A job's sidecars by name (one day folder, then index 0, 1, ...): no listing of folders
        that hold thousands of results."""
        assert self.folder is not None
        for day in sorted(self.folder.iterdir(), reverse=True):
            first = day / f"{job_id}-0.json"
            if first.is_file():
                found = [first]
                while (following := day / f"{job_id}-{len(found)}.json").is_file():
                    found.append(following)
                return found
        return []


class _Band:
    """A band of rows deflated once for two PNGs: the rows filtered as libpng filters them
    (``pngrows``: its first row only with filters that need no row above, so its bytes mean the same
    pixels under any row) and deflated by a deflater of its own at level 1 (its strategy from
    ``pngrows.deflate_strategy``), ending byte-aligned (``Z_SYNC_FLUSH``), so the segment refers to
    nothing before it. In an IDAT chunk of its own it is
    both the image data of the band's own PNG (an upscale's result tile: with a chunk holding the zlib
    header before it and one holding an empty final block and the Adler-32 after it) and the next
    chunk of the whole layer's PNG (``_LayerPng``): deflated, checksummed and framed once for both."""

    ZLIB_HEADER = b"\x78\x01"  # deflate, 32 KiB window, fastest level (FCHECK makes it a multiple of 31)
    FINAL_BLOCK = b"\x03\x00"  # an empty final block (fixed Huffman): ends a stream of sync-flushed pieces

    def __init__(self, pixels: np.ndarray) -> None:
        self.height, self.width, self.channels = pixels.shape
        scanlines = pngrows.filter_rows(pixels)
        deflate = zlib.compressobj(1, zlib.DEFLATED, -15, 9, pngrows.deflate_strategy(scanlines))  # raw deflate
        self.idat = _png_chunk(b"IDAT", deflate.compress(scanlines.data) + deflate.flush(zlib.Z_SYNC_FLUSH))
        self.adler = zlib.adler32(scanlines.data)
        self.size = scanlines.nbytes
        """Inflated bytes: what the layer's Adler-32 needs besides ``adler``."""

    def png(self, params: dict[str, Any]) -> bytes:
        """The band as a PNG of its own that carries what made it: A1111's ``parameters`` text (read by
        the tools the community uses) and our own JSON (every reproduction parameter), ``_png_head``."""
        end = self.FINAL_BLOCK + struct.pack(">I", self.adler)
        head = _png_head(self.width, self.height, self.channels, params)
        return b"".join((head, _png_chunk(b"IDAT", self.ZLIB_HEADER), self.idat, _png_chunk(b"IDAT", end), _IEND))


class _LayerPng:
    """One PNG written a band of rows at a time from each band's own IDAT chunk (``_Band``), so
    what is in memory is the band, never the image."""

    def __init__(self, path: Path, width: int, height: int, channels: int, params: dict[str, Any]) -> None:
        self.path, self.width, self.height, self.channels = path, width, height, channels
        self.partial = path.with_name(path.name + ".partial")
        self.file = open(self.partial, "wb")  # noqa: SIM115  # closed by finish or abandon
        self.adler = zlib.adler32(b"")
        self.rows = self.tiles = 0
        self.file.write(_png_head(width, height, channels, params) + _png_chunk(b"IDAT", _Band.ZLIB_HEADER))

    def add(self, band: _Band) -> None:
        if band.width != self.width or band.channels != self.channels or self.rows + band.height > self.height:
            raise ValueError(
                f"a {band.width}x{band.channels} band at row {self.rows} of a {self.width}x{self.height} PNG"
            )
        self.file.write(band.idat)
        self.adler = _adler32_combine(self.adler, band.adler, band.size)
        self.rows += band.height
        self.tiles += 1

    def finish(self) -> None:
        if self.rows != self.height:
            raise ValueError(f"{self.rows} of {self.height} rows")
        self.file.write(_png_chunk(b"IDAT", _Band.FINAL_BLOCK + struct.pack(">I", self.adler)) + _IEND)
        self.file.close()
        os.replace(self.partial, self.path)

    def abandon(self) -> None:
        self.file.close()
        self.partial.unlink(missing_ok=True)


def _adler32_combine(first: int, second: int, second_size: int) -> int:
    """The Adler-32 of two pieces of data from each one's (zlib's adler32_combine, which Python's
    zlib module does not offer): the layer's checksum without reading its bands' bytes twice."""
    base = 65521
    remainder = second_size % base
    low = ((first & 0xFFFF) + (second & 0xFFFF) - 1) % base
    high = (remainder * (first & 0xFFFF) + (first >> 16) + (second >> 16) - remainder) % base
    return low | high << 16


def _png_head(width: int, height: int, channels: int, params: dict[str, Any]) -> bytes:
    """Signature, header (8-bit RGB or RGBA, not interlaced) and the parameter texts of a PNG written here."""
    texts = {pnginfo.A1111_KEY: pnginfo.a1111_text(params), pnginfo.OUR_KEY: json.dumps(params, ensure_ascii=False)}
    header = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, _COLOUR_TYPES[channels], 0, 0, 0))
    return pnginfo.SIGNATURE + header + b"".join(pnginfo.text_chunk(key, value) for key, value in texts.items())


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return b"".join((struct.pack(">I", len(data)), kind, data, struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))))


_IEND = _png_chunk(b"IEND", b"")
_COLOUR_TYPES = {3: 2, 4: 6}
"""PNG's colour type by channels: truecolour, truecolour with alpha."""


def _in_order(raw: Path) -> tuple[str, str, int]:
    """Raw files by day, job and index as a number (``-10`` after ``-9``), the order they were written."""
    job, _, index = raw.stem.rpartition("-")
    return raw.parent.name, job, int(index) if index.isdigit() else -1


def _yield_to_the_daemon() -> None:
    """Put this thread in Linux's idle scheduling class (the policy is per thread) so that it writes
    PNGs on CPU time nothing else wants: a job's thread waking takes a core from it at once (a CPU
    running only idle-class work counts as idle), where a nice-19 thread may keep it for its time
    slice, and the model's threads wait for each other at every operation, so one held up holds up
    the job. The lowest nice value where the class is refused."""
    if sys.platform == "linux":
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))  # 0: the calling thread
        except OSError:
            try:
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
            except OSError as error:
                log.debug("could not lower the PNG writer's priority: %s", error)


def _read_png(path: Path) -> np.ndarray | None:
    bgra = cv2.imread(str(path), cv2.IMREAD_UNCHANGED) if path.is_file() else None
    return None if bgra is None else cv2.cvtColor(bgra, cv2.COLOR_BGRA2RGBA)


def _read_raw(path: Path) -> np.ndarray | None:
    """A raw RGBA file, shaped by its sidecar; None when either is gone or they disagree."""
    try:
        data = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
        payload = path.read_bytes()
    except FileNotFoundError:
        return None
    width, height = int(data["width"]), int(data["height"])
    if len(payload) != width * height * 4:
        log.warning("%s has %d bytes, not %dx%d RGBA; ignored", path.name, len(payload), width, height)
        return None
    return np.frombuffer(payload, np.uint8).reshape(height, width, 4)


def _write_atomically(path: Path, data: bytes | memoryview) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, path)
