"""Live painting through a real daemon on a real socket: a synthetic stroke stream at 30 frames/s.

Engines: the classical fill, the `tiny-random` diffusion model, and the paced test engine (a model
whose call takes a known time T). Checked: results in sequence order, frames replaced while the
model runs are dropped and counted, the last frame always gets a result, an ordinary job of another
client runs between live frames, stop and disconnect free the device at once, bad input answers with
errors naming the field while the connection goes on.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.daemon.conftest import (
    Recorder,
    RunningDaemon,
    client_maker,
    greeted,
    photo_like,
    recv_json,
    start_daemon,
    submit_job,
    wait_until,
)
from tests.daemon.engines import PACED_MODEL, PacedEngine
from underpaint.engines.classical import ClassicalEngine
from underpaint_protocol.client import DaemonError, UnderpaintClient
from underpaint_protocol.frames import Attachment, encode_frame
from underpaint_protocol.messages import Limits
from underpaint_protocol.session import ImageData

WIDTH, HEIGHT = 96, 72
FPS = 30.0
PACED_STEPS, PACED_STEP_SECONDS = 4, 0.03
"""The paced model takes T = 4 x 30 ms = 120 ms per frame: several stroke frames arrive meanwhile."""


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDaemon]:
    from underpaint.engines.diffusion import DiffusionEngine

    paced = PacedEngine(PACED_STEP_SECONDS, PACED_STEPS)
    engines = [ClassicalEngine(), paced, DiffusionEngine(sources=["tiny-random"], device="cpu")]
    daemon = start_daemon(tmp_path_factory.mktemp("live"), limits=Limits(), paced=paced, engines=engines)
    yield daemon
    daemon.thread.stop()


@pytest.fixture
def make_client(running: RunningDaemon) -> Iterator[Callable[..., tuple[UnderpaintClient, Recorder]]]:
    yield from client_maker(running.url)


def region_of(canvas: np.ndarray, region: dict[str, int]) -> ImageData:
    crop = canvas[region["y"] : region["y"] + region["height"], region["x"] : region["x"] + region["width"]]
    return ImageData("rgba8", region["width"], region["height"], np.ascontiguousarray(crop).tobytes())


@dataclass
class Stream:
    started: dict[str, Any]
    sent: int
    """Frames sent (the last one's seq)."""
    stopped: dict[str, Any]
    results: list[dict[str, Any]]
    """The ``live_result`` messages received, in arrival order."""


def stroke_stream(
    client: UnderpaintClient,
    events: Recorder,
    live: dict[str, Any],
    frames: int = 40,
    during: Callable[[int], None] = lambda seq: None,
) -> Stream:
    """Start, send the region, then a brush dab moving across it at 30 frames/s; wait for the last
    frame's result, stop. ``during(seq)`` runs after each frame is sent."""
    canvas = photo_like(WIDTH, HEIGHT)
    started = client.live_start(live).result(timeout=60)
    region = started["region"]
    client.live_frame(1, region["x"], region["y"], region_of(canvas, region))
    start = time.perf_counter()
    for seq in range(2, frames + 1):
        time.sleep(max(0.0, start + (seq - 1) / FPS - time.perf_counter()))
        x = region["x"] + (seq * 3) % max(region["width"] - 6, 1)
        y = region["y"] + region["height"] // 2
        canvas[y : y + 6, x : x + 6] = (255, 40, 40, 255)  # the dab: 6x6 pixels
        dab = np.ascontiguousarray(canvas[y : y + 6, x : x + 6])
        client.live_frame(seq, x, y, ImageData("rgba8", 6, 6, dab.tobytes()))
        during(seq)
    session = started["session_id"]

    def mine() -> list[dict[str, Any]]:
        return [e.message for e in events.events if e.type == "live_result" and e.message["session_id"] == session]

    events.wait_for(lambda: any(result["seq"] == frames for result in mine()), timeout=120)
    stopped = client.live_stop().result(timeout=10)
    return Stream(started, frames, stopped, mine())


def check_stream(stream: Stream) -> None:
    """What every live session guarantees, whatever the model's speed."""
    seqs = [result["seq"] for result in stream.results]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), f"results out of order: {seqs}"
    assert seqs[-1] == stream.sent, "the last frame must always get a result"
    stopped = stream.stopped
    assert stopped["reason"] == "stopped" and stopped["frames"] == stream.sent
    # every frame either ran or was replaced by a newer one before the model got to it
    assert stopped["results"] + stopped["dropped"] == stopped["frames"], stopped
    region = stream.started["region"]
    for result in stream.results:
        layer = result["layer"]
        assert region["x"] <= layer["x"] and layer["x"] + layer["width"] <= region["x"] + region["width"]
        assert region["y"] <= layer["y"] and layer["y"] + layer["height"] <= region["y"] + region["height"]
        assert result["dropped"] <= result["frames"] <= stream.sent


