"""PROTOCOL.md, schema.json, the pydantic definitions and the stdlib client must agree."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, get_args

import jsonschema
import pytest

from underpaint_protocol import constants, library, messages
from underpaint_protocol.errors import ERROR_CODES
from underpaint_protocol.frames import Attachment, decode_frame, encode_frame
from underpaint_protocol.schema import build_schema, render_schema
from underpaint_protocol.session import ClientSession, ImageData
from underpaint_protocol.typescript import OUTPUT as TYPESCRIPT_OUTPUT
from underpaint_protocol.typescript import render_typescript

PROTOCOL_DIR = Path(__file__).resolve().parents[2] / "protocol"
SPEC = (PROTOCOL_DIR / "PROTOCOL.md").read_text(encoding="utf-8")
SCHEMA = build_schema()


def spec_examples() -> list[dict[str, Any]]:
    blocks = re.findall(r"```json\n(.*?)```", SPEC, flags=re.DOTALL)
    return [json.loads(block) for block in blocks]


def validator(direction: str) -> jsonschema.Draft202012Validator:
    schema = {**SCHEMA, "oneOf": [{"$ref": f"#/$defs/{direction}"}]}
    return jsonschema.Draft202012Validator(schema)


def message_types(union: Any) -> set[str]:
    models = get_args(get_args(union)[0])
    return {get_args(model.model_fields["type"].annotation)[0] for model in models}


CLIENT_TYPES = message_types(messages.ClientMessage)
SERVER_TYPES = message_types(messages.ServerMessage)


def test_committed_schema_is_generated_from_the_definitions() -> None:
    committed = (PROTOCOL_DIR / "schema.json").read_text(encoding="utf-8")
    assert committed == render_schema(), "run: python -m underpaint_protocol.schema > protocol/schema.json"
    jsonschema.Draft202012Validator.check_schema(json.loads(committed))


def test_committed_typescript_is_generated_from_the_schema() -> None:
    committed = (PROTOCOL_DIR.parent / TYPESCRIPT_OUTPUT).read_text(encoding="utf-8")
    expected = render_typescript((PROTOCOL_DIR / "schema.json").read_text(encoding="utf-8"))
    assert committed == expected, f"run: python -m underpaint_protocol.typescript > {TYPESCRIPT_OUTPUT}"


def test_schema_carries_the_shared_constants() -> None:
    facts = SCHEMA["x-underpaint"]
    assert facts["default_port"] == constants.DEFAULT_PORT
    assert facts["default_url"] == constants.DEFAULT_URL
    assert facts["raw_formats"] == constants.RAW_FORMATS
    assert tuple(facts["terminal_states"]) == constants.TERMINAL_STATES
    assert tuple(facts["reconnect_delays"]) == constants.RECONNECT_DELAYS
    assert list(facts["error_codes"]) == list(ERROR_CODES)
    assert all(entry["user_text"] for entry in facts["error_codes"].values())
    assert tuple(facts["generate_modes"]) == constants.GENERATE_MODES
    assert set(constants.GENERATE_MODES) < set(get_args(messages.Mode))


def test_every_example_in_the_spec_is_valid() -> None:
    examples = spec_examples()
    assert len(examples) >= len(CLIENT_TYPES | SERVER_TYPES)
    for example in examples:
        direction = "ClientMessage" if example["type"] in CLIENT_TYPES else "ServerMessage"
        errors = list(validator(direction).iter_errors(example))
        assert not errors, f"{example['type']} example: {errors[0].message}"
        adapter = messages.client_message_adapter if direction == "ClientMessage" else messages.server_message_adapter
        adapter.validate_python(example)


def test_every_message_type_has_an_example() -> None:
    documented = {example["type"] for example in spec_examples()}
    assert documented == CLIENT_TYPES | SERVER_TYPES


def test_every_error_code_is_documented() -> None:
    for code in ERROR_CODES:
        assert f"| `{code}` |" in SPEC, f"error code {code} missing from PROTOCOL.md"
    documented = set(re.findall(r"^\| `([a-z_]+)` \| [A-Z]", SPEC, flags=re.MULTILINE)) - {
        "rgba8",
        "bgra8",
        "gray8",
        "png",
        "field",
        "mode",
        "model",
        "seed",
        "batch",
        "canvas",
        "selection",
        "extend",
        "blend",
        "strength",
    }
    assert documented <= set(ERROR_CODES), documented - set(ERROR_CODES)


def test_every_mode_and_format_in_the_spec_exists() -> None:
    assert set(get_args(messages.Mode)) == {
        "txt2img",
        "img2img",
        "inpaint",
        "outpaint",
        "segment",
        "upscale",
        "refine_upscale",
        "restore",
    }
    for mode in get_args(messages.Mode):
        assert f"`{mode}`" in SPEC
    for image_format in get_args(messages.ImageFormat):
        assert f"| `{image_format}` |" in SPEC


def test_the_stdlib_client_builds_valid_messages() -> None:
    session = ClientSession()
    client_messages = [
        json.loads(session.hello("underpaint-test", "1", ("gimp", "3.0.4"), "tok", "a" * 20, "png", False))
    ]
    job = {
        "mode": "inpaint",
        "canvas": {"width": 10, "height": 10},
        "selection": {"x": 1, "y": 1, "width": 2, "height": 2},
    }
    client_messages.append(json.loads(session.plan(job)[1]))
    _, frames = session.submit(
        job,
        {"x": 0, "y": 0, "width": 10, "height": 10},
        ImageData("rgba8", 10, 10, bytes(400)),
        ImageData("gray8", 10, 10, bytes(100)),
    )
    client_messages.append(json.loads(frames[0]))
    client_messages += [
        json.loads(session.cancel("j1")),
        json.loads(session.list_jobs()[1]),
        json.loads(session.fetch("j1")),
    ]
    # feature modules build their requests without a request_id; the client adds the next one
    client_messages += [
        {**library.styles_request("save", style=library.style("Moody", "moody {prompt}", steps=3)), "request_id": "r9"},
        {**library.history_request(10), "request_id": "r10"},
        {**library.loras_request(), "request_id": "r11"},
        {
            **library.interrogate_request(2),
            "request_id": "r12",
            "image": Attachment("r12-image", "rgba8", 2, 2).as_dict(),
        },
    ]
    live = {"prompt": "a red ball", "canvas": {"width": 10, "height": 10}, "selection": job["selection"]}
    client_messages += [
        json.loads(session.live_start(live, ImageData("gray8", 2, 2, bytes(4)))[1][0]),
        json.loads(session.live_frame(3, 1, 2, ImageData("rgba8", 2, 2, bytes(16)))[0]),
        json.loads(session.live_stop()[1]),
    ]
    assert {m["type"] for m in client_messages} == CLIENT_TYPES
    for message in client_messages:
        errors = list(validator("ClientMessage").iter_errors(message))
        assert not errors, f"{message['type']}: {errors[0].message}"
    # the frames follow in declared order and decode to their declarations
    submit = client_messages[2]
    for name, parts in zip(("image", "mask"), frames[1:], strict=True):
        attachment, payload = decode_frame(b"".join(bytes(part) for part in parts))
        assert attachment.as_dict() == submit[name]
        assert len(payload) == attachment.expected_bytes()


@pytest.mark.parametrize("image_format", ["rgba8", "bgra8", "gray8", "png"])
def test_frames_round_trip(image_format: str) -> None:
    attachment = Attachment("x-1", image_format, 3, 2)
    payload = bytes(range(24)) if image_format != "gray8" else bytes(6)
    parts = encode_frame(attachment, payload)
    decoded, view = decode_frame(b"".join(bytes(part) for part in parts))
    assert decoded == attachment and bytes(view) == payload
