"""Bounded cost under hostile or broken peers: limits as announced, deadlines, caps, slow readers,
inputs that used to kill a handler, cancel races, durable outputs. A real daemon on a real socket."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import stat
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tests.daemon.conftest import (
    SMALL_LIMITS,
    RunningDaemon,
    greeted,
    hello,
    photo_like,
    raw_connect,
    recv_json,
    start_daemon,
    submit_job,
    wait_until,
)
from tests.daemon.engines import PACED_MODEL, PacedEngine
from tests.daemon.test_bad_input import IMAGE_DECL, RAW_IMAGE, frame, still_usable, submit_message
from tests.daemon.test_jobs import inpaint_job
from underpaint.daemon.auth import load_or_create_token
from underpaint.daemon.config import Timeouts
from underpaint.daemon.logs import sanitise
from underpaint.daemon.outputs import OutputStore, StoredResult
from underpaint_protocol.messages import Limits


@pytest.fixture
def strict(tmp_path: Path):
    """A daemon with tight limits and short deadlines, so each rule shows in a test's time."""
    limits = SMALL_LIMITS.model_copy(
        update={"max_batch": 2, "max_work_pixels": 1024 * 1024, "max_queued_per_client": 3, "max_connections": 4}
    )
    running = start_daemon(
        tmp_path,
        limits=limits,
        paced=PacedEngine(step_seconds=0.05, steps=4),
        timeouts=Timeouts(hello=0.5, frames=0.5, send=1.0),
        outgoing_bytes=1024 * 1024,
    )
    yield running
    running.thread.stop()


def plan(connection, job: dict[str, Any], request_id: str = "p") -> dict[str, Any]:
    connection.send(json.dumps({"type": "plan", "request_id": request_id, "job": job}))
    return recv_json(connection)


# ------------------------------------------------------------ 1. limits, as announced, before allocation


def test_welcome_announces_exactly_the_limits_enforced(strict: RunningDaemon) -> None:
    connection = raw_connect(strict.url)
    connection.send(hello())
    welcome = recv_json(connection)
    assert Limits(**welcome["limits"]) == strict.thread.daemon.config.limits
    refused = plan(connection, inpaint_job(x=1, y=1, w=8, h=8) | {"canvas": {"width": 64, "height": 64}, "batch": 3})
    assert (refused["code"], refused["field"]) == ("too_many_pixels", "job.batch"), refused


def test_outpaint_that_would_allocate_gigapixels_is_refused_at_plan_and_submit(daemon: RunningDaemon) -> None:
    huge = {
        "mode": "outpaint",
        "canvas": {"width": 64, "height": 64},
        "extend": {"left": 0, "top": 0, "right": 65472, "bottom": 65472},
    }
    connection = greeted(daemon.url)
    refused = plan(connection, huge)
    assert (refused["type"], refused["code"], refused["field"]) == ("error", "too_many_pixels", "job.extend")
    wide = huge | {"extend": {"left": 0, "top": 0, "right": 19000, "bottom": 19000}}  # sides fine, area not
    connection.send(
        json.dumps(
            {
                "type": "submit",
                "request_id": "s",
                "job": wide,
                "region": {"x": 0, "y": 0, "width": 64, "height": 64},
                "image": {"id": "i", "format": "rgba8", "width": 64, "height": 64},
            }
        )
    )
    connection.send(frame({"id": "i", "format": "rgba8", "width": 64, "height": 64}, bytes(64 * 64 * 4)))
    refused = recv_json(connection)
    assert (refused["code"], refused["field"], refused["request_id"]) == ("too_many_pixels", "job.extend", "s")
    still_usable(connection)


def test_selection_whose_work_area_is_over_the_limit_is_refused(strict: RunningDaemon) -> None:
    connection = greeted(strict.url)
    job = inpaint_job(x=100, y=100, w=900, h=900) | {"canvas": {"width": 2000, "height": 2000}}
    refused = plan(connection, job)
    assert (refused["code"], refused["field"]) == ("too_many_pixels", "job.selection"), refused


def test_per_client_queue_limit(strict: RunningDaemon, strict_client) -> None:
    client, _ = strict_client()
    job = {"mode": "txt2img", "model": PACED_MODEL, "canvas": {"width": 64, "height": 64}}
    outcomes = []
    for _ in range(6):
        try:
            outcomes.append(client.submit(job, None, None).result(timeout=10)["type"])
        except Exception as error:  # the client raises DaemonError for an error reply
            outcomes.append(getattr(error, "code", repr(error)))
    assert "queue_full" in outcomes, outcomes
    other, _ = strict_client()
    assert other.submit(job, None, None).result(timeout=10)["type"] == "accepted"  # others unaffected


