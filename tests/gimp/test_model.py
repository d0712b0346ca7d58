"""The GIMP side of the shared controller (the controller itself is tested in tests/protocol): one
image per host, and a procedure call run to its end on its own thread against a real daemon."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from underpaint_gimp.model import ImageHost, make_controller, run_to_end

from tests.daemon.conftest import RunningDaemon, start_daemon
from tests.protocol.fake_host import FakeCanvas
from underpaint_protocol.controller import Controller, Request, UserError, WorkQueue


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[RunningDaemon]:
    running = start_daemon(tmp_path)
    yield running
    running.thread.stop()


def procedure(canvas: FakeCanvas) -> tuple[Controller, WorkQueue, list[str]]:
    work = WorkQueue()
    shown: list[str] = []
    host = ImageHost(canvas, lambda controller: shown.append(controller.jobs[-1].state) if controller.jobs else None)
    return make_controller(host, work.post, "test"), work, shown


def test_a_procedure_runs_its_job_to_the_end(daemon: RunningDaemon) -> None:
    canvas = FakeCanvas.photo()
    canvas.select(20, 20, 40, 30)
    controller, work, shown = procedure(canvas)
    job = run_to_end(controller, work, daemon.url, daemon.token, Request(prompt="steam", seed=100, batch=3), 30)
    assert job.state == "finished" and job.seed == 100 and len(job.pasted) == 3
    group = canvas.layers[0]
    assert group.name == "steam [seeds 100-102]" and canvas.layers[1].name == "Background"
    assert [child.name for child in group.children or []] == [f"steam [seed {s}]" for s in (100, 101, 102)]
    assert shown[0] == "planning" and shown[-1] == "finished"
    controller.close()


def test_a_procedure_says_why_it_could_not_run(daemon: RunningDaemon) -> None:
    canvas = FakeCanvas.photo()
    controller, work, _ = procedure(canvas)
    with pytest.raises(UserError, match="Select the area to inpaint"):
        run_to_end(controller, work, daemon.url, daemon.token, Request(mode="inpaint"), 30)
    controller.close()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    controller, work, _ = procedure(canvas)
    with pytest.raises(UserError, match=rf"not running at ws://127.0.0.1:{port}.*underpaint serve --port {port}"):
        run_to_end(controller, work, f"ws://127.0.0.1:{port}", "", Request(mode="inpaint"), 30)


def test_a_closed_image_is_refused_with_a_message() -> None:
    canvas = FakeCanvas.photo()
    canvas.open = False
    with pytest.raises(UserError, match="image was closed"):
        ImageHost(canvas).canvas()


def test_a_seed_above_2_to_the_31_round_trips(daemon: RunningDaemon) -> None:
    canvas = FakeCanvas.photo()
    canvas.select(10, 10, 30, 30)
    controller, work, _ = procedure(canvas)
    seed = 3_000_000_000
    job = run_to_end(controller, work, daemon.url, daemon.token, Request(seed=seed, batch=2), 30)
    assert job.seed == seed
    assert [int(result.message["params"]["seed"]) for result in job.results] == [seed, seed + 1]
    assert canvas.layers[0].name.endswith(f"[seeds {seed}-{seed + 1}]")
    controller.close()
