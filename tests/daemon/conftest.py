"""A real daemon on a real loopback socket for each test module, plus clients to talk to it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from websockets.sync.client import ClientConnection, connect

from tests.daemon.engines import PacedEngine
from underpaint.daemon.config import DaemonConfig
from underpaint.daemon.server import Daemon, DaemonThread
from underpaint.engines.base import Engine
from underpaint.engines.classical import ClassicalEngine
from underpaint_protocol import PROTOCOL_VERSION
from underpaint_protocol.client import UnderpaintClient
from underpaint_protocol.messages import Limits
from underpaint_protocol.session import Event

SMALL_LIMITS = Limits(max_frame_bytes=4 * 1024 * 1024, max_upload_pixels=1024 * 1024, max_canvas_side=20000)


@dataclass
class RunningDaemon:
    thread: DaemonThread
    paced: PacedEngine
    outputs: Path

    @property
    def url(self) -> str:
        return self.thread.url

    @property
    def token(self) -> str:
        return self.thread.daemon.token


def start_daemon(
    tmp_path: Path,
    host: str = "127.0.0.1",
    limits: Limits = SMALL_LIMITS,
    paced: PacedEngine | None = None,
    engines: list[Engine] | None = None,
    default_model: str = "classical",
    **settings: Any,
) -> RunningDaemon:
    """The one way tests start a daemon: classical + paced engines (or ``engines``), outputs under
    ``tmp_path``; ``settings`` override other ``DaemonConfig`` fields (timeouts, outgoing_bytes...)."""
    paced = paced or PacedEngine()
    settings.setdefault("styles_file", tmp_path / "config" / "styles.json")
    settings.setdefault("history_file", tmp_path / "data" / "history.jsonl")
    config = DaemonConfig(
        host=host,
        port=0,
        token_file=tmp_path / "config" / "token",
        outputs=tmp_path / "outputs",
        limits=limits,
        **settings,
    )
    served = engines if engines is not None else [ClassicalEngine(), paced]
    thread = DaemonThread(Daemon(config, served, default_model)).start()
    return RunningDaemon(thread, paced, tmp_path / "outputs")


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[RunningDaemon]:
    running = start_daemon(tmp_path)
    yield running
    running.thread.stop()


def wait_until(predicate: Callable[[], bool], timeout: float = 20.0, context: Callable[[], str] = str) -> None:
    """The one wait helper: poll ``predicate`` until true, failing with ``context()`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s; {context()}")
        time.sleep(0.01)


@dataclass
class Recorder:
    """Collects a client's events so tests can wait for a given one."""

    events: list[Event] = field(default_factory=list)

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def of(self, job_id: str, kind: str | None = None) -> list[Event]:
        return [e for e in self.events if e.job_id == job_id and (kind is None or e.type == kind)]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 20.0) -> None:
        wait_until(predicate, timeout, lambda: f"events so far: {[e.message for e in self.events][-10:]}")

    def wait_outcome(self, job_id: str, timeout: float = 20.0) -> Event:
        self.wait_for(lambda: any(e.type in ("finished", "failed", "cancelled") for e in self.of(job_id)), timeout)
        return next(e for e in self.of(job_id) if e.type in ("finished", "failed", "cancelled"))


def client_maker(url: str) -> Iterator[Callable[..., tuple[UnderpaintClient, Recorder]]]:
    """The body of every ``make_client`` fixture: connected clients with recorders, closed afterwards."""
    made: list[UnderpaintClient] = []

    def make(**options: Any) -> tuple[UnderpaintClient, Recorder]:
        recorder = Recorder()
        client = UnderpaintClient(url, client_name="pytest", on_event=recorder, **options)
        client.connect(timeout=10)
        made.append(client)
        return client, recorder

    yield make
    for client in made:
        client.close()


@pytest.fixture
def make_client(daemon: RunningDaemon) -> Iterator[Callable[..., tuple[UnderpaintClient, Recorder]]]:
    yield from client_maker(daemon.url)


@pytest.fixture(scope="module")
def diffusion_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonThread]:
    """A daemon serving the classical fill and the built-in tiny-random diffusion model (the default),
    one per test module: the whole stack, no weights."""
    from underpaint.engines.diffusion import DiffusionEngine

    engines = [ClassicalEngine(), DiffusionEngine(sources=["tiny-random"], device="cpu")]
    running = start_daemon(
        tmp_path_factory.mktemp("diffusion-daemon"), limits=Limits(), engines=engines, default_model="tiny-random"
    )
    yield running.thread
    running.thread.stop()


@pytest.fixture
def diffusion_client(diffusion_daemon: DaemonThread) -> Iterator[tuple[UnderpaintClient, Recorder]]:
    """A connected client of ``diffusion_daemon`` and its events."""
    recorder = Recorder()
    connected = UnderpaintClient(diffusion_daemon.url, client_name="pytest", on_event=recorder)
    connected.connect()
    yield connected, recorder
    connected.close()


def raw_connect(url: str, origin: str | None = None) -> ClientConnection:
    headers = {"Origin": origin} if origin is not None else None
    return connect(url, compression=None, max_size=None, additional_headers=headers, open_timeout=5)


def hello(token: str | None = None, **extra: Any) -> str:
    message: dict[str, Any] = {"type": "hello", "protocol": PROTOCOL_VERSION, "client": {"name": "raw-test"}}
    if token is not None:
        message["token"] = token
    message.update(extra)
    return json.dumps(message)


def greeted(url: str, **options: Any) -> ClientConnection:
    connection = raw_connect(url)
    connection.send(hello(**options))
    welcome = json.loads(connection.recv(timeout=5))
    assert welcome["type"] == "welcome", welcome
    return connection


def recv_json(connection: ClientConnection, timeout: float = 5) -> dict[str, Any]:
    frame = connection.recv(timeout=timeout)
    assert isinstance(frame, str), "expected a text frame"
    return json.loads(frame)


def photo_like(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A smooth RGBA test canvas with some texture (gradients plus noise)."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width]
    rgb = np.stack([xs * 255 // max(width - 1, 1), ys * 255 // max(height - 1, 1), (xs + ys) % 256], axis=-1)
    rgb = np.clip(rgb + rng.integers(-12, 13, rgb.shape), 0, 255).astype(np.uint8)
    return np.dstack([rgb, np.full((height, width), 255, np.uint8)])


def submit_job(
    client: UnderpaintClient,
    job: dict[str, Any],
    canvas: np.ndarray | None,
    mask: np.ndarray | None = None,
    image_format: str = "rgba8",
) -> dict[str, Any]:
    """Plan, upload exactly the planned region, submit; returns the `accepted` message."""
    from underpaint_protocol.session import ImageData

    planned = client.plan(job).result(timeout=10)
    upload = planned["upload"]
    image_data = mask_data = None
    if upload["width"] and upload["height"] and canvas is not None:
        rows = slice(upload["y"], upload["y"] + upload["height"])
        cols = slice(upload["x"], upload["x"] + upload["width"])
        region = np.ascontiguousarray(canvas[rows, cols])
        if image_format == "png":
            import io

            from PIL import Image

            buffer = io.BytesIO()
            Image.fromarray(region, "RGBA").save(buffer, "PNG")
            image_data = ImageData("png", region.shape[1], region.shape[0], buffer.getvalue())
        else:
            image_data = ImageData("rgba8", region.shape[1], region.shape[0], region.tobytes())
        if mask is not None:
            part = np.ascontiguousarray(mask[rows, cols])
            mask_data = ImageData("gray8", part.shape[1], part.shape[0], part.tobytes())
    return client.submit(job, upload if image_data else None, image_data, mask_data).result(timeout=30)


def layer_array(event: Event) -> np.ndarray:
    assert event.image is not None
    pixels = np.frombuffer(event.image.data, np.uint8).reshape(event.image.height, event.image.width, 4)
    return pixels[..., [2, 1, 0, 3]] if event.image.format == "bgra8" else pixels
