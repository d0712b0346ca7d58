"""Generates ``protocol/schema.json`` from the message definitions and the shared constants.

Run ``python -m underpaint_protocol.schema > protocol/schema.json`` after changing ``messages``,
``constants`` or ``errors``; ``tests/protocol/test_spec.py`` fails while the committed file differs.
The constants travel under the top-level ``x-underpaint`` key (JSON Schema ignores ``x-`` keys), so
clients in other languages (the Figma plugin's generated TypeScript) take them from one place.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import TypeAdapter

from underpaint_protocol import PROTOCOL_VERSION, constants, errors, frames
from underpaint_protocol.messages import ClientMessage, ServerMessage


def error_table() -> dict[str, dict[str, str]]:
    """Every error code with its meaning and the sentence a client shows the user.

    ``errors.USER_TEXT`` holds the user's wording where it exists; a code without one shows its meaning.
    """
    user_text: dict[str, str] = getattr(errors, "USER_TEXT", {})
    return {
        code: {"meaning": meaning, "user_text": user_text.get(code, meaning)}
        for code, meaning in errors.ERROR_CODES.items()
    }


def build_constants() -> dict[str, Any]:
    """The protocol's shared facts, as plain JSON."""
    return {
        "protocol_version": PROTOCOL_VERSION,
        "default_host": constants.DEFAULT_HOST,
        "default_port": constants.DEFAULT_PORT,
        "default_url": constants.DEFAULT_URL,
        "raw_formats": dict(constants.RAW_FORMATS),
        "image_formats": list(constants.IMAGE_FORMATS),
        "result_formats": list(constants.RESULT_FORMATS),
        "job_states": list(constants.JOB_STATES),
        "terminal_states": list(constants.TERMINAL_STATES),
        "generate_modes": list(constants.GENERATE_MODES),
        "reconnect_delays": list(constants.RECONNECT_DELAYS),
        "max_frame_header_bytes": frames.MAX_HEADER_BYTES,
        "error_codes": error_table(),
    }


def build_schema() -> dict[str, Any]:
    """One JSON Schema document with both directions under ``$defs`` and the constants beside them."""
    client = TypeAdapter(ClientMessage).json_schema(ref_template="#/$defs/{model}")
    server = TypeAdapter(ServerMessage).json_schema(ref_template="#/$defs/{model}")
    defs: dict[str, Any] = {**client.pop("$defs", {}), **server.pop("$defs", {})}
    defs["ClientMessage"] = client
    defs["ServerMessage"] = server
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://underpaint.invalid/protocol/v{PROTOCOL_VERSION}/schema.json",
        "title": f"underpaint protocol v{PROTOCOL_VERSION}",
        "description": "Text frames of the underpaint websocket protocol; see PROTOCOL.md.",
        "oneOf": [{"$ref": "#/$defs/ClientMessage"}, {"$ref": "#/$defs/ServerMessage"}],
        "$defs": dict(sorted(defs.items())),
        "x-underpaint": build_constants(),
    }


def render_schema() -> str:
    return json.dumps(build_schema(), indent=2, sort_keys=False) + "\n"


if __name__ == "__main__":
    print(render_schema(), end="")
