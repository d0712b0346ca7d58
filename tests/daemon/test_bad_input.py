"""Every bad input gets a structured error to that client only; nothing else is disturbed."""

from __future__ import annotations

import io
import json
import struct
from typing import Any

import numpy as np
import pytest
from PIL import Image
from websockets.exceptions import ConnectionClosed

from tests.daemon.conftest import RunningDaemon, greeted, hello, photo_like, raw_connect, recv_json, submit_job
from tests.daemon.test_jobs import inpaint_job, rect_mask
from underpaint_protocol import PROTOCOL_VERSION


def frame(header: dict[str, Any], payload: bytes) -> bytes:
    encoded = json.dumps(header).encode()
    return struct.pack(">I", len(encoded)) + encoded + payload


def still_usable(connection) -> None:
    connection.send(json.dumps({"type": "list_jobs", "request_id": "check"}))
    reply = recv_json(connection)
    assert reply["type"] == "jobs" and reply["request_id"] == "check", reply


def png_bytes(width: int, height: int, mode: str = "RGBA") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (width, height)).save(buffer, "PNG")
    return buffer.getvalue()


SMALL_JOB = inpaint_job(x=10, y=10, w=20, h=20) | {"canvas": {"width": 64, "height": 64}}
FULL_REGION = {"x": 0, "y": 0, "width": 64, "height": 64}


def submit_message(image: dict | None = None, mask: dict | None = None, **extra: Any) -> str:
    message: dict[str, Any] = {"type": "submit", "request_id": "bad", "job": SMALL_JOB, "region": FULL_REGION}
    if image is not None:
        message["image"] = image
    if mask is not None:
        message["mask"] = mask
    message.update(extra)
    return json.dumps(message)


IMAGE_DECL = {"id": "img", "format": "rgba8", "width": 64, "height": 64}
RAW_IMAGE = bytes(64 * 64 * 4)