@pytest.fixture
def strict_client(strict: RunningDaemon):
    from tests.daemon.conftest import client_maker

    yield from client_maker(strict.url)


# ------------------------------------------------------------ 2. bounded memory


def test_slow_reader_is_dropped_others_unaffected_results_fetchable(strict: RunningDaemon, strict_client) -> None:
    client_id = "slow-reader-client-0001"
    slow = connect(strict.url, compression=None, max_size=None, max_queue=1)  # reads as little as it can
    slow.send(hello(client_id=client_id, previews=True))
    recv_json(slow)
    big = {"mode": "img2img", "model": PACED_MODEL, "canvas": {"width": 1024, "height": 1024}, "batch": 2}
    jobs = []
    for index in range(3):
        slow.send(
            json.dumps(
                {
                    "type": "submit",
                    "request_id": f"s{index}",
                    "job": big,
                    "region": {"x": 0, "y": 0, "width": 1024, "height": 1024},
                    "image": {"id": f"i{index}", "format": "rgba8", "width": 1024, "height": 1024},
                }
            )
        )
        slow.send(frame({"id": f"i{index}", "format": "rgba8", "width": 1024, "height": 1024}, bytes(1024 * 1024 * 4)))
    # ... and now it reads nothing: 6 results of 4 MB each pile up against a 1 MB budget.
    manager = strict.thread.daemon.manager
    wait_until(lambda: len([j for j in manager.jobs.values() if j.owner == client_id]) == 3, 10)
    jobs = [job.id for job in manager.jobs.values() if job.owner == client_id]
    fast, events = strict_client()
    accepted = submit_job(
        fast, inpaint_job(x=8, y=8, w=16, h=16) | {"canvas": {"width": 64, "height": 64}}, photo_like(64, 64)
    )
    assert events.wait_outcome(accepted["job_id"], 30).type == "finished"
    wait_until(lambda: all(manager.jobs[j].terminal_event is not None for j in jobs), 60)
    wait_until(lambda: not any(h.client_id == client_id for h in strict.thread.daemon._connections), 30)
    with pytest.raises(ConnectionClosed):
        for _ in range(10_000):
            slow.recv(timeout=10)
    again, recorder = strict_client(client_id=client_id)
    for job_id in jobs:
        again.fetch(job_id)
    recorder.wait_for(lambda: all(len(recorder.of(j, "result")) == 2 for j in jobs), 30)


def test_queued_job_holds_only_its_crop(daemon: RunningDaemon, make_client) -> None:
    client, events = make_client()
    blocker = client.submit(
        {"mode": "txt2img", "model": PACED_MODEL, "canvas": {"width": 64, "height": 64}, "steps": 40}, None, None
    ).result(timeout=10)
    canvas = photo_like(1000, 1000)
    job = inpaint_job(x=10, y=10, w=20, h=20) | {"canvas": {"width": 1000, "height": 1000}}
    from underpaint_protocol.session import ImageData

    planned = client.plan(job).result(timeout=10)
    whole = ImageData("rgba8", 1000, 1000, canvas.tobytes())
    accepted = client.submit(job, {"x": 0, "y": 0, "width": 1000, "height": 1000}, whole).result(timeout=10)
    record = daemon.thread.daemon.manager.jobs[accepted["job_id"]]
    upload = planned["upload"]
    assert record.image is not None and record.image.shape[:2] == (upload["height"], upload["width"])
    root = record.image
    while isinstance(root.base, np.ndarray):
        root = root.base
    assert root.nbytes == record.image.nbytes  # not a view into the 4 MB upload
    client.cancel(blocker["job_id"])
    assert events.wait_outcome(accepted["job_id"]).type == "finished"


def test_submit_whose_frames_never_come_is_dropped_with_an_error(strict: RunningDaemon) -> None:
    connection = greeted(strict.url)
    connection.send(submit_message(image=IMAGE_DECL))
    error = recv_json(connection, timeout=5)
    assert (error["code"], error["field"], error["request_id"]) == ("invalid_field", "image", "bad")
    assert "did not arrive" in error["message"]
    still_usable(connection)


# ------------------------------------------------------------ 3. connections can't be hoarded