def test_stroke_stream_on_a_slow_model_drops_stale_frames_and_answers_the_last(make_client) -> None:
    client, events = make_client()
    stream = stroke_stream(client, events, {"model": PACED_MODEL, "canvas": {"width": WIDTH, "height": HEIGHT}})
    check_stream(stream)
    assert stream.started["mode"] == "img2img" and stream.started["steps"] == PACED_STEPS
    # T = 120 ms against a frame every 33 ms: most frames are replaced before the model gets to them
    assert stream.stopped["dropped"] >= stream.sent // 3, stream.stopped
    assert len(stream.results) <= stream.sent // 2


def test_stroke_stream_on_tiny_random(make_client) -> None:
    client, events = make_client()
    canvas = {"width": WIDTH, "height": HEIGHT}
    live = {"model": "tiny-random", "steps": 2, "strength": 0.5, "seed": 9, "canvas": canvas}
    stream = stroke_stream(client, events, live, frames=30)
    check_stream(stream)
    assert stream.started["seed"] == 9 and stream.started["mode"] == "img2img"
    assert stream.started["model_width"] % 8 == 0
    first = next(e for e in events.events if e.type == "live_result")
    assert first.image is not None and first.image.width == first.message["layer"]["width"]


def test_stroke_stream_on_the_classical_engine_inpaints_the_selection(make_client) -> None:
    client, events = make_client()
    selection = {"x": 30, "y": 20, "width": 24, "height": 18}
    live = {"model": "classical", "canvas": {"width": WIDTH, "height": HEIGHT}, "selection": selection}
    stream = stroke_stream(client, events, live, frames=30)
    check_stream(stream)
    assert stream.started["mode"] == "inpaint"  # the classical engine cannot img2img
    for result in stream.results:  # the layer is the selection with its soft edge, not the whole region
        assert result["layer"]["width"] < stream.started["region"]["width"]


def test_an_ordinary_job_of_another_client_runs_between_live_frames(make_client) -> None:
    painter, painter_events = make_client()
    other, other_events = make_client()
    submitted: dict[str, Any] = {}
    finished_at: list[int] = []
    """The stroke frame after which the other client's job was seen finished."""

    def submit_then_watch(seq: int) -> None:
        if seq == 5:
            job = {"mode": "img2img", "model": PACED_MODEL, "canvas": {"width": WIDTH, "height": HEIGHT}}
            submitted.update(submit_job(other, job, photo_like(WIDTH, HEIGHT)))
        elif submitted and not finished_at and other_events.of(submitted["job_id"], "finished"):
            finished_at.append(seq)

    live = {"model": PACED_MODEL, "canvas": {"width": WIDTH, "height": HEIGHT}}
    stream = stroke_stream(painter, painter_events, live, 60, submit_then_watch)
    check_stream(stream)
    assert finished_at, "the job did not finish while the strokes streamed (2 s)"
    # the painter's session went on around it: results before and after the job
    assert any(result["seq"] < 5 for result in stream.results)
    assert any(result["seq"] > finished_at[0] for result in stream.results)


