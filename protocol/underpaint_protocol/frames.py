"""Binary attachment frames: how image bytes travel, never as base64 inside JSON.

A binary websocket message is::

    uint32 big-endian  header length N
    N bytes            UTF-8 JSON header: {"id": str, "format": str, "width": int, "height": int}
    the rest           the payload, in the declared format

Formats: ``rgba8`` / ``bgra8`` (width*height*4 bytes, rows top to bottom, straight alpha),
``gray8`` (width*height bytes, for masks and selections), ``png`` (a PNG file).

A JSON message that carries images declares each as an attachment ``{"id", "format", "width",
"height"}``; its binary frames follow it immediately, in the order declared. The header repeats the
declaration so that a frame is self-describing and a mix-up is detected, not guessed.
Standard library only: this module ships inside host plugins.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass

RAW_FORMATS = {"rgba8": 4, "bgra8": 4, "gray8": 1}
"""Raw formats and their bytes per pixel."""
IMAGE_FORMATS = (*RAW_FORMATS, "png")
MAX_HEADER_BYTES = 4096

_LENGTH = struct.Struct(">I")


class FrameError(ValueError):
    """A binary frame that cannot be parsed; ``code`` is a protocol error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Attachment:
    """The declaration of one binary frame."""

    id: str
    format: str
    width: int
    height: int

    def as_dict(self) -> dict[str, object]:
        return {"id": self.id, "format": self.format, "width": self.width, "height": self.height}

    def expected_bytes(self) -> int | None:
        """Payload size for raw formats; None for PNG (any size)."""
        per_pixel = RAW_FORMATS.get(self.format)
        return None if per_pixel is None else self.width * self.height * per_pixel


def encode_frame(attachment: Attachment, payload: bytes | bytearray | memoryview) -> list[bytes | memoryview]:
    """The frame as parts (header, payload) so a large payload is sent without another copy."""
    header = json.dumps(attachment.as_dict(), separators=(",", ":")).encode()
    return [_LENGTH.pack(len(header)) + header, memoryview(payload)]


def decode_frame(frame: bytes | bytearray | memoryview) -> tuple[Attachment, memoryview]:
    """Split a frame into its declaration and a zero-copy view of the payload."""
    view = memoryview(frame)
    if len(view) < _LENGTH.size:
        raise FrameError("unexpected_binary", "binary frame shorter than its 4-byte header length")
    (length,) = _LENGTH.unpack_from(view)
    if length > MAX_HEADER_BYTES or _LENGTH.size + length > len(view):
        raise FrameError("unexpected_binary", f"binary frame header length {length} is invalid")
    try:
        header = json.loads(bytes(view[_LENGTH.size : _LENGTH.size + length]))
    except (ValueError, RecursionError) as error:  # also numbers of more digits than Python converts
        raise FrameError("unexpected_binary", f"binary frame header is not JSON: {str(error)[:200]}") from None
    if not isinstance(header, dict):
        raise FrameError("unexpected_binary", "binary frame header is not a JSON object")
    try:
        attachment = Attachment(
            id=str(header["id"]),
            format=str(header["format"]),
            width=int(header["width"]),
            height=int(header["height"]),
        )
    except (KeyError, TypeError, ValueError, OverflowError) as error:
        raise FrameError("unexpected_binary", f"binary frame header lacks a valid {error}") from None
    return attachment, view[_LENGTH.size + length :]
