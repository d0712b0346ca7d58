"""Generated garbage thrown at the message decoder, the connection state machine and a live daemon."""

from __future__ import annotations

import json
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.daemon.conftest import greeted, hello, recv_json
from underpaint.daemon.protocol import ConnectionProtocol, ProtocolError, Reply, parse_client_message
from underpaint_protocol.session import ClientSession, SessionError

MESSAGE_TYPES = [
    "hello",
    "plan",
    "submit",
    "cancel",
    "list_jobs",
    "fetch",
    "welcome",
    "bogus",
    "live_start",
    "live_frame",
    "live_stop",
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
message_like = st.fixed_dictionaries(
    {"type": st.sampled_from(MESSAGE_TYPES)},
    optional={
        "request_id": st.text(max_size=70) | st.integers(),
        "job_id": st.text(max_size=40),
        "protocol": st.integers() | st.text(max_size=3),
        "client": json_values,
        "job": st.dictionaries(
            st.sampled_from(["mode", "canvas", "selection", "strength", "seed", "batch", "prompt", "extend", "x"]),
            json_values,
            max_size=6,
        ),
        "image": json_values,
        "region": json_values,
        "seq": st.integers() | json_values,
        "rect": st.fixed_dictionaries({k: st.integers(-5, 70) for k in ("x", "y", "width", "height")}) | json_values,
        "live": json_values,
    },
)
texts = st.text(max_size=200) | message_like.map(json.dumps)
binaries = st.binary(max_size=300) | st.builds(
    lambda header, payload: struct.pack(">I", len(header)) + header + payload,
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=64),
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(texts)
def test_decoder_accepts_or_names_the_problem(text: str) -> None:
    try:
        parse_client_message(text)
    except ProtocolError as error:
        assert error.error.code in {"bad_json", "invalid_field", "unknown_message_type"}
        assert error.error.message


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(texts.map(lambda t: ("text", t)), binaries.map(lambda b: ("binary", b))), max_size=12))
def test_connection_state_machine_never_raises(frames: list[tuple[str, object]]) -> None:
    protocol = ConnectionProtocol(max_frame_bytes=1 << 20)
    protocol.receive_text(hello())
    protocol.handshake_done()
    for kind, data in frames:
        events = protocol.receive_text(data) if kind == "text" else protocol.receive_binary(data)  # type: ignore[arg-type]
        for event in events:
            if isinstance(event, Reply):
                assert event.message.code and event.message.message


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(texts.map(lambda t: ("text", t)), binaries.map(lambda b: ("binary", b))), max_size=12))
def test_live_frame_rules_never_raise(frames: list[tuple[str, object]]) -> None:
    """The same with a live session running: frames checked against its region, or refused by name."""
    from underpaint_protocol.messages import Rect

    protocol = ConnectionProtocol(max_frame_bytes=1 << 20)
    protocol.receive_text(hello())
    protocol.handshake_done()
    protocol.live_started("s", Rect(x=0, y=0, width=64, height=48))
    for kind, data in frames:
        events = protocol.receive_text(data) if kind == "text" else protocol.receive_binary(data)  # type: ignore[arg-type]
        for event in events:
            if isinstance(event, Reply):
                assert event.message.code and event.message.message


@settings(max_examples=300)
@given(st.lists(st.one_of(texts.map(lambda t: ("text", t)), binaries.map(lambda b: ("binary", b))), max_size=8))
def test_client_session_rejects_garbage_cleanly(frames: list[tuple[str, object]]) -> None:
    session = ClientSession()
    for kind, data in frames:
        try:
            session.receive_text(data) if kind == "text" else session.receive_binary(data)  # type: ignore[arg-type]
        except SessionError:
            session = ClientSession()


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(st.lists(st.one_of(texts, binaries), min_size=1, max_size=6))
def test_live_daemon_survives_garbage(daemon, frames: list[object]) -> None:
    connection = greeted(daemon.url)
    try:
        for frame in frames:
            connection.send(frame)  # type: ignore[arg-type]
        connection.send(json.dumps({"type": "list_jobs", "request_id": "alive"}))
        for _ in range(len(frames) + 2):
            reply = recv_json(connection)
            if reply.get("request_id") == "alive":
                break
            assert reply["type"] in {"error", "planned", "jobs", "welcome", "accepted", "queued"}
        else:
            raise AssertionError("no answer to list_jobs after garbage")
    except Exception as error:
        if "ConnectionClosed" not in type(error).__name__:
            raise
    finally:
        connection.close()
    # whatever happened to that connection, a new client is served
    fresh = greeted(daemon.url)
    fresh.close()