def test_stop_frees_the_device_at_once(running: RunningDaemon, make_client) -> None:
    painter, painter_events = make_client()
    other, other_events = make_client()
    canvas = photo_like(WIDTH, HEIGHT)
    # a frame takes 40 steps x 30 ms = 1.2 s; the stop comes while the first one runs
    live = {"model": PACED_MODEL, "steps": 40, "canvas": {"width": WIDTH, "height": HEIGHT}}
    started = painter.live_start(live).result(timeout=10)
    generated = running.paced.generated
    painter.live_frame(1, 0, 0, region_of(canvas, started["region"]))
    painter.live_frame(2, 0, 0, region_of(canvas, {"x": 0, "y": 0, "width": 8, "height": 8}))
    time.sleep(0.3)
    stopped = painter.live_stop().result(timeout=5)
    assert stopped["frames"] == 2 and stopped["results"] == 0
    job = {"mode": "img2img", "model": PACED_MODEL, "steps": 1, "canvas": {"width": WIDTH, "height": HEIGHT}}
    accepted = submit_job(other, job, canvas)
    assert other_events.wait_outcome(accepted["job_id"], timeout=10).type == "finished"
    assert running.paced.generated == generated + 1, "the live frame in the model was abandoned, not finished"
    manager = running.thread.daemon.manager
    assert not manager.live_sessions
    time.sleep(0.3)
    assert not [e for e in painter_events.events if e.type == "live_result"], "nothing runs after a stop"


