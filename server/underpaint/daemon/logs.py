"""What reaches the daemon's log from untrusted peers: sanitised, one line, never a flood.

Client names, origins and handshake garbage are chosen by whoever connects; they must not forge
log lines (newlines, terminal escapes), fill the disk, or turn one bad request into 30 lines of
traceback.
"""

from __future__ import annotations

import logging
import time

MAX_LOGGED = 80


def sanitise(value: object, limit: int = MAX_LOGGED) -> str:
    """A printable, single-line, bounded rendering of an untrusted value."""
    text = value if isinstance(value, str) else repr(value)
    cleaned = text.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace")
    cleaned = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in cleaned)
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


class OneLineHandshakeFailures(logging.Filter):
    """websockets logs a failed opening handshake (a plain HTTP request, a bad upgrade) with a full
    traceback; one line naming the reason is all a port scanner or a misconfigured client deserves."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.getMessage().startswith("opening handshake failed"):
            error = record.exc_info[1]
            cause = error.__cause__ if error is not None and error.__cause__ is not None else error
            record.msg = "opening handshake failed: %s"
            record.args = (sanitise(f"{type(cause).__name__}: {cause}", 200),)
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


class AcceptErrorsOnce(logging.Filter):
    """asyncio logs every failed accept() (e.g. out of file descriptors) as it retries: keep the first
    of each kind per minute and drop the flood."""

    def __init__(self, every: float = 60.0) -> None:
        super().__init__()
        self.every = every
        self._last: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "accept" not in message:
            return True
        key = message.split("\n", 1)[0][:120]
        now = time.monotonic()
        if now - self._last.get(key, -self.every) < self.every:
            return False
        self._last[key] = now
        record.exc_info, record.exc_text = None, None
        return True


def install_filters() -> None:
    """Attach the filters to the loggers they tame (idempotent)."""
    for name, kind in (("websockets.server", OneLineHandshakeFailures), ("asyncio", AcceptErrorsOnce)):
        logger = logging.getLogger(name)
        if not any(isinstance(existing, kind) for existing in logger.filters):
            logger.addFilter(kind())
