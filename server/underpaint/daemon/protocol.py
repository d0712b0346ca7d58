"""The daemon's side of one connection, without any I/O (in the style of python-websockets).

``ConnectionProtocol`` is fed the text and binary frames of one websocket and answers with
events for the I/O shell (``connection.py``): replies to send, and validated requests to act on.
It owns the rules a peer must follow on the wire — handshake first, JSON objects of known types,
binary frames only where a message announced them and matching their declaration, size limits —
so they can be tested, and fuzzed, without a socket.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from underpaint_protocol import PROTOCOL_VERSION
from underpaint_protocol.frames import Attachment, FrameError, decode_frame
from underpaint_protocol.messages import (
    AttachmentRef,
    Error,
    Hello,
    InterrogateRequest,
    LiveFrame,
    LiveStart,
    LiveStop,
    Rect,
    Submit,
    client_message_adapter,
)

MAX_ECHOED = 200
"""Characters of a peer's own input (a request id, a field path) that an error echoes back."""


class ProtocolError(Exception):
    """A message that must be answered with an ``error`` and otherwise ignored."""

    def __init__(self, code: str, message: str, field: str | None = None, request_id: str | None = None) -> None:
        super().__init__(message)
        self.error = Error(code=code, message=message, field=field, request_id=request_id)


def parse_client_message(text: str) -> Any:
    """Validate one text frame into a message model, or raise ProtocolError naming the field."""
    try:
        data = json.loads(text)
    except RecursionError:
        raise ProtocolError("bad_json", "message is nested too deeply") from None
    except ValueError as error:  # also integers of more digits than Python converts
        raise ProtocolError("bad_json", f"message is not valid JSON: {str(error)[:200]}") from None
    if not isinstance(data, dict):
        raise ProtocolError("bad_json", "message must be a JSON object")
    request_id = data.get("request_id")
    if not isinstance(request_id, str) or len(request_id) > MAX_ECHOED:
        request_id = None  # echoed back only when it could be a valid one
    unencodable = _unencodable_string(data)
    if unencodable is not None:
        raise ProtocolError(
            "invalid_field",
            f"{unencodable[:MAX_ECHOED] or 'message'}: strings must be valid Unicode (no lone surrogates)",
            unencodable[:MAX_ECHOED] or None,
            request_id if request_id is not None and _encodable(request_id) else None,
        )
    try:
        return client_message_adapter.validate_python(data)
    except ValidationError as error:
        raise _protocol_error(error, request_id) from None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _unencodable_string(data: Any) -> str | None:
    """The dotted path of the first key or string that cannot be encoded back (a lone surrogate),
    or None; such strings would break the reply, the log and the JSON sidecar later."""
    todo: list[tuple[str, Any]] = [("", data)]
    while todo:
        path, value = todo.pop()
        if isinstance(value, str):
            if not _encodable(value):
                return path
        elif isinstance(value, dict):
            for key, item in value.items():
                child = f"{path}.{key}" if path else str(key)
                if not _encodable(key):
                    return path
                todo.append((child, item))
        elif isinstance(value, list):
            todo.extend((f"{path}.{index}", item) for index, item in enumerate(value))
    return None


def _protocol_error(error: ValidationError, request_id: str | None) -> ProtocolError:
    first = error.errors(include_url=False)[0]
    kind, location = first["type"], first["loc"]
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        return ProtocolError(
            "unknown_message_type",
            f"unknown message type; expected one of {_expected_types()}",
            "type",
            request_id,
        )
    path = ".".join(str(part) for part in location[1:])[:MAX_ECHOED]
    return ProtocolError("invalid_field", f"{path or 'message'}: {first['msg']}", path or None, request_id)


def _expected_types() -> str:
    return (
        "hello, plan, submit, cancel, list_jobs, fetch, styles, history, loras, interrogate, "
        "live_start, live_frame, live_stop"
    )


FramedRequest = Submit | InterrogateRequest | LiveStart | LiveFrame
"""A request followed by the binary frames it announces."""


def _owed_frames(request: FramedRequest) -> list[tuple[str, AttachmentRef]]:
    """The frames a request announces, in the order they must follow it, named by their field."""
    if isinstance(request, LiveStart):
        return [("mask", request.mask)] if request.mask is not None else []
    if isinstance(request, LiveFrame):
        return [("image", request.image)]
    owed = [(name, ref) for name, ref in (("image", request.image), ("mask", request.mask)) if ref]
    if isinstance(request, Submit):
        owed += [(f"controls.{index}", ref) for index, ref in enumerate(request.controls)]
        owed += [(f"references.{index}", ref) for index, ref in enumerate(request.references)]
    return owed


