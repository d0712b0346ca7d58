"""The client's side of the protocol, without any I/O: what to send, and what arrived.

``ClientSession`` turns requests into frames and incoming frames into events, pairing each message
that announces an image with the binary frame that follows it. It remembers which jobs this client
is waiting for and which results it has already seen, so that after a dropped socket the client
knows exactly which finished jobs to fetch. Standard library only: it ships inside host plugins.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from underpaint_protocol import PROTOCOL_VERSION
from underpaint_protocol.constants import TERMINAL_STATES as TERMINAL
from underpaint_protocol.frames import Attachment, FrameError, decode_frame, encode_frame


@dataclass(frozen=True)
class ImageData:
    """An image as it travels: ``format`` is rgba8, bgra8, gray8 or png."""

    format: str
    width: int
    height: int
    data: bytes | bytearray | memoryview


@dataclass(frozen=True)
class Event:
    """One message from the daemon, with its image when it carries one (progress, result)."""

    message: dict[str, Any]
    image: ImageData | None = None

    @property
    def type(self) -> str:
        return str(self.message.get("type"))

    @property
    def job_id(self) -> str | None:
        value = self.message.get("job_id")
        return value if isinstance(value, str) else None


@dataclass
class TrackedJob:
    job_id: str
    state: str = "queued"
    results_seen: set[int] = field(default_factory=set)
    results_total: int | None = None


class SessionError(Exception):
    """The daemon broke the protocol (or this client did); the connection should be dropped."""


class ClientSession:
    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._awaiting_frame: dict[str, Any] | None = None
        self.jobs: dict[str, TrackedJob] = {}
        self.replaying: set[str] = set()
        """Jobs whose results the user asked for again: their replay is delivered, not dropped as repeats."""

    # ---------------------------------------------------------------- building requests

    def hello(
        self,
        client_name: str,
        client_version: str = "",
        host: tuple[str, str] | None = None,
        token: str | None = None,
        client_id: str | None = None,
        result_format: str = "rgba8",
        previews: bool = True,
    ) -> str:
        message: dict[str, Any] = {
            "type": "hello",
            "protocol": PROTOCOL_VERSION,
            "client": {"name": client_name, "version": client_version},
            "result_format": result_format,
            "previews": previews,
        }
        if host is not None:
            message["host"] = {"name": host[0], "version": host[1]}
        if token:
            message["token"] = token
        if client_id:
            message["client_id"] = client_id
        return json.dumps(message)

    def next_request_id(self) -> str:
        return f"r{next(self._ids)}"

    def plan(self, job: dict[str, Any]) -> tuple[str, str]:
        request_id = self.next_request_id()
        return request_id, json.dumps({"type": "plan", "request_id": request_id, "job": job})

    def submit(
        self,
        job: dict[str, Any],
        region: dict[str, int] | None = None,
        image: ImageData | None = None,
        mask: ImageData | None = None,
        controls: Sequence[ImageData] = (),
        references: Sequence[ImageData] = (),
    ) -> tuple[str, list[Any]]:
        """The request id and the frames to send, in order: the JSON message, then each image.

        ``controls`` / ``references``: the pixels of each ``job["controls"]`` / ``job["references"]``
        item, in the same order (control layers read over ``planned["control"]``)."""
        request_id = self.next_request_id()
        message: dict[str, Any] = {"type": "submit", "request_id": request_id, "job": job}
        frames: list[Any] = []
        if region is not None:
            message["region"] = region
        for name, data in (("image", image), ("mask", mask)):
            if data is None:
                continue
            attachment = Attachment(f"{request_id}-{name}", data.format, data.width, data.height)
            message[name] = attachment.as_dict()
            frames.append(encode_frame(attachment, data.data))
        for name, items in (("control", controls), ("reference", references)):
            if not items:
                continue
            refs = []
            for index, data in enumerate(items):
                attachment = Attachment(f"{request_id}-{name}-{index}", data.format, data.width, data.height)
                refs.append(attachment.as_dict())
                frames.append(encode_frame(attachment, data.data))
            message[f"{name}s"] = refs
        return request_id, [json.dumps(message), *frames]

    def cancel(self, job_id: str) -> str:
        return json.dumps({"type": "cancel", "job_id": job_id})

    def list_jobs(self) -> tuple[str, str]:
        request_id = self.next_request_id()
        return request_id, json.dumps({"type": "list_jobs", "request_id": request_id})

    def fetch(self, job_id: str, replay: bool = False) -> str:
        """``replay``: deliver everything the daemon sends back, even what this session has seen (a
        history view asking for pixels); without it, a catch-up after a reconnect drops repeats."""
        if replay:
            self.replaying.add(job_id)
        return json.dumps({"type": "fetch", "job_id": job_id})

    # ---------------------------------------------------------------- live painting (see live.py)

    def live_start(self, live: dict[str, Any], mask: ImageData | None = None) -> tuple[str, list[Any]]:
        """The request id and frames of a ``live_start``: the message, then the mask's frame (gray8
        over exactly ``live["selection"]``) when there is one."""
        request_id = self.next_request_id()
        message: dict[str, Any] = {"type": "live_start", "request_id": request_id, "live": live}
        frames: list[Any] = []
        if mask is not None:
            attachment = Attachment(f"{request_id}-mask", mask.format, mask.width, mask.height)
            message["mask"] = attachment.as_dict()
            frames.append(encode_frame(attachment, mask.data))
        return request_id, [json.dumps(message), *frames]

    def live_frame(self, seq: int, x: int, y: int, image: ImageData) -> list[Any]:
        """A ``live_frame``: the dirty rectangle at (x, y) of ``image``'s size, then its pixels."""
        attachment = Attachment(f"live-{seq}", image.format, image.width, image.height)
        rect = {"x": x, "y": y, "width": image.width, "height": image.height}
        message = {"type": "live_frame", "seq": seq, "rect": rect, "image": attachment.as_dict()}
        return [json.dumps(message), encode_frame(attachment, image.data)]

    def live_stop(self) -> tuple[str, str]:
        request_id = self.next_request_id()
        return request_id, json.dumps({"type": "live_stop", "request_id": request_id})

    # ---------------------------------------------------------------- reading events

    def receive_text(self, text: str) -> list[Event]:
        if self._awaiting_frame is not None:
            raise SessionError("a text message arrived where an image frame was announced")
        try:
            message = json.loads(text)
        except json.JSONDecodeError as error:
            raise SessionError(f"daemon sent invalid JSON: {error}") from None
        if not isinstance(message, dict):
            raise SessionError("daemon sent a JSON value that is not an object")
        if _announced_image(message) is not None:
            self._awaiting_frame = message
            return []
        return self._track(Event(message))

    def receive_binary(self, data: bytes | bytearray | memoryview) -> list[Event]:
        message = self._awaiting_frame
        if message is None:
            raise SessionError("daemon sent a binary frame that no message announced")
        self._awaiting_frame = None
        try:
            attachment, payload = decode_frame(data)
        except FrameError as error:
            raise SessionError(str(error)) from None
        declared = _announced_image(message)
        if declared is None or attachment.id != declared.get("id"):
            raise SessionError(f"frame {attachment.id} does not match the announced image {declared}")
        image = ImageData(attachment.format, attachment.width, attachment.height, payload)
        return self._track(Event(message, image))

    def _track(self, event: Event) -> list[Event]:
        """Update what we know of the job; drop repeats a refetch replays (a result or an outcome seen)."""
        kind, job_id = event.type, event.job_id
        if kind == "accepted" and job_id is not None:
            self.jobs.setdefault(job_id, TrackedJob(job_id))
        if job_id in self.replaying:
            if kind in TERMINAL or kind == "error":
                self.replaying.discard(job_id)
            return [event]
        tracked = self.jobs.get(job_id) if job_id is not None else None
        if tracked is None:
            return [event]
        if kind == "result":
            index = int(event.message["index"])
            if index in tracked.results_seen:
                return []
            tracked.results_seen.add(index)
        elif tracked.state in TERMINAL and kind in (*TERMINAL, "queued", "started"):
            return []
        elif kind in ("queued", "started"):
            tracked.state = "queued" if kind == "queued" else "running"
        elif kind in TERMINAL:
            tracked.state = kind
            if kind == "finished":
                tracked.results_total = int(event.message.get("results", 0))
        return [event]

    def jobs_to_fetch(self, summaries: list[dict[str, Any]]) -> list[str]:
        """After a reconnect: the tracked jobs whose outcome or results this client has not seen."""
        states = {summary.get("job_id"): summary for summary in summaries}
        wanted = []
        for job_id, tracked in self.jobs.items():
            summary = states.get(job_id)
            if tracked.state in TERMINAL and (
                tracked.results_total is None or len(tracked.results_seen) >= tracked.results_total
            ):
                continue
            if (
                summary is None
                or summary.get("results", 0) > len(tracked.results_seen)
                or (summary.get("state") in TERMINAL and tracked.state not in TERMINAL)
            ):
                wanted.append(job_id)
        return wanted

    def forget(self, job_id: str) -> None:
        self.jobs.pop(job_id, None)


def _announced_image(message: dict[str, Any]) -> dict[str, Any] | None:
    found: object = None
    if message.get("type") == "progress":
        found = message.get("preview")
    elif message.get("type") in ("result", "live_result"):
        layer = message.get("layer")
        found = layer.get("image") if isinstance(layer, dict) else None
    return found if isinstance(found, dict) else None
