"""The client's sans-I/O session: pairing frames with messages, dropping replays, knowing what to fetch."""

from __future__ import annotations

import json

import pytest

from underpaint_protocol.frames import Attachment, encode_frame
from underpaint_protocol.session import ClientSession, SessionError


def frame(attachment_id: str, width: int = 2, height: int = 1) -> bytes:
    parts = encode_frame(Attachment(attachment_id, "rgba8", width, height), bytes(width * height * 4))
    return b"".join(bytes(part) for part in parts)


def result(job_id: str, index: int, attachment_id: str) -> str:
    return json.dumps(
        {
            "type": "result",
            "job_id": job_id,
            "index": index,
            "layer": {
                "name": "x",
                "x": 0,
                "y": 0,
                "width": 2,
                "height": 1,
                "image": {"id": attachment_id, "format": "rgba8", "width": 2, "height": 1},
            },
            "canvas": {"x": 0, "y": 0, "width": 2, "height": 1},
            "params": {},
        }
    )


def accepted(session: ClientSession, job_id: str) -> None:
    session.receive_text(json.dumps({"type": "accepted", "request_id": "r1", "job_id": job_id, "seed": 1}))


def test_a_result_waits_for_its_frame() -> None:
    session = ClientSession()
    accepted(session, "j")
    assert session.receive_text(result("j", 0, "f1")) == []
    (event,) = session.receive_binary(frame("f1"))
    assert event.type == "result" and event.image is not None and event.image.width == 2
    assert bytes(event.image.data) == bytes(8)


def test_a_frame_that_does_not_match_its_announcement_is_a_protocol_error() -> None:
    session = ClientSession()
    session.receive_text(result("j", 0, "f1"))
    with pytest.raises(SessionError):
        session.receive_binary(frame("other"))
    with pytest.raises(SessionError):
        ClientSession().receive_binary(frame("f1"))


def test_text_where_a_frame_was_announced_is_a_protocol_error() -> None:
    session = ClientSession()
    session.receive_text(result("j", 0, "f1"))
    with pytest.raises(SessionError):
        session.receive_text(json.dumps({"type": "finished", "job_id": "j", "results": 1}))


def test_replayed_results_and_outcomes_are_dropped() -> None:
    session = ClientSession()
    accepted(session, "j")
    session.receive_text(result("j", 0, "f1"))
    assert len(session.receive_binary(frame("f1"))) == 1
    finished = json.dumps({"type": "finished", "job_id": "j", "results": 1})
    assert len(session.receive_text(finished)) == 1
    session.receive_text(result("j", 0, "f2"))  # a fetch replays the same item
    assert session.receive_binary(frame("f2")) == []
    assert session.receive_text(finished) == []


def test_jobs_to_fetch_after_a_reconnect() -> None:
    session = ClientSession()
    for job_id in ("done-while-away", "still-running", "seen-finished", "forgotten-by-daemon"):
        accepted(session, job_id)
    session.receive_text(json.dumps({"type": "started", "job_id": "still-running"}))
    session.receive_text(result("seen-finished", 0, "f1"))
    session.receive_binary(frame("f1"))
    session.receive_text(json.dumps({"type": "finished", "job_id": "seen-finished", "results": 1}))
    summaries = [
        {"job_id": "done-while-away", "state": "finished", "results": 2},
        {"job_id": "still-running", "state": "running", "results": 0},
        {"job_id": "seen-finished", "state": "finished", "results": 1},
    ]
    assert session.jobs_to_fetch(summaries) == ["done-while-away", "forgotten-by-daemon"]
