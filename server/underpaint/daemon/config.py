"""Daemon settings (where underpaint keeps its files: `underpaint.folders`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from underpaint.folders import config_dir, data_dir
from underpaint_protocol import DEFAULT_PORT
from underpaint_protocol.messages import Limits


@dataclass(frozen=True)
class Timeouts:
    """How long the daemon waits on a peer before giving up on it (seconds)."""

    hello: float = 5.0
    """From the websocket opening to a valid ``hello``; then the connection is closed."""
    frames: float = 30.0
    """From a ``submit`` to the last binary frame it announced; then the submit is dropped."""
    send: float = 30.0
    """For one message (with its frame) to be taken by the peer; then the peer is dropped."""


@dataclass(frozen=True)
class DaemonConfig:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    token_file: Path = field(default_factory=lambda: config_dir() / "token")
    outputs: Path | None = field(default_factory=lambda: data_dir() / "outputs")
    """None disables writing results to disk (they are still kept in memory for refetch)."""
    memory_cache_bytes: int = 1024 * 1024 * 1024
    """Results kept in memory for refetch when outputs are off (with outputs, the disk serves them)."""
    styles_file: Path | None = field(default_factory=lambda: config_dir() / "styles.json")
    """The user's own styles, shared by every client (None: only the shipped styles)."""
    history_file: Path | None = field(default_factory=lambda: data_dir() / "history.jsonl")
    """The user's recent prompts and settings (None: kept in memory only)."""
    limits: Limits = field(default_factory=Limits)
    timeouts: Timeouts = field(default_factory=Timeouts)
    outgoing_bytes: int = 64 * 1024 * 1024
    """Unsent bytes a connection may have queued (at least one result always fits); a peer that lets
    more pile up does not read and is dropped."""
