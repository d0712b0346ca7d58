"""The golden messages and frames under protocol/golden/ against the Python side of the protocol.

The Figma plugin's vitest suite reads the same files (plugins/figma/test/golden.test.ts), so the
Python and TypeScript encoders are held to the same bytes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from underpaint_protocol import messages
from underpaint_protocol.frames import Attachment, decode_frame, encode_frame
from underpaint_protocol.schema import build_schema

GOLDEN = Path(__file__).resolve().parents[2] / "protocol" / "golden"
SCHEMA = build_schema()
CLIENT_TYPES = set(SCHEMA["$defs"]["ClientMessage"]["discriminator"]["mapping"])
SERVER_TYPES = set(SCHEMA["$defs"]["ServerMessage"]["discriminator"]["mapping"])
FRAMES: list[dict[str, Any]] = json.loads((GOLDEN / "frames" / "frames.json").read_text(encoding="utf-8"))


def golden_message(name: str) -> dict[str, Any]:
    message: dict[str, Any] = json.loads((GOLDEN / "messages" / f"{name}.json").read_text(encoding="utf-8"))
    return message


def test_every_message_type_has_a_golden_message() -> None:
    names = {path.stem for path in (GOLDEN / "messages").glob("*.json")}
    assert names == CLIENT_TYPES | SERVER_TYPES


@pytest.mark.parametrize("name", sorted(CLIENT_TYPES | SERVER_TYPES))
def test_golden_message_is_valid_and_round_trips(name: str) -> None:
    message = golden_message(name)
    assert message["type"] == name
    direction = "ClientMessage" if name in CLIENT_TYPES else "ServerMessage"
    schema = {**SCHEMA, "oneOf": [{"$ref": f"#/$defs/{direction}"}]}
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(message))
    assert not errors, errors[0].message
    adapter = messages.client_message_adapter if direction == "ClientMessage" else messages.server_message_adapter
    model = adapter.validate_python(message)
    assert model.model_dump(mode="json", exclude_unset=True) == message


@pytest.mark.parametrize("frame", FRAMES, ids=[frame["file"] for frame in FRAMES])
def test_golden_frame_decodes_and_encodes_byte_exact(frame: dict[str, Any]) -> None:
    data = (GOLDEN / "frames" / frame["file"]).read_bytes()
    attachment, payload = decode_frame(data)
    assert attachment.as_dict() == frame["attachment"]
    assert bytes(payload) == bytes.fromhex(frame["payload_hex"])
    assert attachment.expected_bytes() in (None, len(payload))
    encoded = b"".join(bytes(part) for part in encode_frame(Attachment(**frame["attachment"]), payload))
    assert encoded == data
    messages.AttachmentRef.model_validate(frame["attachment"])


def test_golden_frames_are_the_ones_the_messages_declare() -> None:
    declared = {frame["attachment"]["id"]: frame["attachment"] for frame in FRAMES}
    submit = golden_message("submit")
    result = golden_message("result")
    for attachment in (submit["image"], submit["mask"], result["layer"]["image"]):
        assert declared[attachment["id"]] == attachment
    assert {submit["image"]["format"], submit["mask"]["format"], result["layer"]["image"]["format"]} == {
        "rgba8",
        "gray8",
        "png",
    }
