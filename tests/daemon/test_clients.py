"""Several clients at once, cancel, and surviving a dropped socket."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from tests.daemon.conftest import RunningDaemon, photo_like, submit_job
from tests.daemon.test_jobs import inpaint_job, rect_mask
from underpaint_protocol.client import UnderpaintClient
from underpaint_protocol.session import Event

CANVAS = photo_like(200, 150)
MASK = rect_mask(200, 150, 40, 30, 37, 29)


def test_three_hosts_at_once_are_all_served_fairly(make_client, daemon: RunningDaemon) -> None:
    daemon.paced.step_seconds = 0.01
    hosts = [make_client(host=(name, "1")) for name in ("krita", "gimp", "figma")]
    lock = threading.Lock()
    submitted: dict[str, str] = {}

    def submit_three(index: int) -> None:
        client, _ = hosts[index]
        for _ in range(3):
            accepted = submit_job(client, inpaint_job(model="paced", steps=3), CANVAS, MASK)
            with lock:
                submitted[accepted["job_id"]] = str(index)

    threads = [threading.Thread(target=submit_three, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for index, (_, events) in enumerate(hosts):
        mine = [job_id for job_id, owner in submitted.items() if owner == str(index)]
        for job_id in mine:
            assert events.wait_outcome(job_id).type == "finished"
        # each host saw only its own jobs
        seen = {e.job_id for e in events.events if e.job_id}
        assert seen == set(mine)
        for _, other_events in hosts:
            if other_events is not events:
                assert not seen & {e.job_id for e in other_events.events if e.job_id}
    assert len(submitted) == 9


def test_round_robin_between_clients(make_client, daemon: RunningDaemon) -> None:
    """One client queues four jobs; a second client's job runs second, not fifth."""
    daemon.paced.step_seconds = 0.05
    greedy, greedy_events = make_client()
    polite, polite_events = make_client()
    greedy_jobs = [submit_job(greedy, inpaint_job(model="paced", steps=2), CANVAS, MASK)["job_id"] for _ in range(4)]
    polite_job = submit_job(polite, inpaint_job(model="paced", steps=2), CANVAS, MASK)["job_id"]
    polite_events.wait_outcome(polite_job)
    finished_before = [job for job in greedy_jobs if greedy_events.of(job, "finished")]
    assert len(finished_before) <= 2, "the second client waited behind the whole batch of the first"
    for job in greedy_jobs:
        greedy_events.wait_outcome(job)


def test_cancel_running_job_stops_it_and_leaves_others_alone(make_client, daemon: RunningDaemon) -> None:
    daemon.paced.step_seconds = 0.05
    alice, alice_events = make_client()
    bob, bob_events = make_client()
    long_job = submit_job(alice, inpaint_job(model="paced", steps=200), CANVAS, MASK)["job_id"]
    bob_job = submit_job(bob, inpaint_job(model="paced", steps=3), CANVAS, MASK)["job_id"]
    alice_events.wait_for(lambda: bool(alice_events.of(long_job, "progress")))
    alice.cancel(long_job)
    outcome = alice_events.wait_outcome(long_job, timeout=5)
    assert outcome.type == "cancelled"
    assert not alice_events.of(long_job, "result")
    assert len(alice_events.of(long_job, "progress")) < 50
    assert bob_events.wait_outcome(bob_job).type == "finished"


def test_cancel_queued_job_never_starts(make_client, daemon: RunningDaemon) -> None:
    daemon.paced.step_seconds = 0.05
    client, events = make_client()
    running = submit_job(client, inpaint_job(model="paced", steps=10), CANVAS, MASK)["job_id"]
    queued = submit_job(client, inpaint_job(model="paced", steps=10), CANVAS, MASK)["job_id"]
    events.wait_for(lambda: bool(events.of(queued, "queued")))
    assert events.of(queued, "queued")[0].message["position"] >= 1
    client.cancel(queued)
    assert events.wait_outcome(queued).type == "cancelled"
    assert events.wait_outcome(running).type == "finished"
    assert not events.of(queued, "started")
    summary = {job["job_id"]: job for job in client.list_jobs().result(timeout=5)}
    assert summary[queued]["state"] == "cancelled" and summary[running]["state"] == "finished"


def test_someone_elses_job_cannot_be_cancelled_fetched_or_listed(make_client, daemon: RunningDaemon) -> None:
    daemon.paced.step_seconds = 0.05
    owner, owner_events = make_client()
    intruder, intruder_events = make_client()
    job_id = submit_job(owner, inpaint_job(model="paced", steps=10), CANVAS, MASK)["job_id"]
    intruder.cancel(job_id)
    intruder.fetch(job_id)
    intruder_events.wait_for(lambda: len([e for e in intruder_events.events if e.type == "error"]) == 2)
    for error in (e.message for e in intruder_events.events if e.type == "error"):
        assert error["code"] == "not_owner" and error["field"] == "job_id" and error["job_id"] == job_id
    assert job_id not in [job["job_id"] for job in intruder.list_jobs().result(timeout=5)]
    assert owner_events.wait_outcome(job_id).type == "finished"
    assert not any(e.job_id == job_id and e.type != "error" for e in intruder_events.events)


