"""The one exception type that carries a client-facing error out of any part of the daemon."""

from __future__ import annotations


class JobError(Exception):
    """A failure the client can act on.

    ``code`` is a machine-readable error code from ``underpaint_protocol.errors``; ``field`` is the
    dotted path of the offending request field (e.g. ``"job.selection"``), or None.
    """

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


class StartupError(Exception):
    """The daemon cannot start; the message is one line telling the user what to change."""