def test_a_result_finished_as_the_stop_came_does_not_follow_live_stopped(
    running: RunningDaemon, make_client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A frame's result is handed from the worker to the event loop; a stop handled in between ends
    the session first, and the late result is not sent after ``live_stopped``."""
    import threading

    from underpaint.daemon.connection import ClientHandler
    from underpaint_protocol import messages as wire

    publishing, release = threading.Event(), threading.Event()
    handed = ClientHandler._live_publish

    def late(self: ClientHandler, message: Any, pixels: np.ndarray | None) -> None:
        if isinstance(message, wire.LiveResult):
            publishing.set()
            release.wait(10)  # the worker is slow to hand it over: the stop gets in first
        handed(self, message, pixels)

    monkeypatch.setattr(ClientHandler, "_live_publish", late)
    painter, events = make_client()
    canvas = photo_like(WIDTH, HEIGHT)
    started = painter.live_start({"model": PACED_MODEL, "canvas": {"width": WIDTH, "height": HEIGHT}}).result(10)
    painter.live_frame(1, 0, 0, region_of(canvas, started["region"]))
    assert publishing.wait(30), "the frame never finished"
    stopped = painter.live_stop().result(timeout=5)
    assert stopped["frames"] == 1
    release.set()
    time.sleep(0.5)
    assert [e.type for e in events.events if e.type.startswith("live_")][-1] == "live_stopped"
    assert not [e for e in events.events if e.type == "live_result"]


def test_disconnect_ends_the_session(running: RunningDaemon) -> None:
    connection = greeted(running.url)
    live = {"model": PACED_MODEL, "steps": 40, "canvas": {"width": WIDTH, "height": HEIGHT}}
    connection.send(json.dumps({"type": "live_start", "request_id": "s1", "live": live}))
    started = recv_json(connection)
    assert started["type"] == "live_started", started
    send_frame(connection, 1, started["region"])
    manager = running.thread.daemon.manager
    wait_until(lambda: bool(manager.live_sessions))
    connection.close()
    wait_until(lambda: not manager.live_sessions, timeout=5)


def send_frame(connection: Any, seq: int, rect: dict[str, int], image_size: tuple[int, int] | None = None) -> None:
    width, height = image_size or (rect["width"], rect["height"])
    attachment = Attachment(f"live-{seq}", "rgba8", width, height)
    message = {"type": "live_frame", "seq": seq, "rect": rect, "image": attachment.as_dict()}
    connection.send(json.dumps(message))
    connection.send(b"".join(bytes(part) for part in encode_frame(attachment, bytes(width * height * 4))))


def next_of(connection: Any, kinds: tuple[str, ...]) -> dict[str, Any]:
    while True:
        message = recv_json(connection, timeout=20)
        if message["type"] in kinds:
            return message


def test_bad_live_input_names_the_field_and_the_connection_goes_on(running: RunningDaemon) -> None:
    connection = greeted(running.url)
    canvas = {"width": WIDTH, "height": HEIGHT}
    send_frame(connection, 1, {"x": 0, "y": 0, "width": 4, "height": 4})
    error = recv_json(connection)
    assert (error["code"], error["field"]) == ("no_live_session", "type")
    connection.send(json.dumps({"type": "live_stop"}))
    assert recv_json(connection)["code"] == "no_live_session"
    starts = [
        ({"model": "nope", "canvas": canvas}, "unknown_model", "live.model"),
        ({"model": "classical", "canvas": canvas}, "empty_selection", "live.selection"),
        ({"model": PACED_MODEL, "mode": "txt2img", "canvas": canvas}, "invalid_value", "live.mode"),
        ({"model": PACED_MODEL, "canvas": canvas, "strength": 2}, "invalid_field", "live.strength"),
        ({"model": PACED_MODEL, "canvas": canvas, "strength": 0}, "invalid_value", "live.strength"),
    ]
    for index, (live, code, field) in enumerate(starts):
        connection.send(json.dumps({"type": "live_start", "request_id": f"bad{index}", "live": live}))
        error = recv_json(connection)
        assert (error["code"], error["field"], error["request_id"]) == (code, field, f"bad{index}"), error
    selection = {"x": 10, "y": 10, "width": 20, "height": 20}
    live = {"model": PACED_MODEL, "steps": 1, "canvas": canvas, "selection": selection}
    connection.send(json.dumps({"type": "live_start", "request_id": "ok", "live": live}))
    started = recv_json(connection)
    region = started["region"]
    inside = {"x": region["x"], "y": region["y"], "width": 4, "height": 4}
    send_frame(connection, 1, inside)  # the first frame must cover the whole region
    assert (recv_json(connection)["code"], "rect") == ("invalid_field", "rect")
    send_frame(connection, 1, region, image_size=(region["width"] - 1, region["height"]))
    error = recv_json(connection)
    assert (error["code"], error["field"]) == ("size_mismatch", "image")
    send_frame(connection, 2, region)
    result = next_of(connection, ("live_result", "error"))
    assert result["type"] == "live_result" and result["seq"] == 2
    connection.recv(timeout=5)  # its layer's frame
    send_frame(connection, 2, inside)
    error = recv_json(connection)
    assert (error["code"], error["field"]) == ("invalid_field", "seq")
    outside = {"x": region["x"] + region["width"] - 2, "y": region["y"], "width": 4, "height": 4}
    send_frame(connection, 3, outside)
    error = recv_json(connection)
    assert (error["code"], error["field"]) == ("invalid_field", "rect")
    send_frame(connection, 4, inside)  # the session still serves good frames
    result = next_of(connection, ("live_result", "error"))
    assert result["type"] == "live_result" and result["seq"] == 4, result
    connection.recv(timeout=5)
    connection.send(json.dumps({"type": "live_stop", "request_id": "end"}))
    stopped = next_of(connection, ("live_stopped",))
    assert (stopped["request_id"], stopped["frames"], stopped["results"]) == ("end", 2, 2)
    connection.close()


def test_a_new_start_replaces_the_running_session(make_client) -> None:
    client, events = make_client()
    live = {"model": PACED_MODEL, "steps": 1, "canvas": {"width": WIDTH, "height": HEIGHT}}
    first = client.live_start(live).result(timeout=10)
    second = client.live_start({**live, "prompt": "again"}).result(timeout=10)
    assert first["session_id"] != second["session_id"]
    ended = [e.message for e in events.events if e.type == "live_stopped"]
    assert ended and ended[0]["session_id"] == first["session_id"] and ended[0]["reason"] == "restarted"
    with pytest.raises(DaemonError):  # one stop ends it; a second has no session left
        client.live_stop().result(timeout=5)
        client.live_stop().result(timeout=5)


def test_the_shared_controller_paints_live_on_an_in_memory_host(running: RunningDaemon, tmp_path: Path) -> None:
    from tests.protocol.fake_host import FakeCanvas, FakeHost
    from underpaint_protocol.controller import Controller, WorkQueue
    from underpaint_protocol.jobs import Bounds
    from underpaint_protocol.live import LiveRequest

    canvas = FakeCanvas.photo(WIDTH, HEIGHT)
    original = canvas.background.copy()
    host = FakeHost(canvas)
    work = WorkQueue()
    controller = Controller(host, work.post, client_name="pytest-live")
    controller.connect(running.url)
    assert work.run_until(lambda: controller.connected, 10)
    assert controller.start_live(LiveRequest(prompt="fox", model=PACED_MODEL, steps=1, seed=5))
    assert work.run_until(lambda: controller.live.results >= 1, 20), controller.live.status()
    assert canvas.live_updates == 1 and controller.live.state == "live"
    live_layer = canvas.layers[0]
    sent = controller.live.bytes_sent
    controller.feed_live()  # nothing changed: nothing is sent
    assert controller.live.bytes_sent == sent
    canvas.background[30:34, 40:45] = (0, 0, 255, 255)  # a stroke
    controller.feed_live()
    assert controller.live.bytes_sent == sent + 4 * 5 * 4, "only the changed rectangle travels"
    controller.feed_live(Bounds(0, 0, 8, 8))  # a host that knows the stroke's bounds
    assert work.run_until(lambda: controller.live.layer is not None and controller.live.layer.seq == 3, 20)
    assert canvas.layers[0] is live_layer, "one live layer, refilled in place"
    assert canvas.undo_steps == []
    applied = controller.apply_live()
    assert len(applied) == 1 and canvas.undo_steps == ["paste"] and applied[0].name == "fox [seed 5]"
    controller.stop_live()
    assert controller.live.state == "off" and live_layer not in canvas.layers
    assert np.array_equal(canvas.background[:30], original[:30]), "the painting itself is never written"
    controller.close()


def test_the_controller_follows_the_newest_start(running: RunningDaemon) -> None:
    from tests.protocol.fake_host import FakeCanvas, FakeHost
    from underpaint_protocol.controller import Controller, WorkQueue
    from underpaint_protocol.live import LiveRequest

    canvas = FakeCanvas.photo(WIDTH, HEIGHT)
    work = WorkQueue()
    controller = Controller(FakeHost(canvas), work.post, client_name="pytest-live")
    controller.connect(running.url)
    assert work.run_until(lambda: controller.connected, 10)
    assert controller.start_live(LiveRequest(prompt="first", model=PACED_MODEL, steps=1))
    assert controller.start_live(LiveRequest(prompt="second", model=PACED_MODEL, steps=1))
    assert work.run_until(lambda: controller.live.results >= 1, 20), controller.live.status()
    live = controller.live
    assert live.request is not None and live.request.prompt == "second"
    assert live.layer is not None and live.layer.name == "Live: second"
    assert len([layer for layer in canvas.layers if layer.name.startswith("Live")]) == 1
    controller.stop_live()
    assert controller.live.state == "off"
    controller.close()


@pytest.mark.parametrize("stop_at", [1, 2], ids=["while-the-layer-is-made", "while-it-is-refilled"])
def test_live_off_while_the_host_shows_a_result_leaves_no_live_layer(running: RunningDaemon, stop_at: int) -> None:
    """Krita runs timers and clicks inside its own waits (``refreshProjection``), so Live off can come
    in while ``show_live`` is still running: the session ends with no live layer left behind."""
    from tests.protocol.fake_host import FakeCanvas, FakeHost
    from underpaint_protocol.controller import Controller, WorkQueue
    from underpaint_protocol.jobs import Bounds
    from underpaint_protocol.live import LiveRequest

    class StopsInsideShow(FakeCanvas):
        controller: Controller | None = None

        def show_live(self, layer: Any, handle: Any | None) -> Any:
            shown = super().show_live(layer, handle)
            if self.live_updates == stop_at and self.controller is not None:
                self.controller.stop_live()  # the user's click, delivered inside the host's wait
                work.run_until(lambda: False, 1.0)  # and the daemon's live_stopped with it
            return shown

    work = WorkQueue()
    canvas = StopsInsideShow.photo(WIDTH, HEIGHT)
    controller = canvas.controller = Controller(FakeHost(canvas), work.post, client_name="pytest-live")
    controller.connect(running.url)
    assert work.run_until(lambda: controller.connected, 10)
    assert controller.start_live(LiveRequest(prompt="fox", model=PACED_MODEL, steps=1, seed=5))
    if stop_at == 2:
        assert work.run_until(lambda: controller.live.results >= 1, 20), controller.live.status()
        controller.feed_live(Bounds(0, 0, 8, 8))
    assert work.run_until(lambda: controller.live.state == "off", 20), controller.live.status()
    work.run_until(lambda: False, 0.5)  # anything still on its way lands now
    assert controller.live.handle is None
    assert [layer.name for layer in canvas.layers] == ["Background"]
    controller.close()
