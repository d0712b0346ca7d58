"""Where results live: on disk before they are reported, and in memory for a fast refetch.

A host that crashes or a socket that drops must lose nothing, so each result is written as a PNG
with a JSON sidecar (placement, canvas and every parameter) before its ``result`` event goes out.
A bounded in-memory cache serves refetches of recent jobs; older ones are read back from disk.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from underpaint.daemon.images import png_bytes


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

    def sidecar(self) -> dict[str, Any]:
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

    def save(self, result: StoredResult) -> StoredResult:
        """Persist (when a folder is set) and cache; returns the result with its output path."""
        if self.folder is not None:
            day = self.folder / time.strftime("%Y-%m-%d")
            day.mkdir(parents=True, exist_ok=True)
            stem = day / f"{result.job_id}-{result.index}"
            png = stem.with_suffix(".png")
            _write_atomically(png, png_bytes(result.pixels))
            result = StoredResult(**{**result.__dict__, "output": str(png)})
            _write_atomically(stem.with_suffix(".json"), json.dumps(result.sidecar(), indent=2).encode())
        with self._lock:
            self._memory[(result.job_id, result.index)] = result
            self._memory_bytes += result.pixels.nbytes
            while self._memory_bytes > self.memory_budget_bytes and len(self._memory) > 1:
                _, evicted = self._memory.popitem(last=False)
                self._memory_bytes -= evicted.pixels.nbytes
        return result

    def load(self, job_id: str) -> list[StoredResult]:
        """Every stored item of a job, from memory or disk, in index order ([] when unknown)."""
        with self._lock:
            cached = sorted(
                (item for key, item in self._memory.items() if key[0] == job_id), key=lambda item: item.index
            )
        if cached or self.folder is None or not self.folder.is_dir():
            return cached
        found: list[StoredResult] = []
        for sidecar in sorted(self.folder.glob(f"*/{job_id}-*.json")):
            data = json.loads(sidecar.read_text(encoding="utf-8"))
            png = sidecar.with_suffix(".png")
            bgra = cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
            if bgra is None or data.get("job_id") != job_id:
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
                    pixels=cv2.cvtColor(bgra, cv2.COLOR_BGRA2RGBA),
                    output=str(png),
                )
            )
        return sorted(found, key=lambda item: item.index)


def _write_atomically(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, path)