def test_disconnect_mid_job_then_reconnect_and_fetch(daemon: RunningDaemon) -> None:
    daemon.paced.step_seconds = 0.05
    events: list[Event] = []
    first = UnderpaintClient(daemon.url, client_name="pytest", on_event=events.append, reconnect=False)
    first.connect()
    client_id = first.client_id
    job_id = submit_job(first, inpaint_job(model="paced", steps=6), CANVAS, MASK)["job_id"]
    first.close()  # the host goes away while the job runs

    from tests.daemon.conftest import Recorder

    again = Recorder()
    second = UnderpaintClient(daemon.url, client_name="pytest", client_id=client_id, on_event=again)
    second.connect()
    try:
        again.wait_for(lambda: any(j["state"] == "finished" for j in second.list_jobs().result(timeout=5)), 20)
        second.fetch(job_id)
        assert again.wait_outcome(job_id).type == "finished"
        (result,) = again.of(job_id, "result")
        assert result.image is not None and result.message["params"]["mode"] == "inpaint"
    finally:
        second.close()


def test_client_reconnects_by_itself_and_catches_up(daemon: RunningDaemon) -> None:
    daemon.paced.step_seconds = 0.05
    from tests.daemon.conftest import Recorder

    states: list[str] = []
    events = Recorder()
    client = UnderpaintClient(daemon.url, client_name="pytest", on_event=events, on_state=lambda s, _: states.append(s))
    client.connect()
    try:
        job_id = submit_job(client, inpaint_job(model="paced", steps=8), CANVAS, MASK)["job_id"]
        events.wait_for(lambda: bool(events.of(job_id, "progress")))
        assert client._connection is not None
        client._connection.close()  # the socket drops under a running job
        outcome = events.wait_outcome(job_id, timeout=20)
        assert outcome.type == "finished"
        assert len(events.of(job_id, "result")) == 1
        assert states.count("connected") >= 2
    finally:
        client.close()


def test_fetch_from_disk_after_the_daemon_forgot_the_job(make_client, daemon: RunningDaemon) -> None:
    from tests.daemon.conftest import Recorder, layer_array

    client, events = make_client()
    job_id = submit_job(client, inpaint_job(), CANVAS, MASK)["job_id"]
    events.wait_outcome(job_id)
    (first,) = events.of(job_id, "result")
    manager = daemon.thread.daemon.manager
    manager.jobs.pop(job_id)  # as after a daemon restart: only the outputs folder knows the job
    manager.store._memory.clear()
    later = Recorder()
    again = UnderpaintClient(daemon.url, client_name="pytest", client_id=client.client_id, on_event=later)
    again.connect()
    try:
        again.fetch(job_id)
        assert later.wait_outcome(job_id).type == "finished"
        (refetched,) = later.of(job_id, "result")
        assert refetched.message["layer"] == {**first.message["layer"], "image": refetched.message["layer"]["image"]}
        assert np.array_equal(layer_array(refetched), layer_array(first))
    finally:
        again.close()
    stranger, stranger_events = make_client()
    stranger.fetch(job_id)
    stranger_events.wait_for(lambda: any(e.type == "error" for e in stranger_events.events))
    assert next(e for e in stranger_events.events if e.type == "error").message["code"] == "not_owner"


def test_shutdown_tells_clients_which_jobs_were_interrupted(tmp_path) -> None:
    from tests.daemon.conftest import Recorder, start_daemon

    running_daemon = start_daemon(tmp_path)
    running_daemon.paced.step_seconds = 0.05
    events = Recorder()
    client = UnderpaintClient(running_daemon.url, client_name="pytest", on_event=events, reconnect=False)
    client.connect()
    running = submit_job(client, inpaint_job(model="paced", steps=100), CANVAS, MASK)["job_id"]
    queued = submit_job(client, inpaint_job(model="paced", steps=100), CANVAS, MASK)["job_id"]
    events.wait_for(lambda: bool(events.of(running, "progress")))
    running_daemon.thread.stop()
    for job_id in (running, queued):
        outcome = events.wait_outcome(job_id, timeout=5)
        assert outcome.type == "failed" and outcome.message["code"] == "shutting_down"
    assert len(running_daemon.thread.interrupted) == 2
    assert any("running" in line and running[:8] in line for line in running_daemon.thread.interrupted)
    assert any("queued" in line and queued[:8] in line for line in running_daemon.thread.interrupted)
    client.close()


def test_fail_fast_reports_a_missing_daemon_at_once() -> None:
    import socket
    import time

    from underpaint_protocol.client import NotConnected

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = UnderpaintClient(f"ws://127.0.0.1:{port}", client_name="pytest")
    started = time.monotonic()
    with pytest.raises(NotConnected) as refused:
        client.connect(timeout=10, fail_fast=True)
    assert time.monotonic() - started < 5
    assert str(port) in str(refused.value)
