"""The daemon's live painting without sockets or threads: the connection's frame rules and the session.

``ConnectionProtocol`` decides which ``live_frame`` messages a session takes; ``LiveSession`` keeps
the region, lets the newest frame win and runs one frame per turn. Both are driven directly here.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import numpy as np

from underpaint.canvas import plan_job
from underpaint.canvas.geometry import Box
from underpaint.canvas.plan import BlendSettings, ModelResolution
from underpaint.daemon.live import LiveSession
from underpaint.daemon.protocol import ConnectionProtocol, Reply, SubmitReceived
from underpaint.engines.base import Engine, GenerationInput, JobCancelled, LiveModel, ModelInfo
from underpaint.errors import JobError
from underpaint.modes import Mode
from underpaint_protocol import PROTOCOL_VERSION
from underpaint_protocol.frames import Attachment, encode_frame
from underpaint_protocol.messages import Rect

REGION = Rect(x=10, y=20, width=32, height=24)


def greeted() -> ConnectionProtocol:
    protocol = ConnectionProtocol(1 << 20)
    hello = {"type": "hello", "protocol": PROTOCOL_VERSION, "client": {"name": "t"}}
    assert protocol.receive_text(json.dumps(hello))
    protocol.handshake_done()
    return protocol


def frame(seq: int, x: int, y: int, width: int, height: int, image: tuple[int, int] | None = None) -> tuple[str, bytes]:
    w, h = image or (width, height)
    attachment = Attachment(f"live-{seq}", "rgba8", w, h)
    rect = {"x": x, "y": y, "width": width, "height": height}
    text = json.dumps({"type": "live_frame", "seq": seq, "rect": rect, "image": attachment.as_dict()})
    return text, b"".join(bytes(part) for part in encode_frame(attachment, bytes(w * h * 4)))


def send(protocol: ConnectionProtocol, message: tuple[str, bytes]) -> list[Any]:
    text, binary = message
    return [*protocol.receive_text(text), *protocol.receive_binary(binary)]


def error_of(events: list[Any]) -> tuple[str, str | None]:
    assert len(events) == 1 and isinstance(events[0], Reply), events  # the frame's pixels were swallowed quietly
    return events[0].message.code, events[0].message.field


def test_frames_need_a_session_and_its_pixels_are_swallowed() -> None:
    protocol = greeted()
    assert error_of(send(protocol, frame(1, 10, 20, 32, 24))) == ("no_live_session", "type")
    events = protocol.receive_text(json.dumps({"type": "live_stop", "request_id": "s"}))
    assert error_of(events) == ("no_live_session", "type") and events[0].message.request_id == "s"
    assert not protocol.awaiting_frames


def test_the_first_frame_covers_the_region_then_any_part_of_it_with_rising_seq() -> None:
    protocol = greeted()
    protocol.live_started("s1", REGION)
    assert error_of(send(protocol, frame(1, 10, 20, 8, 8))) == ("invalid_field", "rect")
    assert error_of(send(protocol, frame(1, 10, 20, 32, 24, image=(31, 24)))) == ("size_mismatch", "image")
    events = send(protocol, frame(1, 10, 20, 32, 24))
    assert len(events) == 1 and isinstance(events[0], SubmitReceived)
    assert protocol.live is not None
    protocol.live.accept(events[0].submit)  # the shell took it
    assert error_of(send(protocol, frame(1, 12, 22, 4, 4))) == ("invalid_field", "seq")
    assert error_of(send(protocol, frame(5, 40, 20, 4, 4))) == ("invalid_field", "rect")  # leaves the region
    assert error_of(send(protocol, frame(5, 12, 22, 0, 4, image=(1, 4)))) == ("invalid_field", "rect")
    events = send(protocol, frame(7, 38, 40, 4, 4))  # gaps in seq are fine
    assert isinstance(events[0], SubmitReceived)
    protocol.live_ended()
    assert error_of(send(protocol, frame(8, 12, 22, 4, 4))) == ("no_live_session", "type")


class Recording(Engine):
    """A real engine whose output is its input; ``during`` runs inside a frame (a frame arriving meanwhile)."""

    name = "recording"

    def __init__(self) -> None:
        self.during: Any = None
        self.opened = 0
        self.fail: JobError | None = None

    def models(self) -> list[ModelInfo]:
        return [ModelInfo("rec", self.name, "test", (Mode.IMG2IMG,), "", 1, 0.0)]

    def resolution(self, model: str) -> ModelResolution:
        return ModelResolution(pixel_budget=64 * 48)

    def generate(self, job, batch_count, on_progress, cancel):  # type: ignore[no-untyped-def]
        if self.during is not None:
            self.during()
        if self.fail is not None:
            raise self.fail
        if cancel.is_set():
            raise JobCancelled()
        assert job.image is not None
        yield job.image.copy()

    def open_live(self, job: GenerationInput) -> LiveModel:
        self.opened += 1
        return super().open_live(job)


def session(engine: Recording) -> tuple[LiveSession, list[Any]]:
    plan = plan_job(Mode.IMG2IMG, 64, 48, None, None, 0.6, engine.resolution("rec"), BlendSettings())
    size = (plan.model_width, plan.model_height)
    generation = GenerationInput(Mode.IMG2IMG, "rec", "", "", 1, 1, 0.0, 0.6, *size, None, None)
    published: list[Any] = []
    live = LiveSession(
        "s1",
        "owner",
        engine.models()[0],
        engine,
        plan,
        generation,
        None,
        lambda message, pixels: published.append((message, pixels)),
        "Live",
    )
    return live, published


def rgba(height: int, width: int, value: int) -> np.ndarray:
    pixels = np.full((height, width, 4), value, np.uint8)
    pixels[..., 3] = 255
    return pixels


def test_the_newest_frame_wins_and_stale_ones_are_counted() -> None:
    engine = Recording()
    live, published = session(engine)
    whole = Box(0, 0, 64, 48)
    assert live.patch(1, whole, rgba(48, 64, 10))  # queue a turn
    assert not live.patch(2, Box(0, 0, 8, 8), rgba(8, 8, 200))  # a turn is queued already
    assert not live.patch(3, Box(8, 0, 8, 8), rgba(8, 8, 100))
    assert not live.run_turn()  # ran frame 3 with every patch applied; nothing newer came
    ((result, pixels),) = published
    assert (result.seq, result.frames, result.dropped) == (3, 3, 2)
    centres = [int(pixels[y, x, 0]) for y, x in ((3, 3), (3, 12), (30, 40))]  # scaled to model size and back
    assert np.allclose(centres, [200, 100, 10], atol=16), centres
    assert engine.opened == 1
    engine.during = lambda: live.patch(4, Box(0, 0, 4, 4), rgba(4, 4, 50))  # a frame arrives mid-run
    assert live.patch(5, Box(0, 0, 4, 4), rgba(4, 4, 60))
    assert live.run_turn(lambda: False), "frame 4 came while 5 ran and another client waits: back in line"
    engine.during = None
    assert not live.run_turn()
    assert [message.seq for message, _ in published] == [3, 5, 4]
    assert (published[-1][0].frames, published[-1][0].dropped) == (5, 2)
    assert engine.opened == 1, "the session's model is set up once"


def test_frames_run_back_to_back_while_nobody_else_waits() -> None:
    engine = Recording()
    live, published = session(engine)
    arriving = iter(range(2, 5))

    def stroke() -> None:  # a newer frame arrives during each model call, until frame 4
        seq = next(arriving, None)
        if seq is not None:
            assert not live.patch(seq, Box(0, 0, 4, 4), rgba(4, 4, seq * 10)), "the running turn takes it"

    engine.during = stroke
    assert live.patch(1, Box(0, 0, 64, 48), rgba(48, 64, 1))
    asked: list[bool] = []
    assert not live.run_turn(lambda: asked.append(True) or True), "one turn ran every frame"
    assert [message.seq for message, _ in published] == [1, 2, 3, 4]
    assert len(asked) == 3, "asked whether another client waits before each frame after the first"
    assert live.results == 4 and live.dropped == 0


def test_results_are_finished_off_the_worker_while_the_next_frame_runs() -> None:
    engine = Recording()
    live, published = session(engine)
    release = threading.Event()
    finishing: list[str] = []
    in_model: list[int] = []

    def publish(message: Any, pixels: Any) -> None:  # the connection is slow to take frame 1's result
        finishing.append(threading.current_thread().name)
        if message.seq == 1:
            release.wait(10)
        published.append((message, pixels))

    def during() -> None:
        in_model.append(len(published))
        if len(in_model) == 1:
            live.patch(2, Box(0, 0, 4, 4), rgba(4, 4, 20))
        else:
            release.set()  # frame 2's model call runs while frame 1 still finishes

    live.publish = publish
    engine.during = during
    live.patch(1, Box(0, 0, 64, 48), rgba(48, 64, 1))
    assert not live.run_turn()
    assert in_model == [0, 0], "frame 2 ran before frame 1's result had left"
    assert [message.seq for message, _ in published] == [1, 2]
    assert finishing[0].startswith("live-s1"), "frame 1 finished on the session's finisher thread"
    assert finishing[1] == threading.current_thread().name, "nothing waited after frame 2: finished on the worker"


def test_stop_ends_it_and_nothing_waiting_runs() -> None:
    engine = Recording()
    live, published = session(engine)
    live.patch(1, Box(0, 0, 64, 48), rgba(48, 64, 1))
    assert live.stop() and not live.stop()
    assert not live.run_turn() and not published
    assert not live.patch(2, Box(0, 0, 4, 4), rgba(4, 4, 1))
    assert live.cancel.is_set()


def test_a_failing_frame_ends_the_session_with_its_error() -> None:
    engine = Recording()
    engine.fail = JobError("out_of_memory", "the device ran out of memory")
    live, published = session(engine)
    live.patch(1, Box(0, 0, 64, 48), rgba(48, 64, 1))
    assert not live.run_turn()
    ((message, pixels),) = published
    assert (message.reason, message.code, pixels) == ("failed", "out_of_memory", None)
    assert live.stopped


def test_stop_during_a_frame_publishes_nothing() -> None:
    engine = Recording()
    live, published = session(engine)
    engine.during = live.stop
    live.patch(1, Box(0, 0, 64, 48), rgba(48, 64, 1))
    assert not live.run_turn() and not published


def test_a_turn_taken_by_a_worker_waits_for_its_lock_only() -> None:
    engine = Recording()
    live, _ = session(engine)
    live.patch(1, Box(0, 0, 64, 48), rgba(48, 64, 1))
    worker = threading.Thread(target=live.run_turn)
    worker.start()
    worker.join(10)
    assert not worker.is_alive() and live.results == 1
