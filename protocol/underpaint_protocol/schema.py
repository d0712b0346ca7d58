"""Generates ``protocol/schema.json`` from the message definitions.

Run ``python -m underpaint_protocol.schema > protocol/schema.json`` after changing ``messages``;
``tests/protocol/test_schema.py`` fails while the committed file differs.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import TypeAdapter

from underpaint_protocol import PROTOCOL_VERSION
from underpaint_protocol.messages import ClientMessage, ServerMessage


def build_schema() -> dict[str, Any]:
    """One JSON Schema document with both directions under ``$defs``."""
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
    }


def render_schema() -> str:
    return json.dumps(build_schema(), indent=2, sort_keys=False) + "\n"


if __name__ == "__main__":
    print(render_schema(), end="")
