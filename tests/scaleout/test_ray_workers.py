"""`--workers ray` end to end: hosts speak to the same websocket daemon; engines run on Ray Serve replicas.

A real local Ray cluster with two logical GPUs, two replicas (half a CPU each), the classical engine
and `tiny-random`. The tests run in file order against one deployment: routing is checked first,
while both replicas are still cold.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.daemon.conftest import Recorder, layer_array, photo_like, submit_job
from tests.daemon.test_jobs import rect_mask
from tests.scaleout.conftest import RayDaemon, wait_workers, welcome_workers
from underpaint.scaleout.backend import RayOptions, RayWorkers, ScaleoutError
from underpaint.scaleout.replica import EngineSettings
from underpaint_protocol.client import UnderpaintClient

pytestmark = [pytest.mark.scaleout, pytest.mark.slow]

CANVAS = photo_like(160, 120)
MASK = rect_mask(160, 120, 50, 40, 41, 33)


BOTH = ["classical", "tiny-random"]


def warm_models(workers: list[dict]) -> list[str]:
    return sorted(model for worker in workers for model in worker["models"])


def inpaint(model: str, steps: int = 3, **extra: object) -> dict:
    job = {
        "mode": "inpaint",
        "model": model,
        "prompt": "a lighthouse",
        "steps": steps,
        "seed": 5,
        "canvas": {"width": 160, "height": 120},
        "selection": {"x": 50, "y": 40, "width": 41, "height": 33},
    }
    job.update(extra)
    return job


def test_welcome_reports_two_idle_replicas_on_two_gpus(ray_daemon: RayDaemon) -> None:
    workers = wait_workers(ray_daemon.url, lambda ws: len(ws) == 2)
    assert sorted(w["device"] for w in workers) == ["cpu [Ray GPU 0]", "cpu [Ray GPU 1]"]
    assert all(not w["busy"] and w["models"] == [] for w in workers)
    assert all(w["where"] for w in workers)


def test_jobs_go_to_the_replica_with_their_model_warm(make_client, ray_daemon: RayDaemon) -> None:
    client, events = make_client()
    first = submit_job(client, inpaint("tiny-random"), CANVAS, MASK)["job_id"]
    assert events.wait_outcome(first, timeout=120).type == "finished"
    second = submit_job(client, inpaint("classical"), CANVAS, MASK)["job_id"]
    assert events.wait_outcome(second, timeout=60).type == "finished"
    # a cold model loads on one replica, not on both: one has tiny-random warm, the other classical
    # (the stream ends before the replica's "idle" report reaches the status, so wait for idle too)
    workers = wait_workers(ray_daemon.url, lambda ws: not any(w["busy"] for w in ws) and warm_models(ws) == BOTH)
    assert sorted(len(w["models"]) for w in workers) == [1, 1]
    # a long job for tiny-random runs on the replica that has it: seen busy there, while the other idles
    third = submit_job(client, inpaint("tiny-random", steps=12), CANVAS, MASK)["job_id"]
    busy = wait_workers(ray_daemon.url, lambda ws: any(w["busy"] for w in ws))
    assert warm_models(busy) == BOTH, "no replica loaded a second model"
    assert [w["models"] for w in busy if w["busy"]] == [["tiny-random"]]
    assert [w["models"] for w in busy if not w["busy"]] == [["classical"]]
    assert events.wait_outcome(third, timeout=120).type == "finished"
    after = wait_workers(ray_daemon.url, lambda ws: not any(w["busy"] for w in ws))
    assert sorted(tuple(w["models"]) for w in after) == [("classical",), ("tiny-random",)]


@pytest.mark.parametrize(
    ("job", "with_mask"),
    [
        (inpaint("tiny-random", batch=2), True),
        (inpaint("classical"), True),
        (
            {
                "mode": "img2img",
                "model": "tiny-random",
                "prompt": "oil",
                "steps": 4,
                "strength": 0.5,
                "seed": 1,
                "canvas": {"width": 160, "height": 120},
            },
            False,
        ),
        (
            {
                "mode": "txt2img",
                "model": "tiny-random",
                "prompt": "a boat",
                "steps": 2,
                "seed": 2,
                "canvas": {"width": 96, "height": 64},
            },
            False,
        ),
        (
            {
                "mode": "outpaint",
                "model": "tiny-random",
                "steps": 2,
                "seed": 3,
                "canvas": {"width": 160, "height": 120},
                "extend": {"left": 0, "top": 0, "right": 40, "bottom": 0},
            },
            False,
        ),
        (
            {
                "mode": "outpaint",
                "model": "classical",
                "canvas": {"width": 160, "height": 120},
                "extend": {"left": 24, "top": 0, "right": 0, "bottom": 16},
            },
            False,
        ),
    ],
    ids=["inpaint-tiny-batch2", "inpaint-classical", "img2img", "txt2img", "outpaint-tiny", "outpaint-classical"],
)
def test_every_job_type_end_to_end(make_client, ray_daemon: RayDaemon, job: dict, with_mask: bool) -> None:
    client, events = make_client()
    canvas = None if job["mode"] == "txt2img" else CANVAS
    accepted = submit_job(client, job, canvas, MASK if with_mask else None)
    job_id = accepted["job_id"]
    outcome = events.wait_outcome(job_id, timeout=120)
    assert outcome.type == "finished", outcome.message
    results = events.of(job_id, "result")
    assert len(results) == job.get("batch", 1) == outcome.message["results"]
    if job["model"] == "tiny-random":
        progress = events.of(job_id, "progress")
        assert progress and progress[-1].message["step"] == progress[-1].message["total"]
        assert any(e.image is not None for e in progress), "previews stream from the replica"
    for event in results:
        layer = layer_array(event)
        placed = event.message["layer"]
        assert layer.shape[:2] == (placed["height"], placed["width"])
        grown = event.message["canvas"]
        assert grown["x"] <= placed["x"] and placed["x"] + placed["width"] <= grown["x"] + grown["width"]
        # stored before it was reported, with what the replica's engine resolved
        sidecar = Path(event.message["output"]).with_suffix(".json")  # the PNG itself may still be encoding
        assert sidecar.is_file() and sidecar.parent.parent == ray_daemon.outputs
        params = json.loads(sidecar.read_text(encoding="utf-8"))["params"]
        assert params == event.message["params"]
        if job["model"] == "tiny-random":
            assert params["engine_params"]["model"] == "tiny-random"
            assert params["engine_params"]["device"] == "cpu"
    if job["mode"] == "inpaint":
        layer = layer_array(results[0])
        assert layer[..., 3].max() == 255
    # a host that comes back with its client id fetches the same layers from the daemon
    later = Recorder()
    again = UnderpaintClient(ray_daemon.url, client_name="pytest", client_id=client.client_id, on_event=later)
    again.connect(timeout=10)
    try:
        again.fetch(job_id)
        assert later.wait_outcome(job_id).type == "finished"
        refetched = sorted(later.of(job_id, "result"), key=lambda e: e.message["index"])
        assert [e.message["layer"]["name"] for e in refetched] == [e.message["layer"]["name"] for e in results]
        for first, again_event in zip(results, refetched, strict=True):
            original, stored = layer_array(first), layer_array(again_event)
            assert np.array_equal(original[..., 3], stored[..., 3])
            opaque = original[..., 3] == 255  # colour under (nearly) transparent pixels need not survive storage
            assert np.array_equal(original[opaque], stored[opaque])
    finally:
        again.close()


def test_cancel_stops_the_job_on_its_replica_within_a_step(make_client, ray_daemon: RayDaemon) -> None:
    client, events = make_client()
    job_id = submit_job(client, inpaint("tiny-random", steps=200, batch=3), CANVAS, MASK)["job_id"]
    events.wait_for(lambda: len(events.of(job_id, "progress")) >= 2, timeout=120)
    cancelled_at = len(events.of(job_id, "progress"))
    client.cancel(job_id)
    assert events.wait_outcome(job_id, timeout=30).type == "cancelled"
    assert not events.of(job_id, "result")
    # the replica stopped: it is idle again long before its 600 steps would have run
    wait_workers(ray_daemon.url, lambda ws: not any(w["busy"] for w in ws), timeout=20)
    assert len(events.of(job_id, "progress")) < cancelled_at + 60
    after = submit_job(client, inpaint("tiny-random"), CANVAS, MASK)["job_id"]
    assert events.wait_outcome(after, timeout=60).type == "finished"


def test_queued_jobs_of_two_clients_take_turns(make_client, ray_daemon: RayDaemon) -> None:
    greedy, greedy_events = make_client()
    polite, polite_events = make_client()
    greedy_jobs = [submit_job(greedy, inpaint("tiny-random", steps=6), CANVAS, MASK)["job_id"] for _ in range(4)]
    polite_job = submit_job(polite, inpaint("tiny-random", steps=6), CANVAS, MASK)["job_id"]
    assert polite_events.wait_outcome(polite_job, timeout=180).type == "finished"
    finished_before = [job for job in greedy_jobs if greedy_events.of(job, "finished")]
    # two replicas: first come, first served would run the polite job fifth, after all four greedy ones
    assert greedy_jobs[-1] not in finished_before, "the second client waited behind the whole batch of the first"
    for job in greedy_jobs:
        assert greedy_events.wait_outcome(job, timeout=180).type == "finished"


def test_live_painting_runs_its_frames_on_the_replicas(make_client) -> None:
    """Each live frame is one call to a replica (the session's kept region, masks and turns stay in the daemon)."""
    from underpaint_protocol.session import ImageData

    client, events = make_client()
    live = {"model": "tiny-random", "steps": 2, "seed": 4, "canvas": {"width": 160, "height": 120}}
    started = client.live_start(live).result(timeout=30)
    region = started["region"]
    crop = np.ascontiguousarray(
        CANVAS[region["y"] : region["y"] + region["height"], region["x"] : region["x"] + region["width"]]
    )
    client.live_frame(
        1, region["x"], region["y"], ImageData("rgba8", region["width"], region["height"], crop.tobytes())
    )
    for seq in range(2, 16):
        dab = np.full((8, 8, 4), 200, np.uint8)
        client.live_frame(seq, 40 + seq, 50, ImageData("rgba8", 8, 8, dab.tobytes()))

    def results() -> list[int]:
        return [e.message["seq"] for e in events.events if e.type == "live_result"]

    events.wait_for(lambda: 15 in results(), timeout=180)
    stopped = client.live_stop().result(timeout=30)
    assert results() == sorted(set(results())) and stopped["frames"] == 15
    assert stopped["results"] + stopped["dropped"] == 15


def test_a_replica_killed_mid_job_fails_that_job_clearly_and_the_next_one_runs(
    make_client, ray_daemon: RayDaemon
) -> None:
    client, events = make_client()
    job_id = submit_job(client, inpaint("tiny-random", steps=200, batch=3), CANVAS, MASK)["job_id"]
    events.wait_for(lambda: len(events.of(job_id, "progress")) >= 2, timeout=120)
    wait_workers(ray_daemon.url, lambda ws: any(w["busy"] for w in ws))
    busy = [w for w in ray_daemon.workers.workers() if w.busy]
    assert len(busy) == 1
    os.kill(busy[0].pid, signal.SIGKILL)
    outcome = events.wait_outcome(job_id, timeout=60)
    assert outcome.type == "failed"
    assert outcome.message["code"] == "worker_lost"
    assert "submit the job again" in outcome.message["message"]
    after = submit_job(client, inpaint("tiny-random"), CANVAS, MASK)["job_id"]
    assert events.wait_outcome(after, timeout=120).type == "finished", "the daemon keeps serving"
    # Serve replaces the dead replica: the status drops it and shows two idle replicas again
    wait_workers(ray_daemon.url, lambda ws: len(ws) == 2 and not any(w["busy"] for w in ws), timeout=300)
    assert busy[0].replica not in {w.replica for w in ray_daemon.workers.workers()}


def test_underpaint_workers_prints_each_replica(ray_daemon: RayDaemon) -> None:
    wait_workers(ray_daemon.url, lambda ws: len(ws) == 2 and not any(w["busy"] for w in ws), timeout=120)
    token = ray_daemon.thread.daemon.token
    command = [sys.executable, "-m", "underpaint", "workers", "--server", ray_daemon.url, f"--token={token}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["WHERE", "DEVICE", "STATE", "WARM", "MODELS"]
    rows = sorted(lines[1:])
    assert len(rows) == 2
    assert "[Ray GPU 0]" in rows[0] + rows[1] and "[Ray GPU 1]" in rows[0] + rows[1]
    assert all(" idle " in row and socket.gethostname() in row for row in rows)
    for worker in welcome_workers(ray_daemon.url):  # the same warm models a host sees in `welcome`
        (row,) = [row for row in rows if worker["device"] in row]
        assert row.endswith("  " + (", ".join(worker["models"]) or "-"))


def test_a_machine_lacking_a_model_is_named_and_nothing_starts(ray_cluster: None) -> None:
    settings = EngineSettings(models=("tiny-random", "someone/never-downloaded"))
    with pytest.raises(ScaleoutError) as raised:
        RayWorkers(settings, RayOptions(cpus_per_replica=0.5)).start()
    message = str(raised.value)
    assert socket.gethostname() in message
    assert "lacks someone/never-downloaded" in message and "Hugging Face cache" in message
    assert "tiny-random" not in message