CASES: list[tuple[str, list[Any], str, str | None]] = [
    ("malformed JSON", ["{not json"], "bad_json", None),
    ("a JSON array", ["[1, 2]"], "bad_json", None),
    ("unknown message type", [json.dumps({"type": "dance"})], "unknown_message_type", "type"),
    ("missing type", [json.dumps({"job_id": "x"})], "unknown_message_type", "type"),
    (
        "wrong field type",
        [
            json.dumps(
                {
                    "type": "plan",
                    "request_id": "p",
                    "job": {"mode": "inpaint", "canvas": {"width": "wide", "height": 5}},
                }
            )
        ],
        "invalid_field",
        "job.canvas.width",
    ),
    (
        "unknown field",
        [json.dumps({"type": "plan", "request_id": "p", "job": {**SMALL_JOB, "stregth": 0.5}})],
        "invalid_field",
        "job.stregth",
    ),
    (
        "out of range",
        [json.dumps({"type": "plan", "request_id": "p", "job": {**SMALL_JOB, "strength": 3}})],
        "invalid_field",
        "job.strength",
    ),
    (
        "unknown model",
        [json.dumps({"type": "plan", "request_id": "p", "job": {**SMALL_JOB, "model": "sdxl-dreams"}})],
        "unknown_model",
        "job.model",
    ),
    (
        "empty selection",
        [
            json.dumps(
                {
                    "type": "plan",
                    "request_id": "p",
                    "job": {**SMALL_JOB, "selection": {"x": 5, "y": 5, "width": 0, "height": 0}},
                }
            )
        ],
        "empty_selection",
        "job.selection",
    ),
    ("binary frame nobody announced", [frame(IMAGE_DECL, RAW_IMAGE)], "unexpected_binary", None),
    ("garbage binary frame", [b"\x00\x00"], "unexpected_binary", None),
    (
        "image that is not a PNG",
        [
            submit_message({"id": "img", "format": "png", "width": 64, "height": 64}),
            frame({"id": "img", "format": "png", "width": 64, "height": 64}, b"\x89PNG-but-not-really"),
        ],
        "bad_image",
        "image",
    ),
    (
        "raw image with too few bytes",
        [submit_message(IMAGE_DECL), frame(IMAGE_DECL, RAW_IMAGE[:-4])],
        "size_mismatch",
        "image",
    ),
    (
        "frame header differs from the declaration",
        [submit_message(IMAGE_DECL), frame({**IMAGE_DECL, "width": 32}, RAW_IMAGE)],
        "size_mismatch",
        "image",
    ),
    (
        "mask size differs from the region",
        [
            submit_message(IMAGE_DECL, {"id": "m", "format": "gray8", "width": 32, "height": 32}),
            frame(IMAGE_DECL, RAW_IMAGE),
            frame({"id": "m", "format": "gray8", "width": 32, "height": 32}, bytes(32 * 32)),
        ],
        "size_mismatch",
        "mask",
    ),
    (
        "mask in a colour format",
        [
            submit_message(IMAGE_DECL, {"id": "m", "format": "rgba8", "width": 64, "height": 64}),
            frame(IMAGE_DECL, RAW_IMAGE),
            frame({"id": "m", "format": "rgba8", "width": 64, "height": 64}, RAW_IMAGE),
        ],
        "invalid_field",
        "mask.format",
    ),
    (
        "region that misses the selection",
        [
            submit_message({**IMAGE_DECL, "width": 8, "height": 8}, region={"x": 0, "y": 0, "width": 8, "height": 8}),
            frame({**IMAGE_DECL, "width": 8, "height": 8}, bytes(8 * 8 * 4)),
        ],
        "region_mismatch",
        "region",
    ),
    ("submit without the pixels it needs", [submit_message()], "region_mismatch", "image"),
    (
        "PNG decompression bomb",
        [
            json.dumps(
                {
                    "type": "submit",
                    "request_id": "bad",
                    "job": {**SMALL_JOB, "canvas": {"width": 4000, "height": 4000}},
                    "region": {"x": 0, "y": 0, "width": 4000, "height": 4000},
                    "image": {"id": "bomb", "format": "png", "width": 4000, "height": 4000},
                }
            ),
            frame({"id": "bomb", "format": "png", "width": 4000, "height": 4000}, png_bytes(4000, 4000, "L")),
        ],
        "too_many_pixels",
        "image",
    ),
    (
        "text message while frames are owed",
        [submit_message(IMAGE_DECL), json.dumps({"type": "list_jobs", "request_id": "x"})],
        "invalid_field",
        "image",
    ),
    ("second hello", [hello()], "invalid_field", "type"),
    ("cancel an unknown job", [json.dumps({"type": "cancel", "job_id": "0" * 32})], "unknown_job", "job_id"),
    ("fetch an unknown job", [json.dumps({"type": "fetch", "job_id": "no-such-job"})], "unknown_job", "job_id"),
]


