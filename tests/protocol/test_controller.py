"""The one job controller every Python host uses: sans-I/O against a scripted client, then end to end
against a real daemon on a real socket with an in-memory host (tests/protocol/fake_host.py)."""

from __future__ import annotations

import http.server
import json
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.daemon.conftest import RunningDaemon, start_daemon
from tests.protocol.fake_host import FakeCanvas, FakeHost
from underpaint_protocol.client import DaemonError, NotConnected, UnderpaintClient
from underpaint_protocol.constants import DEFAULT_PORT, DEFAULT_URL
from underpaint_protocol.constants import JOB_STATES as DAEMON_JOB_STATES
from underpaint_protocol.controller import (
    CONNECTION_STATES,
    JOB_STATES,
    Controller,
    Request,
    WorkQueue,
    address_problem,
    describe,
)
from underpaint_protocol.errors import ERROR_CODES, USER_TEXT, user_text
from underpaint_protocol.jobs import placement
from underpaint_protocol.session import Event, ImageData

# ------------------------------------------------------------------------------------------ sans-I/O


class ScriptedClient:
    """Stands in for UnderpaintClient: records requests, resolves them when the test says."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.on_event: Callable[[Event], None] = kwargs["on_event"]
        self.welcome: dict[str, Any] = WELCOME
        self.plans: list[Future[Any]] = []
        self.submits: list[tuple[dict[str, Any], Any, Any, Any, Future[Any], Callable[[], None]]] = []
        self.cancels: list[str] = []
        self.guides: list[tuple[list[ImageData], list[ImageData]]] = []
        self.closed = False

    def connect(self, timeout: float, fail_fast: bool = False) -> dict[str, Any]:
        return self.welcome

    def close(self) -> None:
        self.closed = True

    def plan(self, job: dict[str, Any]) -> Future[Any]:
        self.plans.append(Future())
        return self.plans[-1]

    def submit(self, job, region=None, image=None, mask=None, on_sent=None, controls=(), references=()):  # type: ignore[no-untyped-def]
        future: Future[Any] = Future()
        self.guides.append((list(controls), list(references)))
        self.submits.append((job, region, image, mask, future, on_sent))
        return future

    def cancel(self, job_id: str) -> None:
        self.cancels.append(job_id)

    def request(self, message: dict[str, Any], expected: str) -> Future[Any]:
        """A prompt-library request (a docker asks for the styles once connected): answered as a
        daemon with no styles and no history answers."""
        future: Future[Any] = Future()
        future.set_result({"type": expected, "styles": [], "entries": []})
        return future

    def event(self, message: dict[str, Any], image: ImageData | None = None) -> None:
        self.on_event(Event(message, image))


WELCOME = {
    "type": "welcome",
    "client_id": "c1",
    "server": {"name": "underpaint", "version": "test"},
    "models": [
        {"id": "classical", "modes": ["inpaint", "outpaint"]},
        {"id": "paced", "modes": ["inpaint", "outpaint", "img2img", "txt2img"]},
    ],
    "default_model": "classical",
    "limits": {"max_batch": 4},
}


def scripted(canvas: FakeCanvas | None = None) -> tuple[Controller, ScriptedClient, FakeHost]:
    host = FakeHost(canvas or FakeCanvas.photo())
    clients: list[ScriptedClient] = []

    def factory(*args: Any, **kwargs: Any) -> ScriptedClient:
        clients.append(ScriptedClient(*args, **kwargs))
        return clients[-1]

    work = WorkQueue()
    controller = Controller(host, work.post, client_name="test", client_factory=factory)  # type: ignore[arg-type]
    controller.connect("ws://127.0.0.1:1")
    assert work.run_until(lambda: controller.connection == "connected", 5)
    controller.post = lambda fn: fn()  # from here on, everything runs inline on the test's thread
    return controller, clients[0], host


def planned(client: ScriptedClient, index: int, x: int, y: int, w: int, h: int) -> None:
    client.plans[index].set_result({"type": "planned", "upload": {"x": x, "y": y, "width": w, "height": h}})


def result_event(job_id: str, index: int, x: int, y: int, w: int, h: int, seed: int, canvas: tuple = (0, 0, 160, 120)):
    cx, cy, cw, ch = canvas
    message = {
        "type": "result",
        "job_id": job_id,
        "index": index,
        "layer": {"name": f"p [seed {seed}]", "x": x, "y": y, "width": w, "height": h},
        "canvas": {"x": cx, "y": cy, "width": cw, "height": ch},
        "params": {"seed": seed},
        "output": f"/out/{job_id}-{index}.png",
    }
    return message, ImageData("rgba8", w, h, bytes([9, 8, 7, 255]) * (w * h))


def test_states_are_the_shared_names() -> None:
    assert CONNECTION_STATES == ("disconnected", "connecting", "connected", "reconnecting", "refused")
    assert JOB_STATES == ("planning", "uploading", "submitted", "queued", "running", "finished", "failed", "cancelled")
    assert set(DAEMON_JOB_STATES) <= set(JOB_STATES)


def test_a_job_walks_every_state_and_pastes_its_batch_as_one_group() -> None:
    canvas = FakeCanvas.photo()
    canvas.select(60, 40, 30, 20, soft=True)
    controller, client, _ = scripted(canvas)
    job = controller.generate(Request(prompt="a cup", batch=2))
    assert job is not None and job.state == "planning" and job.mode == "inpaint"
    planned(client, 0, 50, 30, 50, 40)
    _, region, _, mask, accepted, on_sent = client.submits[0]
    assert job.state == "uploading" and region == {"x": 50, "y": 30, "width": 50, "height": 40}
    assert [(kind, r.as_dict()) for kind, r in canvas.reads] == [("image", region), ("mask", region)]
    assert 128 in bytes(mask.data), "the soft selection travels as is"
    on_sent()
    assert job.state == "submitted"
    accepted.set_result({"type": "accepted", "job_id": "j1", "seed": 70})
    assert (job.state, job.job_id, job.seed) == ("queued", "j1", 70)
    client.event({"type": "queued", "job_id": "j1", "position": 2})
    assert job.describe() == "inpaint: queued (position 2)"
    client.event({"type": "started", "job_id": "j1"})
    client.event({"type": "progress", "job_id": "j1", "step": 3, "total": 10}, ImageData("rgba8", 1, 1, b"\0" * 4))
    assert job.state == "running" and controller.progress == (3, 10) and controller.preview is not None
    assert job.describe() == "inpaint: step 3 of 10, image 1 of 2"
    client.event(*result_event("j1", 0, 55, 35, 4, 3, 70))
    assert canvas.undo_steps == [], "a batch waits for all its items"
    client.event(*result_event("j1", 1, 55, 35, 4, 3, 71))
    client.event({"type": "finished", "job_id": "j1", "results": 2})
    assert job.state == "finished" and job.settled and not controller.busy and controller.preview is None
    group = canvas.layers[0]
    assert group.name == "a cup [seeds 70-71]" and canvas.undo_steps == ["paste"]
    assert [(c.name, c.visible) for c in group.children or []] == [("p [seed 70]", True), ("p [seed 71]", False)]
    assert job.describe() == "inpaint: done, 2 layers" and controller.error == ""


def test_cancel_before_the_plan_is_answered_sends_nothing() -> None:
    canvas = FakeCanvas.photo()
    canvas.select(10, 10, 10, 10)
    controller, client, _ = scripted(canvas)
    job = controller.generate(Request())
    assert job is not None
    controller.cancel(job)
    assert job.state == "cancelled"
    planned(client, 0, 0, 0, 30, 30)
    assert client.submits == [] and canvas.reads == [] and job.state == "cancelled"


def test_cancel_while_uploading_is_sent_once_the_job_id_is_known_and_nothing_is_pasted() -> None:
    canvas = FakeCanvas.photo()
    canvas.select(10, 10, 10, 10)
    controller, client, _ = scripted(canvas)
    job = controller.generate(Request())
    other = controller.generate(Request())
    assert job is not None and other is not None
    planned(client, 0, 0, 0, 30, 30)
    controller.cancel(job)  # a specific job, while another one is in the queue
    assert client.cancels == [] and job.describe() == "inpaint: cancelling…"
    client.submits[0][4].set_result({"type": "accepted", "job_id": "j1", "seed": 1})
    assert client.cancels == ["j1"] and not other.cancel_requested
    client.event(*result_event("j1", 0, 10, 10, 2, 2, 1))  # the result raced the cancel
    client.event({"type": "finished", "job_id": "j1", "results": 1})
    assert job.state == "cancelled" and job.pasted == [] and len(canvas.layers) == 1
    assert job.note == "it had finished; nothing pasted"


def test_cancelled_by_the_daemon_mid_run() -> None:
    canvas = FakeCanvas.photo()
    controller, client, _ = scripted(canvas)
    job = controller.generate(Request(strength=0.5, model="paced"))
    assert job is not None and job.mode == "img2img"
    planned(client, 0, 0, 0, 160, 120)
    assert client.submits[0][3] is None  # no selection, no mask
    client.submits[0][4].set_result({"type": "accepted", "job_id": "j1", "seed": 1})
    client.event({"type": "progress", "job_id": "j1", "step": 1, "total": 4})
    controller.cancel()
    assert client.cancels == ["j1"]
    client.event({"type": "cancelled", "job_id": "j1"})
    assert job.state == "cancelled" and not controller.busy and controller.progress == (0, 0)


def test_events_that_overtake_the_submit_answer_are_kept() -> None:
    canvas = FakeCanvas.photo()
    canvas.select(10, 10, 10, 10)
    controller, client, _ = scripted(canvas)
    job = controller.generate(Request(seed=9))
    assert job is not None
    planned(client, 0, 0, 0, 30, 30)
    client.event({"type": "started", "job_id": "j1"})
    client.event(*result_event("j1", 0, 10, 10, 2, 2, 9))
    client.event({"type": "finished", "job_id": "j1", "results": 1})
    assert job.state == "uploading"
    client.submits[0][4].set_result({"type": "accepted", "job_id": "j1", "seed": 9})
    assert job.state == "finished" and len(job.pasted) == 1


def test_a_failed_job_and_daemon_errors_read_as_sentences() -> None:
    canvas = FakeCanvas.photo()
    canvas.select(10, 10, 10, 10)
    controller, client, _ = scripted(canvas)
    job = controller.generate(Request())
    assert job is not None
    planned(client, 0, 0, 0, 30, 30)
    client.submits[0][4].set_exception(DaemonError({"code": "too_many_pixels", "message": "upload too big"}))
    assert job.state == "failed" and job.error.startswith("The image or the selection is too large")
    assert "[" not in job.error and controller.error == job.error
    second = controller.generate(Request())
    assert second is not None and controller.error == "", "old errors clear when the user moves on"
    planned(client, 1, 0, 0, 30, 30)
    client.submits[1][4].set_result({"type": "accepted", "job_id": "j2", "seed": 1})
    client.event({"type": "failed", "job_id": "j2", "code": "out_of_memory", "message": "CUDA OOM"})
    assert second.state == "failed" and "ran out of memory" in second.error and "out_of_memory" not in second.error


def test_every_error_code_has_user_text_without_jargon() -> None:
    assert set(USER_TEXT) == set(ERROR_CODES)
    for code, text in USER_TEXT.items():
        assert text[0].isupper() and text.endswith(".") and code not in text and "[" not in text
    assert user_text("invalid_field", "must be at most 16", "batch") == (
        "The daemon did not accept one of the values. (batch: must be at most 16)"
    )
    assert user_text("no_such_code") == USER_TEXT["internal_error"]


def test_connection_failures_say_what_to_do() -> None:
    text = describe(NotConnected("refused", "not_running"), "ws://127.0.0.1:9001")
    assert "not running at ws://127.0.0.1:9001" in text and "`underpaint serve --port 9001`" in text
    assert "--port" not in describe(NotConnected("x", "not_running"), f"ws://127.0.0.1:{DEFAULT_PORT}")
    web = describe(NotConnected("x", "web_server", 404), "ws://127.0.0.1:7860")
    assert "127.0.0.1:7860 answers as a web server (HTTP 404), not underpaint" in web
    gradio = describe(NotConnected("x", "web_server", 200, "uvicorn"), "ws://127.0.0.1:7860")
    assert "answers as a web server (uvicorn, HTTP 200), not underpaint" in gradio
    assert "Errno" not in describe(NotConnected("[Errno 111] Connection refused", "not_running"), "ws://h:1")
    web_address = DEFAULT_URL.replace("ws://", "http://")
    assert address_problem(web_address) == (
        f"{web_address} is a web address; the daemon's address starts with ws:// ({DEFAULT_URL})."
    )
    assert address_problem(f"127.0.0.1:{DEFAULT_PORT}") is not None
    assert address_problem(f"ws://[::1]:{DEFAULT_PORT}") is None
    assert "underpaint token" in describe(DaemonError({"code": "unauthorized", "message": "bad token"}))


def test_what_cannot_start_is_refused_before_anything_is_sent() -> None:
    canvas = FakeCanvas.photo()
    controller, client, host = scripted(canvas)
    assert controller.generate(Request(prompt="x")) is None  # txt2img on the classical model
    assert controller.error.startswith("The classical model cannot paint a new image: select an area")
    assert controller.generate(Request(mode="inpaint")) is None and "Select the area" in controller.error
    assert controller.generate(Request(mode="outpaint", extend=(0, 0, 0, 0))) is None
    assert "at least one side" in controller.error
    assert controller.generate(Request(batch=5, model="paced")) is None and "between 1 and 4" in controller.error
    canvas.open = False
    assert controller.generate(Request(model="paced")) is None and "no longer open" in controller.error
    host.active = None
    assert controller.generate(Request(model="paced")) is None and controller.error == "Open an image first."
    assert client.plans == [] and controller.jobs == []
    assert controller.mode_hint() == "Open an image first."
    host.active = FakeCanvas.photo()
    assert controller.mode_hint(0.5).startswith("The classical model cannot refine the whole image: select an area")
    assert (
        controller.mode_hint(1.0, (0, 0, 8, 0)) == "Generate will expand by 0, 0, 8, 0 px (left, top, right, bottom)."
    )


def test_a_resized_or_closed_image_is_not_pasted_into() -> None:
    canvas = FakeCanvas.photo()
    canvas.select(10, 10, 10, 10)
    controller, client, _ = scripted(canvas)
    jobs = [controller.generate(Request()), controller.generate(Request())]
    for index in range(2):
        planned(client, index, 0, 0, 30, 30)
        client.submits[index][4].set_result({"type": "accepted", "job_id": f"j{index}", "seed": 1})
    canvas.width = 200  # resized under the first job
    client.event(*result_event("j0", 0, 10, 10, 2, 2, 1))
    assert jobs[0] is not None and jobs[0].note == "not pasted" and "resized while the job ran" in controller.error
    canvas.width, canvas.open = 160, False
    client.event(*result_event("j1", 0, 10, 10, 2, 2, 1))
    assert jobs[1] is not None and jobs[1].note == "image closed"
    assert "closed" in controller.error and "saved in /out/j1-0.png" in controller.error
    assert len(canvas.layers) == 1


def test_a_paste_that_runs_queued_events_re_entrantly_pastes_once() -> None:
    canvas = FakeCanvas.photo()
    controller, client, _ = scripted(canvas)
    job = controller.generate(Request(extend=(0, 0, 8, 0), mode="outpaint"))
    assert job is not None
    planned(client, 0, 0, 0, 160, 120)
    client.submits[0][4].set_result({"type": "accepted", "job_id": "j1", "seed": 1})
    canvas.on_paste = lambda: client.event({"type": "finished", "job_id": "j1", "results": 1})
    client.event(*result_event("j1", 0, 160, 0, 8, 120, 1, canvas=(0, 0, 168, 120)))
    assert job.state == "finished" and len(job.pasted) == 1 and canvas.undo_steps == ["grow", "paste"]
    assert canvas.grows == [(168, 120, 0, 0)]


# ------------------------------------------------------------------------------------------ real daemon


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[RunningDaemon]:
    running = start_daemon(tmp_path)
    yield running
    running.thread.stop()


class Live:
    """A controller on a real client, with the test's thread as the host's UI thread."""

    def __init__(self, url: str, token: str = "", canvas: FakeCanvas | None = None) -> None:
        self.work = WorkQueue()
        self.host = FakeHost(canvas)
        self.clients: list[UnderpaintClient] = []

        def factory(*args: Any, **kwargs: Any) -> UnderpaintClient:
            self.clients.append(UnderpaintClient(*args, **kwargs))
            return self.clients[-1]

        self.controller = Controller(
            self.host, self.work.post, client_name="test", client_factory=factory, connect_timeout=3
        )
        self.url, self.token = url, token

    def until(self, done: Callable[[], bool], timeout: float = 20) -> None:
        assert self.work.run_until(done, timeout), f"timed out; states {self.host.states[-3:]}"

    def connect(self, retry: bool = False) -> Controller:
        self.controller.connect(self.url, self.token, retry=retry)
        self.until(lambda: self.controller.connection not in ("connecting",))
        return self.controller


@pytest.fixture
def live(daemon: RunningDaemon) -> Iterator[Live]:
    harness = Live(daemon.url, daemon.token, FakeCanvas.photo())
    assert harness.connect().connection == "connected"
    yield harness
    harness.controller.close()


def test_inpaint_reads_only_the_planned_region_and_pastes_at_the_result_placement(live: Live) -> None:
    canvas = live.host.active
    assert canvas is not None
    canvas.select(60, 40, 30, 20, soft=True)
    before = canvas.background.copy()
    job = live.controller.generate(Request(prompt="a cup", seed=7))
    assert job is not None
    live.until(lambda: job.settled)
    assert job.state == "finished" and job.mode == "inpaint" and job.seed == 7, job.error
    assert job.upload is not None and [(k, r) for k, r in canvas.reads] == [("image", job.upload), ("mask", job.upload)]
    assert job.upload.width * job.upload.height < 160 * 120
    (result,) = job.results
    where = placement(result.message, 160, 120)
    layer = canvas.layers[0]
    assert (layer.x, layer.y, layer.width, layer.height) == (where.x, where.y, where.width, where.height)
    assert layer.pixels.tobytes() == bytes(result.image.data) and layer.name == "a cup [seed 7]"
    assert canvas.undo_steps == ["paste"] and np.array_equal(canvas.layers[1].pixels, before)


@pytest.mark.parametrize("extend", [(0, 0, 48, 0), (32, 16, 0, 8)])
def test_outpaint_batch_grows_the_canvas_once_into_one_group(live: Live, extend: tuple[int, int, int, int]) -> None:
    canvas = live.host.active
    assert canvas is not None
    canvas.select(5, 5, 10, 10)  # Expand ignores the selection
    original = canvas.layers[0].pixels.copy()
    left, top, right, bottom = extend
    job = live.controller.generate(Request(prompt="more table", seed=3, batch=2, mode="outpaint", extend=extend))
    assert job is not None
    live.until(lambda: job.settled)
    assert job.state == "finished" and "selection" not in job.spec, job.error
    assert canvas.grows == [(160 + left + right, 120 + top + bottom, left, top)]
    assert [kind for kind, _ in canvas.reads] == ["image"]
    group, background = canvas.layers
    assert group.name == "more table [seeds 3-4]" and (background.x, background.y) == (left, top)
    assert np.array_equal(background.pixels, original)
    for result, layer in zip(job.results, group.children or [], strict=True):
        where = placement(result.message, 160, 120)
        assert (layer.x, layer.y, layer.width, layer.height) == (where.x, where.y, where.width, where.height)


def test_cancel_the_running_job_while_another_waits(daemon: RunningDaemon, live: Live) -> None:
    daemon.paced.step_seconds = 0.1
    canvas = live.host.active
    assert canvas is not None
    canvas.select(40, 40, 30, 30)
    running = live.controller.generate(Request(model="paced", seed=1))
    waiting = live.controller.generate(Request(model="paced", seed=2))
    assert running is not None and waiting is not None
    live.until(lambda: running.state == "running")
    live.controller.cancel(running)
    live.until(lambda: running.done and waiting.settled)
    assert running.state == "cancelled" and running.pasted == []
    assert waiting.state == "finished" and len(canvas.layers) == 2


def test_cancel_right_after_generate_before_accepted(daemon: RunningDaemon, live: Live) -> None:
    canvas = live.host.active
    assert canvas is not None
    canvas.select(40, 40, 30, 30)
    job = live.controller.generate(Request(model="paced", seed=1))
    assert job is not None
    live.until(lambda: job.state in ("uploading", "submitted"))
    live.controller.cancel(job)
    live.until(lambda: job.done)
    assert job.state == "cancelled" and job.job_id is not None and len(canvas.layers) == 1


def test_dropped_socket_reconnects_and_the_result_still_lands(daemon: RunningDaemon, live: Live) -> None:
    daemon.paced.step_seconds = 0.15
    canvas = live.host.active
    assert canvas is not None
    canvas.select(40, 40, 30, 30)
    job = live.controller.generate(Request(model="paced", seed=5, batch=2))
    assert job is not None
    live.until(lambda: job.state == "running")
    connection = live.clients[-1]._connection
    assert connection is not None
    connection.close()  # the socket drops under the running job
    live.until(lambda: live.controller.connection == "reconnecting")
    live.until(lambda: job.settled and live.controller.connection == "connected")
    assert job.state == "finished" and len(job.pasted) == 2 and live.controller.status.startswith("Connected")


def test_previews_and_progress(daemon: RunningDaemon, live: Live) -> None:
    canvas = live.host.active
    assert canvas is not None
    canvas.select(40, 40, 30, 30)
    job = live.controller.generate(Request(model="paced", seed=5))
    assert job is not None
    seen: list[tuple[int, int]] = []
    live.until(lambda: seen.append(live.controller.progress) or job.settled)  # type: ignore[func-returns-value]
    assert (2, 5) in seen and job.fraction == 1.0


def test_a_daemon_refusal_reads_as_a_sentence(live: Live) -> None:
    canvas = live.host.active
    assert canvas is not None
    canvas.select(40, 40, 30, 30)
    job = live.controller.generate(Request(model="no-such-model"))
    assert job is not None
    live.until(lambda: job.done)
    assert job.state == "failed" and job.error.startswith("The daemon does not have this model.")
    assert "unknown_model" not in job.error


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_not_running_then_coming_up_with_retry(tmp_path: Path) -> None:
    port = _free_port()
    live = Live(f"ws://127.0.0.1:{port}")
    controller = live.connect(retry=True)
    assert controller.connection == "disconnected"
    assert f"not running at ws://127.0.0.1:{port}" in controller.status
    assert f"`underpaint serve --port {port}`" in controller.status and "Errno" not in controller.status
    assert controller.generate(Request()) is None and controller.error.startswith("Not connected")
    from underpaint.daemon.config import DaemonConfig
    from underpaint.daemon.server import Daemon, DaemonThread
    from underpaint.engines.classical import ClassicalEngine

    config = DaemonConfig(port=port, token_file=tmp_path / "token", outputs=None)
    thread = DaemonThread(Daemon(config, [ClassicalEngine()], "classical")).start()
    try:
        live.until(lambda: controller.connection == "connected", timeout=30)
        assert [m["id"] for m in controller.models] == ["classical"] and controller.error == ""
    finally:
        controller.close()
        thread.stop()


def test_wrong_token_is_refused_for_good(tmp_path: Path) -> None:
    running = start_daemon(tmp_path, host="0.0.0.0")
    try:
        live = Live(f"ws://127.0.0.1:{running.thread.daemon.port}", "wrong")
        controller = live.connect(retry=True)
        assert controller.connection == "refused" and "underpaint token" in controller.status
    finally:
        running.thread.stop()


def test_an_http_address_is_refused_at_once() -> None:
    live = Live(DEFAULT_URL.replace("ws://", "http://"))
    live.controller.connect(live.url)
    assert live.controller.connection == "refused" and "starts with ws://" in live.controller.status


@pytest.mark.parametrize("http_version", ["HTTP/1.1", "HTTP/1.0"])
def test_another_web_server_on_the_port_is_named(http_version: str) -> None:
    class Gradio(http.server.BaseHTTPRequestHandler):
        protocol_version = http_version

        def do_GET(self) -> None:
            body = json.dumps({"app": "gradio"}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Gradio)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        live = Live(f"ws://127.0.0.1:{server.server_address[1]}")
        controller = live.connect(retry=True)
        assert controller.connection == "refused"
        assert f"127.0.0.1:{server.server_address[1]} answers as a web server" in controller.status
        assert "HTTP 200), not underpaint" in controller.status
    finally:
        server.shutdown()


def test_history_fetches_a_job_this_session_already_received(live: Live) -> None:
    """The client drops repeats when it catches up after a reconnect; a history view that asks for a
    job of this very session must still get every result and the end."""
    canvas = live.host.active
    assert canvas is not None
    canvas.select(60, 40, 30, 20)
    job = live.controller.generate(Request(seed=11, batch=2))
    assert job is not None
    live.until(lambda: job.settled)
    assert job.state == "finished", job.error
    live.controller.refresh_history()
    live.until(lambda: any(item.job_id == job.job_id for item in live.controller.history))
    item = next(item for item in live.controller.history if item.job_id == job.job_id)
    live.controller.fetch_history(item)
    live.until(lambda: len(item.results) == 2 and not item.fetching)
    assert [result.seed for result in item.results] == [11, 12]
    assert [bytes(r.image.data) for r in item.results] == [bytes(r.image.data) for r in job.results]
