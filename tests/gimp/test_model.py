"""The plug-in's model against a real daemon on a real socket, with an in-memory canvas.

Covers the sequence the GIMP procedures and the panel share: plan -> read exactly the planned
region -> submit -> paste (placement from the shared jobs module, canvas growth once per job, a
group per batch job, one undo group per paste), errors as messages, cancel, and a dropped socket.
"""

from __future__ import annotations

import queue
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from underpaint_gimp.model import Controller, Job, Listener, Request, UserError, queue_pump, wait_for

from tests.daemon.conftest import RunningDaemon, start_daemon
from tests.gimp.fakes import FakeCanvas
from underpaint.daemon.config import DaemonConfig
from underpaint.daemon.server import Daemon, DaemonThread
from underpaint.engines.classical import ClassicalEngine
from underpaint_protocol.client import UnderpaintClient
from underpaint_protocol.jobs import Bounds, placement
from underpaint_protocol.session import Event


class SpyClient(UnderpaintClient):
    """The real client, recording what the model asked and every event the daemon sent."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.planned: list[dict[str, Any]] = []
        self.submitted: list[tuple[dict[str, Any], Any, Any, Any]] = []
        self.events: list[Event] = []
        inner = kwargs["on_event"]

        def on_event(event: Event) -> None:
            self.events.append(event)
            inner(event)

        kwargs["on_event"] = on_event
        super().__init__(*args, **kwargs)

    def plan(self, job):  # type: ignore[no-untyped-def]
        future = super().plan(job)
        future.add_done_callback(lambda f: f.exception() or self.planned.append(f.result()))
        return future

    def submit(self, job, region=None, image=None, mask=None):  # type: ignore[no-untyped-def]
        self.submitted.append((job, region, image, mask))
        return super().submit(job, region, image, mask)


class Recorder(Listener):
    def __init__(self) -> None:
        self.states: list[tuple[str, str]] = []
        self.errors: list[str] = []
        self.previews = 0

    def state_changed(self, state: str, detail: str) -> None:
        self.states.append((state, detail))

    def preview(self, job: Job, image: Any) -> None:
        self.previews += 1

    def error(self, text: str) -> None:
        self.errors.append(text)


class Harness:
    def __init__(self, url: str) -> None:
        self.work: queue.Queue[Callable[[], None]] = queue.Queue()
        self.listener = Recorder()
        self.clients: list[SpyClient] = []

        def factory(*args: Any, **kwargs: Any) -> SpyClient:
            client = SpyClient(*args, **kwargs)
            self.clients.append(client)
            return client

        self.controller = Controller(self.work.put, self.listener, host=("gimp", "test"), client_factory=factory)
        self.url = url
        self.pump = queue_pump(self.work)

    @property
    def client(self) -> SpyClient:
        return self.clients[-1]

    def run(self, canvas: FakeCanvas, request: Request, timeout: float = 30) -> Job:
        job = self.controller.generate(canvas, request)
        wait_for([job], self.pump, timeout)
        self.pump(0.05)
        return job

    def until(self, predicate: Callable[[], bool], timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, f"timed out; states {self.listener.states[-3:]}"
            self.pump(0.05)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[RunningDaemon]:
    running = start_daemon(tmp_path)
    yield running
    running.thread.stop()


@pytest.fixture
def harness(daemon: RunningDaemon) -> Iterator[Harness]:
    h = Harness(daemon.url)
    h.controller.connect(daemon.url, daemon.token)
    yield h
    h.controller.close()


def results(client: SpyClient) -> list[Event]:
    return [e for e in client.events if e.type == "result"]


def test_inpaint_reads_only_the_planned_region_and_pastes_at_the_result_placement(harness: Harness) -> None:
    canvas = FakeCanvas.photo()
    canvas.select(60, 40, 30, 20, soft=True)
    before = canvas.background.copy()
    job = harness.run(canvas, Request(prompt="a cup", seed=7, mode=None))
    assert job.state == "finished", job.error
    assert job.mode == "inpaint" and job.job["selection"] == {"x": 60, "y": 40, "width": 30, "height": 20}
    upload = harness.client.planned[0]["upload"]
    assert [(kind, r.as_dict()) for kind, r in canvas.reads] == [("image", upload), ("mask", upload)]
    _, region, image, mask = harness.client.submitted[0]
    assert region == upload and image.format == "rgba8" and mask.format == "gray8"
    assert 128 in bytes(mask.data), "the soft selection travels as is"
    (event,) = results(harness.client)
    where = placement(event.message, 160, 120)
    (layer,) = job.layers
    assert canvas.layers[0] is layer and canvas.layers[1].name == "Background"
    assert (layer.x, layer.y, layer.width, layer.height) == (where.x, where.y, where.width, where.height)
    assert layer.pixels.tobytes() == bytes(event.image.data)
    assert layer.name == "a cup [seed 7]"
    assert canvas.undo_groups == 1 and canvas.undo_depth == 0 and canvas.resizes == []
    assert np.array_equal(canvas.layers[1].pixels, before)


def test_batch_goes_into_one_group_above_the_active_layer(harness: Harness) -> None:
    canvas = FakeCanvas.photo()
    canvas.select(20, 20, 40, 30)
    job = harness.run(canvas, Request(prompt="steam", seed=100, batch=3, mode="inpaint"))
    assert job.state == "finished"
    group = canvas.layers[0]
    assert group.children is not None and canvas.layers[1].name == "Background"
    assert group.name == "steam [seeds 100-102]"
    assert [child.name for child in group.children] == ["steam [seed 100]", "steam [seed 101]", "steam [seed 102]"]
    assert canvas.undo_groups == 3  # one per paste


def test_results_go_above_the_active_layer_inside_its_group(harness: Harness) -> None:
    canvas = FakeCanvas.photo()
    pixels = canvas.read_image(Bounds(0, 0, 8, 8))
    canvas.begin_paste()
    folder = canvas.add_group("folder", canvas.layers[0])
    inner = canvas.add_layer("inner", pixels, 0, 0, None, folder)
    canvas.end_paste()
    canvas.reads.clear()
    canvas.active = inner
    canvas.select(10, 10, 20, 20)
    job = harness.run(canvas, Request(seed=1, mode="inpaint"))
    assert job.state == "finished"
    assert folder.children is not None and folder.children[0] is job.layers[0] and folder.children[1] is inner


@pytest.mark.parametrize("extend", [(0, 0, 48, 0), (32, 16, 0, 8)])
def test_outpaint_grows_the_canvas_once_and_leaves_the_original_untouched(
    harness: Harness, extend: tuple[int, int, int, int]
) -> None:
    canvas = FakeCanvas.photo()
    canvas.select(5, 5, 10, 10)  # Expand ignores the selection
    original = canvas.layers[0].pixels.copy()
    left, top, right, bottom = extend
    job = harness.run(canvas, Request(prompt="more table", seed=3, batch=2, mode="outpaint", extend=extend))
    assert job.state == "finished", job.error
    assert "selection" not in job.job
    assert job.job["extend"] == {"left": left, "top": top, "right": right, "bottom": bottom}
    assert canvas.resizes == [(160 + left + right, 120 + top + bottom, left, top)]
    assert [kind for kind, _ in canvas.reads] == ["image"]  # no mask for an extend-only outpaint
    background = canvas.layers[1]
    assert (background.x, background.y) == (left, top) and np.array_equal(background.pixels, original)
    for event, layer in zip(results(harness.client), canvas.layers[0].children or [], strict=True):
        where = placement(event.message, 160, 120)
        assert (layer.x, layer.y, layer.width, layer.height) == (where.x, where.y, where.width, where.height)


def test_mode_follows_the_selection_and_missing_pieces_are_messages(harness: Harness) -> None:
    canvas = FakeCanvas.photo()
    with pytest.raises(UserError, match="Select the area"):
        harness.controller.generate(canvas, Request(mode="inpaint"))
    with pytest.raises(UserError, match="at least one side"):
        harness.controller.generate(canvas, Request(mode="outpaint", extend=(0, 0, 0, 0)))
    # no selection at strength 1 -> txt2img, which the classical engine cannot do: a failure message
    job = harness.run(canvas, Request(prompt="x"))
    assert job.mode == "txt2img" and job.state == "failed" and "unsupported_mode" in (job.error or "")
    assert harness.listener.errors and "txt2img failed" in harness.listener.errors[-1]
    canvas.valid = False
    with pytest.raises(UserError, match="no longer open"):
        harness.controller.generate(canvas, Request(mode="inpaint"))


def test_daemon_down_is_a_clear_message(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    h = Harness(f"ws://127.0.0.1:{port}")
    with pytest.raises(UserError, match="underpaint serve"):
        h.controller.connect(h.url, timeout=1.0)
    with pytest.raises(UserError, match="underpaint serve"):
        h.controller.generate(FakeCanvas.photo(), Request(mode="inpaint"))


def test_panel_style_connection_waits_for_the_daemon_to_come_up(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    h = Harness(f"ws://127.0.0.1:{port}")
    h.controller.connect_in_background(h.url, retry=0.2)
    h.until(lambda: any(state == "disconnected" for state, _ in h.listener.states))
    assert "underpaint serve" in h.listener.states[-1][1]
    config = DaemonConfig(port=port, token_file=tmp_path / "token", outputs=None)
    thread = DaemonThread(Daemon(config, [ClassicalEngine()], "classical")).start()
    try:
        h.until(lambda: h.controller.state == "connected", timeout=20)
        assert [m["id"] for m in h.controller.models()] == ["classical"]
    finally:
        h.controller.close()
        thread.stop()


def test_cancel_stops_the_job_without_layers(daemon: RunningDaemon, harness: Harness) -> None:
    daemon.paced.step_seconds = 0.2
    canvas = FakeCanvas.photo()
    canvas.select(40, 40, 30, 30)
    job = harness.controller.generate(canvas, Request(mode="inpaint", model="paced", seed=1))
    harness.until(lambda: job.state == "running")
    harness.controller.cancel()
    wait_for([job], harness.pump, 10)
    assert job.state == "cancelled" and job.layers == [] and len(canvas.layers) == 1


def test_dropped_socket_reconnects_and_the_result_still_lands(daemon: RunningDaemon, harness: Harness) -> None:
    daemon.paced.step_seconds = 0.15
    canvas = FakeCanvas.photo()
    canvas.select(40, 40, 30, 30)
    job = harness.controller.generate(canvas, Request(mode="inpaint", model="paced", seed=5, batch=2))
    harness.until(lambda: job.state == "running")
    connection = harness.client._connection
    assert connection is not None
    connection.close()  # the socket drops under the running job
    harness.until(lambda: harness.controller.state == "reconnecting")
    wait_for([job], harness.pump, 20)
    assert job.state == "finished" and job.results == 2
    assert harness.controller.state == "connected"
    group = canvas.layers[0]
    assert group.children is not None and len(group.children) == 2


def test_events_that_overtake_the_submit_answer_are_kept(harness: Harness) -> None:
    canvas = FakeCanvas.photo()
    canvas.select(10, 10, 10, 10)
    job = Job(canvas, Request(), {"mode": "inpaint", "batch": 1}, 160, 120, canvas.active)
    harness.controller.jobs.append(job)
    harness.controller._handle(Event({"type": "started", "job_id": "j1"}))
    harness.controller._handle(Event({"type": "finished", "job_id": "j1", "results": 0}))
    assert job.state == "planning"
    harness.controller._accepted(job, {"job_id": "j1", "seed": 9})
    assert job.state == "finished" and job.seed == 9


def test_a_closed_image_gets_no_layer_but_a_message(daemon: RunningDaemon, harness: Harness) -> None:
    daemon.paced.step_seconds = 0.1
    canvas = FakeCanvas.photo()
    canvas.select(40, 40, 30, 30)
    job = harness.controller.generate(canvas, Request(mode="inpaint", model="paced", seed=5))
    harness.until(lambda: job.state == "running")
    canvas.valid = False
    wait_for([job], harness.pump, 10)
    assert job.layers == [] and len(canvas.layers) == 1
    assert any("closed" in text for text in harness.listener.errors)


def test_previews_reach_the_listener(daemon: RunningDaemon, harness: Harness) -> None:
    canvas = FakeCanvas.photo()
    canvas.select(40, 40, 30, 30)
    job = harness.run(canvas, Request(mode="inpaint", model="paced", seed=5))
    assert job.state == "finished" and harness.listener.previews == 5 and job.fraction == 1.0
