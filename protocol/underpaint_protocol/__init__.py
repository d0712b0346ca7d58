"""The underpaint wire protocol: message definitions, binary frames and the shared Python client.

Only ``constants``, ``errors``, ``frames``, ``session``, ``client``, ``jobs`` and ``controller`` ship inside
host plugins: they need the standard library and ``websockets`` alone and run on Python 3.10+.
``messages`` and ``schema`` hold the authoritative pydantic definitions the daemon validates with and
the JSON Schema is generated from.
"""

from underpaint_protocol.constants import DEFAULT_PORT as DEFAULT_PORT  # re-exported for the daemon's CLI

PROTOCOL_VERSION = 1
"""Bumped on any change an older peer would misread; the handshake refuses a mismatch."""
