"""History: the user's recent prompts and settings, on disk and bounded.

One JSON line per submitted job (what the user typed, the style, the settings and the seed), so
every host can offer the same list for reuse. Memory holds the newest ``keep``; the file is
compacted to them when it grows to twice that. Lines that cannot be read are skipped.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import deque
from pathlib import Path

from pydantic import ValidationError

from underpaint_protocol import messages as wire

log = logging.getLogger("underpaint.history")

KEEP = 500


def _same_request(a: wire.HistoryEntry, b: wire.HistoryEntry) -> bool:
    """Two entries the user would not tell apart in a list (only the seed or the time differ)."""
    ignore = {"created", "seed"}
    return a.model_dump(exclude=ignore) == b.model_dump(exclude=ignore)


class HistoryStore:
    """Callable from any thread; ``path`` None keeps history in memory only."""

    def __init__(self, path: Path | None, keep: int = KEEP) -> None:
        self.path = path
        self.keep = keep
        self._lock = threading.Lock()
        self._entries: deque[wire.HistoryEntry] = deque(maxlen=keep)
        self._lines = 0
        if path is not None and path.is_file():
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                self._lines += 1
                try:
                    self._push(wire.HistoryEntry(**json.loads(line)))
                except (ValueError, TypeError, ValidationError):
                    continue

    def _push(self, entry: wire.HistoryEntry) -> None:
        for earlier in [item for item in self._entries if _same_request(item, entry)]:
            self._entries.remove(earlier)  # the same request again moves to the top, with its new seed
        self._entries.append(entry)

    def add(self, entry: wire.HistoryEntry) -> None:
        with self._lock:
            self._push(entry)
            if self.path is None:
                return
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                if self._lines + 1 >= 2 * self.keep:
                    self._rewrite()
                else:
                    with self.path.open("a", encoding="utf-8") as file:
                        file.write(entry.model_dump_json() + "\n")
                    self._lines += 1
            except OSError as error:  # history is a convenience: a full disk must not fail the job
                log.warning("could not write the history to %s: %s", self.path, error)

    def _rewrite(self) -> None:
        assert self.path is not None
        partial = self.path.with_name(self.path.name + ".partial")
        partial.write_text("".join(entry.model_dump_json() + "\n" for entry in self._entries), encoding="utf-8")
        os.replace(partial, self.path)
        self._lines = len(self._entries)

    def recent(self, limit: int) -> list[wire.HistoryEntry]:
        """The newest ``limit`` entries, newest first."""
        with self._lock:
            return list(reversed(self._entries))[:limit]