def _misaligned_attachments(submit: Submit) -> Error | None:
    """Each ``job.controls`` / ``job.references`` item needs exactly one frame, in the same order."""
    for name in ("controls", "references"):
        declared, items = len(getattr(submit, name)), len(getattr(submit.job, name))
        if declared != items:
            return Error(
                code="invalid_field",
                message=f"{name}: job.{name} has {items} item(s) but the submit declares {declared} attachment(s)",
                field=name,
                request_id=submit.request_id,
            )
    return None


@dataclass(frozen=True)
class Reply:
    """Send this message to the peer."""

    message: Any
    close: bool = False


@dataclass(frozen=True)
class HelloReceived:
    hello: Hello


@dataclass(frozen=True)
class RequestReceived:
    """A validated request other than hello and submit (plan, cancel, list_jobs, fetch)."""

    message: Any


@dataclass(frozen=True)
class SubmitReceived:
    """A request (submit, interrogate, live_start, live_frame) whose announced frames have all arrived,
    each checked against its declaration; a ``live_frame`` also passed the session's rules (``LiveRules``)."""

    submit: FramedRequest
    frames: dict[str, tuple[Attachment, memoryview]]


Event = Reply | HelloReceived | RequestReceived | SubmitReceived


@dataclass
class LiveRules:
    """What a connection's live session allows: frames inside ``region``, the first covering it all,
    ``seq`` increasing. Set by the shell once the manager started the session."""

    session_id: str
    region: Rect
    last_seq: int = 0
    covered: bool = False

    def check(self, frame: LiveFrame) -> Error | None:
        """The error for a frame that breaks the rules (naming its field), or None."""
        region, rect = self.region, frame.rect
        inside = (
            rect.x >= region.x
            and rect.y >= region.y
            and rect.x + rect.width <= region.x + region.width
            and rect.y + rect.height <= region.y + region.height
        )
        if frame.seq <= self.last_seq:
            text = f"seq: {frame.seq} is not above the last frame's {self.last_seq}"
            return Error(code="invalid_field", message=text, field="seq")
        if not inside or rect.width == 0 or rect.height == 0:
            text = f"rect {_rect(rect)} is not a non-empty part of the session's region {_rect(region)}"
            return Error(code="invalid_field", message=f"rect: {text}", field="rect")
        if not self.covered and (rect.width, rect.height) != (region.width, region.height):
            text = f"the first frame must cover the whole region {_rect(region)}, not {_rect(rect)}"
            return Error(code="invalid_field", message=f"rect: {text}", field="rect")
        if (frame.image.width, frame.image.height) != (rect.width, rect.height):
            text = f"image is {frame.image.width}x{frame.image.height} but rect is {rect.width}x{rect.height}"
            return Error(code="size_mismatch", message=text, field="image")
        return None

    def accept(self, frame: LiveFrame) -> None:
        """The shell took the frame (its pixels decoded and patched in): later frames must be newer."""
        self.last_seq, self.covered = frame.seq, True


def _request_id(request: FramedRequest) -> str | None:
    return None if isinstance(request, LiveFrame) else request.request_id


def _rect(rect: Rect) -> str:
    return f"x={rect.x} y={rect.y} {rect.width}x{rect.height}"


@dataclass
class _PendingSubmit:
    submit: FramedRequest
    expected: list[tuple[str, AttachmentRef]]
    frames: dict[str, tuple[Attachment, memoryview]] = field(default_factory=dict)
    failed: bool = False