@pytest.mark.parametrize(("frames", "code", "field"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_gets_a_structured_error_and_the_connection_survives(
    daemon: RunningDaemon, make_client, frames: list[Any], code: str, field: str | None
) -> None:
    bystander, bystander_events = make_client()
    connection = greeted(daemon.url)
    for item in frames:
        connection.send(item)
    reply = recv_json(connection)
    assert reply["type"] == "error", reply
    assert reply["code"] == code, reply
    assert reply["field"] == field, reply
    assert reply["message"]
    first = frames[0]
    if isinstance(first, str) and first.startswith('{"') and code != "unknown_message_type":
        sent = json.loads(first)
        if "request_id" in sent and sent.get("type") != "list_jobs":
            assert reply["request_id"] == sent["request_id"]
    while True:  # e.g. the list_jobs reply of the "frames owed" case
        connection.send(json.dumps({"type": "list_jobs", "request_id": "check"}))
        answer = recv_json(connection)
        if answer.get("request_id") == "check":
            assert answer["type"] == "jobs"
            break
    connection.close()
    # another client connected meanwhile noticed nothing and is served
    canvas = photo_like(64, 64)
    accepted = submit_job(bystander, SMALL_JOB, canvas, rect_mask(64, 64, 10, 10, 20, 20))
    assert bystander_events.wait_outcome(accepted["job_id"]).type == "finished"
    assert all(e.type != "error" for e in bystander_events.events)


def test_handshake_is_required_first(daemon: RunningDaemon) -> None:
    connection = raw_connect(daemon.url)
    connection.send(json.dumps({"type": "list_jobs"}))
    reply = recv_json(connection)
    assert reply["code"] == "handshake_required"
    with pytest.raises(ConnectionClosed):
        connection.recv(timeout=5)


def test_protocol_version_mismatch_is_refused_clearly(daemon: RunningDaemon) -> None:
    connection = raw_connect(daemon.url)
    connection.send(json.dumps({"type": "hello", "protocol": PROTOCOL_VERSION + 1, "client": {"name": "future"}}))
    reply = recv_json(connection)
    assert reply["code"] == "unsupported_protocol" and reply["field"] == "protocol"
    assert str(PROTOCOL_VERSION) in reply["message"]
    with pytest.raises(ConnectionClosed):
        connection.recv(timeout=5)


def test_frame_over_the_size_limit_closes_only_that_connection(daemon: RunningDaemon, make_client) -> None:
    bystander, bystander_events = make_client()
    connection = greeted(daemon.url)
    limit = daemon.thread.daemon.config.limits.max_frame_bytes
    connection.send(submit_message(IMAGE_DECL))
    with pytest.raises(ConnectionClosed):
        connection.send(frame(IMAGE_DECL, bytes(limit + 70000)))
        connection.recv(timeout=5)
    assert connection.close_code == 1009  # "message too big", with the limit in the reason
    connection.socket.close()  # after a protocol error the daemon waits for the client's TCP close
    accepted = submit_job(bystander, SMALL_JOB, photo_like(64, 64), rect_mask(64, 64, 10, 10, 20, 20))
    assert bystander_events.wait_outcome(accepted["job_id"]).type == "finished"
    fresh = greeted(daemon.url)
    still_usable(fresh)
    fresh.close()


def test_client_refuses_to_send_a_frame_the_daemon_would_refuse(make_client, daemon: RunningDaemon) -> None:
    from underpaint_protocol.client import DaemonError
    from underpaint_protocol.session import ImageData

    client, _ = make_client()
    limit = daemon.thread.daemon.config.limits.max_frame_bytes
    huge = ImageData("rgba8", 1100, 1000, bytes(limit + 4))
    with pytest.raises(DaemonError) as refused:
        client.submit(SMALL_JOB, FULL_REGION, huge).result(timeout=5)
    assert refused.value.code == "frame_too_large" and refused.value.field == "image"
    assert client.connected


def test_canvas_over_the_side_limit_is_refused(make_client) -> None:
    from underpaint_protocol.client import DaemonError

    client, _ = make_client()
    with pytest.raises(DaemonError) as refused:
        client.plan({**SMALL_JOB, "canvas": {"width": 30000, "height": 64}}).result(timeout=5)
    assert refused.value.code == "too_many_pixels" and refused.value.field == "job.canvas"


def test_png_image_and_mask_are_accepted(make_client) -> None:
    """The PNG path decodes real files (the bad-PNG cases above must not pass by accident)."""
    from underpaint_protocol.session import ImageData

    client, events = make_client()
    canvas = photo_like(64, 64)
    buffer = io.BytesIO()
    Image.fromarray(canvas, "RGBA").save(buffer, "PNG")
    mask = io.BytesIO()
    Image.fromarray(rect_mask(64, 64, 10, 10, 20, 20), "L").save(mask, "PNG")
    accepted = client.submit(
        SMALL_JOB, FULL_REGION, ImageData("png", 64, 64, buffer.getvalue()), ImageData("png", 64, 64, mask.getvalue())
    ).result(timeout=10)
    assert events.wait_outcome(accepted["job_id"]).type == "finished"
    (result,) = events.of(accepted["job_id"], "result")
    assert result.message["layer"]["width"] >= 20
    assert (
        np.frombuffer(result.image.data, np.uint8).size
        == result.message["layer"]["width"] * result.message["layer"]["height"] * 4
    )
