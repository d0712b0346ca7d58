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
    return "hello, plan, submit, cancel, list_jobs, fetch, styles, history, loras, interrogate"


def _owed_frames(request: Submit | InterrogateRequest) -> list[tuple[str, AttachmentRef]]:
    """The frames a submit (or interrogate) announces, in the order they must follow it, named by their field."""
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
    """A submit (or interrogate) whose announced frames have all arrived, each checked against its declaration."""

    submit: Submit | InterrogateRequest
    frames: dict[str, tuple[Attachment, memoryview]]


Event = Reply | HelloReceived | RequestReceived | SubmitReceived


@dataclass
class _PendingSubmit:
    submit: Submit | InterrogateRequest
    expected: list[tuple[str, AttachmentRef]]
    frames: dict[str, tuple[Attachment, memoryview]] = field(default_factory=dict)
    failed: bool = False


class ConnectionProtocol:
    """State of one connection: before or after the handshake, and which frames are owed."""

    def __init__(self, max_frame_bytes: int) -> None:
        self.max_frame_bytes = max_frame_bytes
        self.greeted = False
        self._pending: _PendingSubmit | None = None

    def handshake_done(self) -> None:
        """Called by the shell once the hello was accepted (version and token checked)."""
        self.greeted = True

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
        if isinstance(message, Submit | InterrogateRequest):
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
        request_id = pending.submit.request_id
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
        return Reply(
            Error(
                code="invalid_field",
                message=f"submit {pending.submit.request_id} is void: {reason} (missing {', '.join(missing)})",
                field=missing[0] if missing else None,
                request_id=pending.submit.request_id,
            )
        )