class ConnectionProtocol:
    """State of one connection: before or after the handshake, and which frames are owed."""

    def __init__(self, max_frame_bytes: int) -> None:
        self.max_frame_bytes = max_frame_bytes
        self.greeted = False
        self._pending: _PendingSubmit | None = None
        self.live: LiveRules | None = None
        """The live session's rules while one runs on this connection."""

    def handshake_done(self) -> None:
        """Called by the shell once the hello was accepted (version and token checked)."""
        self.greeted = True

    def live_started(self, session_id: str, region: Rect) -> None:
        """Called by the shell once a live session runs: frames are checked against ``region`` from now on."""
        self.live = LiveRules(session_id, region)

    def live_ended(self) -> None:
        self.live = None

    def receive_text(self, text: str) -> list[Event]:
        if self._pending is not None:
            # The frames announced by the last submit never came: that submit is void.
            events: list[Event] = [self._abandon("a text message arrived before all announced frames")]
        else:
            events = []
        try:
            message = parse_client_message(text)
        except ProtocolError as refused:
            return [*events, Reply(refused.error, close=not self.greeted)]
        if isinstance(message, Hello):
            if self.greeted:
                return [*events, Reply(Error(code="invalid_field", message="hello was already received", field="type"))]
            if message.protocol != PROTOCOL_VERSION:
                return [
                    *events,
                    Reply(
                        Error(
                            code="unsupported_protocol",
                            message=f"client speaks protocol {message.protocol}, daemon speaks {PROTOCOL_VERSION}",
                            field="protocol",
                        ),
                        close=True,
                    ),
                ]
            return [*events, HelloReceived(message)]
        if not self.greeted:
            first = Error(code="handshake_required", message="the first message must be hello", field="type")
            return [*events, Reply(first, close=True)]
        if isinstance(message, LiveFrame | LiveStop) and self.live is None:
            no_session = Error(
                code="no_live_session",
                message=f"{message.type} without a live session on this connection (send live_start first)",
                field="type",
                request_id=getattr(message, "request_id", None),
            )
            if isinstance(message, LiveFrame):  # its pixels follow: swallow them quietly
                self._pending = _PendingSubmit(message, _owed_frames(message), failed=True)
            return [*events, Reply(no_session)]
        if isinstance(message, LiveFrame):
            assert self.live is not None
            broken = self.live.check(message)
            self._pending = _PendingSubmit(message, _owed_frames(message), failed=broken is not None)
            return [*events, Reply(broken)] if broken is not None else events
        if isinstance(message, Submit | InterrogateRequest | LiveStart):
            if isinstance(message, Submit):
                misaligned = _misaligned_attachments(message)
                if misaligned is not None:
                    return [*events, Reply(misaligned)]
            expected = _owed_frames(message)
            seen: set[str] = set()
            for name, ref in expected:
                if ref.id in seen:
                    duplicate = Error(
                        code="invalid_field",
                        message=f"{name}: every attachment of a request needs its own id, {ref.id!a} is repeated",
                        field=f"{name}.id",
                        request_id=message.request_id,
                    )
                    return [*events, Reply(duplicate)]
                seen.add(ref.id)
            if not expected:
                return [*events, SubmitReceived(message, {})]
            self._pending = _PendingSubmit(message, expected)
            return events
        return [*events, RequestReceived(message)]

    def receive_binary(self, data: bytes | bytearray | memoryview) -> list[Event]:
        pending = self._pending
        if not self.greeted:
            first = Error(
                code="handshake_required", message="the first message must be hello, not binary", field="type"
            )
            return [Reply(first, close=True)]
        if pending is None:
            return [Reply(Error(code="unexpected_binary", message="binary frame without a submit announcing it"))]
        request_id = _request_id(pending.submit)
        name, declared = pending.expected[len(pending.frames)]
        try:
            attachment, payload = decode_frame(data)
        except FrameError as error:
            return self._fail_frame(name, Error(code=error.code, message=str(error), field=name, request_id=request_id))
        expected = Attachment(declared.id, declared.format, declared.width, declared.height)
        if attachment != expected:
            mismatch = Error(
                code="size_mismatch" if attachment.id == declared.id else "unexpected_binary",
                message=f"frame header {attachment.as_dict()!a} differs from the declared {name} {expected.as_dict()}",
                field=name,
                request_id=request_id,
            )
            return self._fail_frame(name, mismatch)
        pending.frames[name] = (attachment, payload)
        if len(pending.frames) < len(pending.expected):
            return []
        self._pending = None
        if pending.failed:
            return []
        return [SubmitReceived(pending.submit, pending.frames)]

    @property
    def awaiting_frames(self) -> bool:
        """Whether a submit announced frames that have not all arrived."""
        return self._pending is not None

    def frames_overdue(self, seconds: float) -> list[Event]:
        """The announced frames did not come in time: the submit is dropped with an error."""
        if self._pending is None:
            return []
        return [self._abandon(f"its frames did not arrive within {seconds:g} s")]

    def _fail_frame(self, name: str, error: Error) -> list[Event]:
        """Report the first bad frame of a submit, then swallow the rest of its frames quietly."""
        pending = self._pending
        assert pending is not None
        already_failed = pending.failed
        pending.failed = True
        pending.frames[name] = (Attachment("", "", 0, 0), memoryview(b""))
        if len(pending.frames) == len(pending.expected):
            self._pending = None
        return [] if already_failed else [Reply(error)]

    def _abandon(self, reason: str) -> Reply:
        pending = self._pending
        assert pending is not None
        self._pending = None
        missing = [name for name, _ in pending.expected if name not in pending.frames]
        request_id = _request_id(pending.submit)
        what = f"live_frame {pending.submit.seq}" if isinstance(pending.submit, LiveFrame) else f"submit {request_id}"
        return Reply(
            Error(
                code="invalid_field",
                message=f"{what} is void: {reason} (missing {', '.join(missing)})",
                field=missing[0] if missing else None,
                request_id=request_id,
            )
        )
