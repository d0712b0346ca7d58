"""Giving freed image buffers back to the system once the daemon is quiet.

Images come and go in megabytes. glibc keeps large freed buffers in its heap for the next job (it
raises its mmap threshold after the first frees), which is what lets back-to-back jobs run at wire
speed: a fresh mmap for every 16 MB buffer costs a page fault per 4 KB, several times the copy
itself (a fixed low threshold made a 4 MP round trip 1.5-4x slower). A daemon that served a burst
would then stay large, so once no job has started and no client has anything left to receive for
a tick, the heap is trimmed (``malloc_trim``), and only when it grew by more than ``growth`` bytes
since the last trim. Elsewhere than glibc this does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import os
import sys
from collections.abc import Callable

log = logging.getLogger("underpaint.memory")

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes() -> int | None:
    """This process's resident set (Linux), None elsewhere."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c") if sys.platform == "linux" else None
    if name is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None  # not glibc (e.g. musl): nothing to trim
    return trim


async def trim_when_quiet(
    activity: Callable[[], tuple[int, bool]], period: float = 1.0, growth: int = 32 * 2**20
) -> None:
    """Run until cancelled. ``activity()`` answers (jobs started so far, whether anything is busy now)."""
    trim = _malloc_trim()
    settled = resident_bytes()
    if trim is None or settled is None:
        return
    seen = -1
    while True:
        await asyncio.sleep(period)
        started, busy = activity()
        quiet = started == seen and not busy
        seen = started
        resident = resident_bytes()
        if not quiet or resident is None or resident - settled < growth:
            continue
        await asyncio.to_thread(trim, 0)
        settled = resident_bytes() or resident
        log.debug("heap trimmed: %.0f -> %.0f MB resident", resident / 2**20, settled / 2**20)
