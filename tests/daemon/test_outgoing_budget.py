"""The outgoing queue's byte budget (``ClientHandler._put``): a slow reader is dropped once more than the
budget waits, but one result larger than the whole budget (a 4096 x 4096 RGBA layer is 64 MiB, the
default budget) must reach a client that reads, even while a progress event or a small reply waits.
The queue's accounting is tested here without a socket (a recording stand-in for the websocket); the
slow reader against a real daemon is in test_hardening.py."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from underpaint.daemon.connection import ClientHandler
from underpaint.daemon.records import Outgoing
from underpaint_protocol import messages as wire

BUDGET = 1 << 20


class RecordingSocket:
    """What the handler's writer sends, and whether it aborted the connection (a drop)."""

    def __init__(self) -> None:
        self.sent: list[Any] = []
        self.aborted = False
        self.transport = SimpleNamespace(abort=self._abort)

    def _abort(self) -> None:
        self.aborted = True

    async def send(self, data: Any) -> None:
        self.sent.append(data)


def handler() -> tuple[ClientHandler, RecordingSocket]:
    socket = RecordingSocket()
    context = SimpleNamespace(limits=wire.Limits(), outgoing_bytes=BUDGET, timeouts=SimpleNamespace(send=5.0))
    return ClientHandler(socket, context), socket  # type: ignore[arg-type]


def reply(job: str = "j") -> Outgoing:
    return Outgoing(wire.Finished(job_id=job, results=1))


def result(nbytes: int) -> Outgoing:
    """A result whose RGBA layer is ``nbytes`` (rounded to whole rows of 256 pixels)."""
    height = max(1, nbytes // (256 * 4))
    ref = wire.AttachmentRef(id="pending", format="rgba8", width=256, height=height)
    layer = wire.Layer(name="r", x=0, y=0, width=256, height=height, image=ref)
    rect = wire.Rect(x=0, y=0, width=256, height=height)
    message = wire.Result(job_id="r", index=0, layer=layer, canvas=rect, params={})
    return Outgoing(message, np.zeros((height, 256, 4), np.uint8))


def progress(step: int, nbytes: int = 0) -> Outgoing:
    return Outgoing(wire.Progress(job_id="j", step=step, total=9), np.zeros(nbytes, np.uint8) if nbytes else None)


def test_one_result_larger_than_the_budget_waits_beside_what_already_waits() -> None:
    connection, socket = handler()
    connection._put(progress(1))
    connection._put(reply())
    connection._put(result(4 * BUDGET))
    connection._put(reply())  # the budget for everything else is untouched by the large one
    assert not socket.aborted and len(connection._queue) == 4


def test_a_second_large_result_waiting_drops_the_reader() -> None:
    connection, socket = handler()
    connection._put(result(2 * BUDGET))
    connection._put(result(2 * BUDGET))
    assert socket.aborted and not connection._queue


@pytest.mark.parametrize("size", [BUDGET // 2, BUDGET - 1024])
def test_small_items_still_drop_a_reader_past_the_budget(size: int) -> None:
    connection, socket = handler()
    connection._put(result(4 * BUDGET))  # a large one waiting changes nothing for the others
    connection._put(result(size))
    assert not socket.aborted
    connection._put(result(size))
    assert socket.aborted


def test_progress_replaced_in_its_slot_never_counts_as_large() -> None:
    connection, socket = handler()
    connection._put(progress(1, 2 * BUDGET))  # alone: fits, however large
    connection._put(progress(2, 2 * BUDGET))  # replaces it in its slot
    connection._put(result(2 * BUDGET))
    assert not socket.aborted and len(connection._queue) == 2


def test_once_the_writer_took_the_large_result_another_may_wait() -> None:
    async def scenario() -> RecordingSocket:
        connection, socket = handler()
        writer = asyncio.create_task(connection._write_loop())
        connection._put(result(3 * BUDGET))
        await asyncio.wait_for(connection.drained(), 5)
        connection._put(reply())
        connection._put(result(3 * BUDGET))
        await asyncio.wait_for(connection.drained(), 5)
        connection._put(None)  # the writer's end
        await asyncio.wait_for(writer, 5)
        return socket

    socket = asyncio.run(scenario())
    assert not socket.aborted
    frames = [data for data in socket.sent if not isinstance(data, str)]
    assert len(frames) == 2, "both large results went out, each as its frame"