def test_no_hello_in_time_closes(strict: RunningDaemon) -> None:
    connection = raw_connect(strict.url)
    error = recv_json(connection, timeout=5)
    assert error["code"] == "handshake_required"
    with pytest.raises(ConnectionClosed) as closed:
        connection.recv(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


def test_binary_before_hello_closes(daemon: RunningDaemon) -> None:
    connection = raw_connect(daemon.url)
    connection.send(frame(IMAGE_DECL, RAW_IMAGE))
    assert recv_json(connection)["code"] == "handshake_required"
    with pytest.raises(ConnectionClosed) as closed:
        connection.recv(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


def test_connections_are_capped_with_a_clear_refusal(strict: RunningDaemon) -> None:
    held = [greeted(strict.url) for _ in range(4)]
    with pytest.raises(InvalidStatus) as refused:
        raw_connect(strict.url)
    assert refused.value.response.status_code == 503
    assert b"limit" in refused.value.response.body
    held.pop().close()
    wait_until(lambda: len(strict.thread.daemon._connections) < 4, 5)
    greeted(strict.url).close()


def test_queued_positions_are_coalesced(tmp_path: Path) -> None:
    running = start_daemon(tmp_path, paced=PacedEngine(step_seconds=0.01, steps=1))
    try:
        from tests.daemon.conftest import Recorder
        from underpaint_protocol.client import UnderpaintClient

        recorder = Recorder()
        client = UnderpaintClient(running.url, client_name="pytest", on_event=recorder)
        client.connect(timeout=10)
        job = {"mode": "txt2img", "model": PACED_MODEL, "canvas": {"width": 64, "height": 64}}
        client.submit(job | {"steps": 200}, None, None).result(timeout=10)  # holds the rest in the queue
        ids = [client.submit(job, None, None).result(timeout=10)["job_id"] for _ in range(60)]
        assert len(running.thread.daemon.manager.positions("cpu")) >= 50
        for job_id in ids:
            recorder.wait_outcome(job_id, 60)
        queued = [e for e in recorder.events if e.type == "queued"]
        # Uncoalesced, every take re-announced every waiting job: about 60 * 61 / 2 = 1830 events.
        assert len(queued) < 600, len(queued)
        for job_id in ids:
            positions = [e.message["position"] for e in queued if e.job_id == job_id]
            assert positions == sorted(positions, reverse=True) and len(set(positions)) == len(positions)
        client.close()
    finally:
        running.thread.stop()


# ------------------------------------------------------------ 4. no input kills a connection

HOSTILE_TEXT = [
    ("a number of 5000 digits", '{"type": "list_jobs", "request_id": ' + "9" * 5000 + "}", "bad_json", None),
    ("nesting past the parser", "[" * 200_000 + "]" * 200_000, "bad_json", None),
    (
        "a float that overflows",
        '{"type": "plan", "request_id": "r", "job": {"mode": "inpaint", "strength": 1e999,'
        ' "canvas": {"width": 8, "height": 8}}}',
        "invalid_field",
        "job.strength",
    ),
    (
        "a lone surrogate",
        '{"type": "plan", "request_id": "r", "job": {"mode": "inpaint", "prompt": "\\ud800",'
        ' "canvas": {"width": 8, "height": 8}}}',
        "invalid_field",
        "job.prompt",
    ),
    ("a surrogate key", '{"type": "list_jobs", "\\udfff": 1}', "invalid_field", None),
    ("a huge request id", json.dumps({"type": "fetch", "request_id": "x" * 100_000}), "invalid_field", None),
]


@pytest.mark.parametrize(
    ("text", "code", "field"), [case[1:] for case in HOSTILE_TEXT], ids=[case[0] for case in HOSTILE_TEXT]
)
def test_hostile_text_after_hello_gets_a_structured_error(
    daemon: RunningDaemon, text: str, code: str, field: str | None
) -> None:
    connection = greeted(daemon.url)
    connection.send(text)
    error = recv_json(connection)
    assert (error["type"], error["code"]) == ("error", code), error
    if field is not None:
        assert error["field"] == field
    assert len(error["message"]) < 1000
    still_usable(connection)


@pytest.mark.parametrize("text", [case[1] for case in HOSTILE_TEXT], ids=[case[0] for case in HOSTILE_TEXT])
def test_hostile_text_before_hello_is_answered_and_closed_1008(daemon: RunningDaemon, text: str) -> None:
    connection = raw_connect(daemon.url)
    connection.send(text)
    assert recv_json(connection)["type"] == "error"
    with pytest.raises(ConnectionClosed) as closed:
        connection.recv(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


HOSTILE_HEADERS = [
    b'{"id": "img", "format": "rgba8", "width": ' + b"9" * 5000 + b', "height": 64}',
    b'{"id": "img", "format": "rgba8", "width": 1e999, "height": 64}',
    b'{"id": "\\ud800", "format": "rgba8", "width": 64, "height": 64}',
    b"[" * 3000 + b"]" * 3000,
]


@pytest.mark.parametrize("header", HOSTILE_HEADERS, ids=["digits", "overflow", "surrogate", "nesting"])
def test_hostile_binary_headers_get_a_structured_error(daemon: RunningDaemon, header: bytes) -> None:
    connection = greeted(daemon.url)
    connection.send(submit_message(image=IMAGE_DECL))
    connection.send(len(header).to_bytes(4, "big") + header + RAW_IMAGE)
    error = recv_json(connection)
    assert error["type"] == "error" and error["code"] in ("unexpected_binary", "size_mismatch"), error
    assert error["field"] == "image"
    still_usable(connection)


def test_log_lines_from_peers_are_sanitised_and_handshake_failures_are_one_line(
    daemon: RunningDaemon, caplog: pytest.LogCaptureFixture
) -> None:
    assert sanitise("evil\nINFO forged\x1b[31m") == "evil\\x0aINFO forged\\x1b[31m"
    assert sanitise("\ud800x") == "\\ud800x"
    assert len(sanitise("x" * 10_000)) == 80
    caplog.set_level(logging.INFO)
    connection = greeted(daemon.url, client={"name": "evil\nERROR forged line"})
    connection.close()
    port = int(daemon.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as plain:
        plain.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        with contextlib.suppress(TimeoutError):
            plain.recv(1000)
    wait_until(lambda: any("opening handshake failed" in r.getMessage() for r in caplog.records), 5)
    for record in caplog.records:
        assert "\n" not in record.getMessage(), record.getMessage()
        if "opening handshake failed" in record.getMessage():
            assert record.exc_info is None


# ------------------------------------------------------------ 5. cancel


def test_cancel_landing_while_the_worker_takes_the_job_still_ends_cancelled(daemon: RunningDaemon) -> None:
    from tests.daemon.conftest import Recorder
    from underpaint_protocol.client import UnderpaintClient

    recorder = Recorder()
    client = UnderpaintClient(daemon.url, client_name="pytest", on_event=recorder)
    client.connect(timeout=10)
    try:
        first = client.submit(
            {"mode": "txt2img", "model": PACED_MODEL, "canvas": {"width": 64, "height": 64}, "steps": 10}, None, None
        ).result(timeout=10)
        second = client.submit(
            {"mode": "txt2img", "model": PACED_MODEL, "canvas": {"width": 64, "height": 64}}, None, None
        ).result(timeout=10)
        # What cancel() does when the queue no longer holds the job because a worker is taking it:
        # the cancel event is set and the worker must end the job, not drop it silently.
        daemon.thread.daemon.manager.jobs[second["job_id"]].cancel.set()
        assert recorder.wait_outcome(first["job_id"]).type == "finished"
        assert recorder.wait_outcome(second["job_id"], 10).type == "cancelled"
    finally:
        client.close()


# ------------------------------------------------------------ 6. start-up


def test_token_file_readable_by_others_is_tightened(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    token = tmp_path / "token"
    token.write_text("secret-token\n")
    os.chmod(token, 0o644)
    with caplog.at_level(logging.WARNING):
        assert load_or_create_token(token) == "secret-token"
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    assert any("now 600" in record.getMessage() for record in caplog.records)


# ------------------------------------------------------------ 7. durable outputs


def test_results_are_on_disk_raw_first_then_png(tmp_path: Path) -> None:
    store = OutputStore(tmp_path, memory_budget_bytes=0)
    pixels = np.arange(6 * 5 * 4, dtype=np.uint8).reshape(5, 6, 4)
    item = StoredResult("a" * 32, 0, "owner", "name", 1, 2, {"x": 0, "y": 0, "width": 9, "height": 9}, {}, pixels, None)
    saved = store.save(item)
    assert saved.output is not None and saved.output.endswith(".png")
    png = Path(saved.output)
    assert png.with_suffix(".rgba").read_bytes() == pixels.tobytes()  # durable before `result`
    fresh = OutputStore(tmp_path, memory_budget_bytes=0)  # as after a crash: nothing in memory
    assert np.array_equal(fresh.load("a" * 32)[0].pixels, pixels)
    fresh.start()
    fresh.stop()
    assert png.is_file() and not png.with_suffix(".rgba").exists()
    assert np.array_equal(OutputStore(tmp_path, 0).load("a" * 32)[0].pixels, pixels)


def test_accept_errors_are_logged_once_not_in_a_flood() -> None:
    from underpaint.daemon.logs import AcceptErrorsOnce

    keep = AcceptErrorsOnce(every=60.0)

    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord("asyncio", logging.ERROR, __file__, 1, message, None, None)

    flood = [keep.filter(record("socket.accept() out of system resource\nsocket: <...>")) for _ in range(500)]
    assert flood.count(True) == 1
    assert keep.filter(record("Task exception was never retrieved"))  # other asyncio errors untouched
