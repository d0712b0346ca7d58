"""The I/O shell around one client's websocket.

Frames go into the sans-I/O ``ConnectionProtocol``; what comes out is acted upon with the
``JobManager`` and answered through one outgoing queue, so replies and job events reach the client
in the order they happened. Image encoding that could stall the event loop (PNG) runs in a thread.

Nothing a peer sends may cost the daemon more than it weighs: the outgoing queue has a byte
budget and every send a deadline (a client that stops reading is dropped, its jobs keep running and
their results stay fetchable), progress and queue positions not yet sent are replaced by newer
ones, and a peer that says nothing useful in time (no ``hello``, announced frames that never come)
is answered and closed or its submit dropped.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from underpaint.canvas.controls import control_region
from underpaint.daemon import auth
from underpaint.daemon.config import Timeouts
from underpaint.daemon.images import decode_attachment, encode_image
from underpaint.daemon.live import LiveSession
from underpaint.daemon.logs import sanitise
from underpaint.daemon.manager import JobManager
from underpaint.daemon.protocol import (
    ConnectionProtocol,
    Event,
    HelloReceived,
    Reply,
    RequestReceived,
    SubmitReceived,
)
from underpaint.daemon.records import Outgoing, to_box, to_wire_rect
from underpaint.errors import JobError
from underpaint.library import styles
from underpaint_protocol import messages as wire
from underpaint_protocol.frames import Attachment, encode_frame

log = logging.getLogger("underpaint.connection")

POLICY_VIOLATION = 1008
INTERNAL_ERROR = 1011


@dataclass(frozen=True)
class ConnectionContext:
    """The little a connection needs from its daemon."""

    manager: JobManager
    limits: wire.Limits
    token: str
    loopback: bool
    """Whether the daemon listens on loopback only (then local clients need no token)."""
    welcome: Callable[[str], wire.Welcome]
    timeouts: Timeouts
    outgoing_bytes: int
    """Budget of queued, unsent bytes per connection; beyond it the peer is too slow and is dropped.
    One result larger than the whole budget may wait besides (a 4096 x 4096 RGBA layer is 64 MiB)."""


@dataclass(frozen=True)
class _Close:
    code: int
    reason: str


@dataclass
class _Slot:
    """One queued item; a progress or position update not yet sent is replaced in its slot."""

    item: Outgoing | _Close
    size: int


def _size(outgoing: Outgoing) -> int:
    return 512 + (outgoing.pixels.nbytes if outgoing.pixels is not None else 0)


def _coalescing_key(outgoing: Outgoing) -> tuple[str, str] | None:
    message = outgoing.message
    if isinstance(message, wire.Progress | wire.Queued):
        return message.type, message.job_id
    if isinstance(message, wire.LiveResult):  # latest wins on the way out too
        return message.type, message.session_id
    return None


class ClientHandler:
    """Serves one client's websocket (named apart from websockets' own ``ClientConnection``)."""

    def __init__(self, websocket: ServerConnection, context: ConnectionContext) -> None:
        self.websocket = websocket
        self.context = context
        self.protocol = ConnectionProtocol(context.limits.max_frame_bytes)
        self.client_id: str | None = None
        self.client_name = "?"
        self.result_format = "rgba8"
        self.previews = True
        self._frames_sent = 0
        self._queue: deque[_Slot] = deque()
        self._coalescing: dict[tuple[str, str], _Slot] = {}
        self._queued_bytes = 0
        self._large: _Slot | None = None
        """The one waiting item larger than the whole budget, not counted in ``_queued_bytes``."""
        self._wake = asyncio.Event()
        self._space = asyncio.Event()
        self._space.set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._dropped = False
        self._writing = True
        self._tasks: set[asyncio.Task[None]] = set()
        self.live: LiveSession | None = None
        """This connection's live session while one runs."""

    # ------------------------------------------------------------ reading

    async def run(self) -> None:
        writer = asyncio.create_task(self._write_loop())
        try:
            while not self._dropped:
                events = await self._next_events()
                if events is None:
                    break
                for event in events:
                    await self._handle_safely(event)
        except ConnectionClosed:
            pass
        finally:
            self._end_live("disconnected")  # frees the device at once; nobody is left to tell
            if self.client_id is not None:
                self.context.manager.unsubscribe(self.client_id, self._sink)
                log.info("%s disconnected", self.client_name)
            self._put(None)
            await asyncio.gather(writer, return_exceptions=True)

    async def _next_events(self) -> list[Event] | None:
        """The events of the next frame, or of a deadline that passed; None once the peer is refused."""
        timeouts = self.context.timeouts
        if not self.protocol.greeted:
            timeout: float | None = timeouts.hello
        elif self.protocol.awaiting_frames:
            timeout = timeouts.frames
        else:
            timeout = None  # an idle client is fine; websockets' keepalive pings catch half-open sockets
        try:
            frame = await asyncio.wait_for(self.websocket.recv(), timeout)  # recv() is cancellation-safe
        except asyncio.TimeoutError:  # not the builtin before Python 3.11
            if not self.protocol.greeted:
                message = f"the first message must be hello, within {timeouts.hello:g} s"
                self._reply(wire.Error(code="handshake_required", message=message, field="type"))
                self._put(_Close(POLICY_VIOLATION, "no hello in time"))
                return None
            return self.protocol.frames_overdue(timeouts.frames)
        try:
            if isinstance(frame, str):
                return self.protocol.receive_text(frame)
            return self.protocol.receive_binary(frame)
        except Exception:  # boundary: a daemon bug on one frame must not kill the connection
            log.exception("could not process a frame from %s", self.client_name)
            return [Reply(wire.Error(code="internal_error", message="the daemon failed on this message"))]

    async def _handle_safely(self, event: Event) -> None:
        try:
            await self._handle(event)
        except Exception:  # boundary: answer, log, and keep serving this client
            log.exception("could not serve a request from %s", self.client_name)
            self._reply(wire.Error(code="internal_error", message="the daemon failed on this request; see its log"))

    async def _handle(self, event: Event) -> None:
        if isinstance(event, Reply):
            self._reply(event.message)
            if event.close:
                self._put(_Close(POLICY_VIOLATION, event.message.code))
        elif isinstance(event, HelloReceived):
            self._hello(event.hello)
        elif isinstance(event, RequestReceived):
            await self._request(event.message)
        elif isinstance(event, SubmitReceived):
            await self._submit(event)

    def _hello(self, hello: wire.Hello) -> None:
        origin = self.websocket.request.headers.get("Origin") if self.websocket.request else None
        token_ok = auth.token_matches(self.context.token, hello.token)
        if auth.token_required(origin, self.context.loopback) and not token_ok:
            why = f"a connection from origin {origin!r}" if origin is not None else "a non-loopback daemon"
            self._reply(
                wire.Error(
                    code="unauthorized",
                    message=f"{sanitise(why, 200)} must present the daemon's token (run `underpaint token` to see it)",
                    field="token",
                )
            )
            self._put(_Close(POLICY_VIOLATION, "unauthorized"))
            log.warning("refused %s: missing or wrong token (origin %s)", sanitise(hello.client.name), sanitise(origin))
            return
        self.protocol.handshake_done()
        self.client_id = hello.client_id or secrets.token_urlsafe(18)
        name = hello.client.name + (f" in {hello.host.name} {hello.host.version}" if hello.host else "")
        self.client_name = sanitise(name)
        self.result_format = hello.result_format
        self.previews = hello.previews
        self.context.manager.subscribe(self.client_id, self._sink)
        self._reply(self.context.welcome(self.client_id))
        log.info("%s connected", self.client_name)

    async def _request(self, message: Any) -> None:
        manager = self.context.manager
        assert self.client_id is not None
        try:
            if isinstance(message, wire.PlanRequest):
                plan = manager.plan(message.job).plan
                self._reply(
                    wire.Planned(
                        request_id=message.request_id,
                        upload=to_wire_rect(plan.upload),
                        work=to_wire_rect(plan.work),
                        canvas=to_wire_rect(plan.new_canvas),
                        model_width=plan.model_width,
                        model_height=plan.model_height,
                        control=to_wire_rect(control_region(plan)) if message.job.controls else None,
                    )
                )
            elif isinstance(message, wire.Cancel):
                manager.cancel(self.client_id, message.job_id)
            elif isinstance(message, wire.ListJobs):
                self._reply(wire.Jobs(request_id=message.request_id, jobs=manager.list_jobs(self.client_id)))
            elif isinstance(message, wire.Fetch):
                await self._replay(await manager.fetch(self.client_id, message.job_id))
            elif isinstance(message, wire.StylesRequest):
                self._reply(styles.answer(manager.styles, message))
            elif isinstance(message, wire.LorasRequest):
                loras = await asyncio.to_thread(manager.loras)  # reads file headers
                self._reply(wire.LoraList(request_id=message.request_id, loras=loras))
            elif isinstance(message, wire.LiveStop):
                self._end_live("stopped", message.request_id)
            elif isinstance(message, wire.HistoryRequest):
                entries = manager.history.recent(message.limit) if manager.history is not None else []
                self._reply(wire.HistoryList(request_id=message.request_id, entries=entries))
        except JobError as error:
            self._reply(
                wire.Error(
                    code=error.code,
                    message=error.message,
                    field=error.field,
                    request_id=getattr(message, "request_id", None),
                    job_id=getattr(message, "job_id", None),
                )
            )

    async def _replay(self, items: Iterable[Outgoing]) -> None:
        """Queue a fetch's results one at a time as the budget allows (a large job must not count
        as a slow reader)."""
        for outgoing in items:
            while self._queue and self._queued_bytes + _size(outgoing) > self.context.outgoing_bytes:
                if self._dropped or not self._writing:
                    return
                self._space.clear()
                await self._space.wait()
            self._put(outgoing)

    async def _interrogate_safely(self, event: SubmitReceived) -> None:
        try:
            await self._interrogate(event)
        except Exception:  # boundary: answer, log, and keep serving this client
            log.exception("could not interrogate for %s", self.client_name)
            message = "the daemon failed on this request; see its log"
            assert isinstance(event.submit, wire.InterrogateRequest)
            self._reply(wire.Error(code="internal_error", message=message, request_id=event.submit.request_id))

    async def _interrogate(self, event: SubmitReceived) -> None:
        request = event.submit
        assert isinstance(request, wire.InterrogateRequest)
        try:
            arrays: dict[str, np.ndarray] = {}
            for name, (attachment, payload) in event.frames.items():
                arrays[name] = await asyncio.to_thread(
                    decode_attachment, attachment, payload, name, self.context.limits.max_upload_pixels
                )
            found = await self.context.manager.interrogate(arrays["image"], arrays.get("mask"), request.flavours)
        except JobError as error:
            self._reply(
                wire.Error(code=error.code, message=error.message, field=error.field, request_id=request.request_id)
            )
            return
        self._reply(
            wire.Interrogated(
                request_id=request.request_id, prompt=found.prompt, caption=found.caption, terms=found.terms
            )
        )

    async def _submit(self, event: SubmitReceived) -> None:
        if isinstance(event.submit, wire.InterrogateRequest):
            # seconds of work: the connection keeps reading (a cancel must not wait behind it)
            task = asyncio.create_task(self._interrogate_safely(event))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        if isinstance(event.submit, wire.LiveStart):
            await self._live_start(event.submit, event)
            return
        if isinstance(event.submit, wire.LiveFrame):
            await self._live_frame(event.submit, event)
            return
        submit = event.submit
        limits = self.context.limits
        assert self.client_id is not None
        try:
            arrays: dict[str, np.ndarray] = {}
            for name, (attachment, payload) in event.frames.items():
                if attachment.format == "png":
                    arrays[name] = await asyncio.to_thread(
                        decode_attachment, attachment, payload, name, limits.max_upload_pixels
                    )
                else:
                    arrays[name] = decode_attachment(attachment, payload, name, limits.max_upload_pixels)
            job = self.context.manager.submit(
                self.client_id,
                submit,
                arrays.get("image"),
                arrays.get("mask"),
                [arrays[f"controls.{index}"] for index in range(len(submit.controls))],
                [arrays[f"references.{index}"] for index in range(len(submit.references))],
            )
        except JobError as error:
            self._reply(
                wire.Error(code=error.code, message=error.message, field=error.field, request_id=submit.request_id)
            )
            return
        self._reply(wire.Accepted(request_id=submit.request_id, job_id=job.id, seed=job.seed))
        position = self.context.manager.announce_position(job)
        if position is not None:
            self._reply(wire.Queued(job_id=job.id, position=position))

    # ------------------------------------------------------------ live painting (daemon/live.py)

    async def _decode(self, event: SubmitReceived, name: str) -> np.ndarray:
        attachment, payload = event.frames[name]
        limit = self.context.limits.max_upload_pixels
        if attachment.format == "png":
            return await asyncio.to_thread(decode_attachment, attachment, payload, name, limit)
        return decode_attachment(attachment, payload, name, limit)

    async def _live_start(self, start: wire.LiveStart, event: SubmitReceived) -> None:
        assert self.client_id is not None
        self._end_live("restarted")
        try:
            mask = await self._decode(event, "mask") if "mask" in event.frames else None
            session = self.context.manager.start_live(self.client_id, start, mask, self._live_publish)
        except JobError as error:
            self._reply(
                wire.Error(code=error.code, message=error.message, field=error.field, request_id=start.request_id)
            )
            return
        self.live = session
        region = to_wire_rect(session.region)
        self.protocol.live_started(session.id, region)
        generation = session.generation
        self._reply(
            wire.LiveStarted(
                request_id=start.request_id,
                session_id=session.id,
                region=region,
                work=to_wire_rect(session.plan.work),
                model=session.model.id,
                mode=generation.mode.value,
                model_width=session.plan.model_width,
                model_height=session.plan.model_height,
                seed=generation.seed,
                steps=generation.steps,
                guidance=generation.guidance,
                strength=generation.strength,
                decoder=session.engine.live_decoder(session.model.id),
            )
        )

    async def _live_frame(self, frame: wire.LiveFrame, event: SubmitReceived) -> None:
        session, rules = self.live, self.protocol.live
        assert session is not None and rules is not None  # the protocol passes frames only while live
        try:
            pixels = await self._decode(event, "image")
        except JobError as error:
            self._reply(wire.Error(code=error.code, message=error.message, field=error.field))
            return
        if self.live is not session:
            return  # the session ended while a PNG was decoding
        rules.accept(frame)
        rect = to_box(frame.rect)
        assert rect is not None
        self.context.manager.live_frame(session, frame.seq, rect, pixels)

    def _end_live(self, reason: str, request_id: str | None = None) -> None:
        """End this connection's live session (if any) and answer ``live_stopped`` (unless disconnected)."""
        session, self.live = self.live, None
        self.protocol.live_ended()
        if session is None:
            return
        stopped = self.context.manager.stop_live(session, reason, request_id)
        if stopped is not None and reason != "disconnected":
            self._reply(stopped)

    def _live_publish(self, message: Any, pixels: np.ndarray | None) -> None:
        """The session's events, from a worker thread: handed to the loop, for this connection only."""
        self.context.manager.loop.call_soon_threadsafe(self._live_event, Outgoing(message, pixels))

    def _live_event(self, outgoing: Outgoing) -> None:
        message = outgoing.message
        if isinstance(message, wire.LiveResult) and (self.live is None or self.live.id != message.session_id):
            return  # finished as the session stopped (or was replaced): nothing follows live_stopped
        if isinstance(message, wire.LiveStopped) and self.live is not None and self.live.id == message.session_id:
            session, self.live = self.live, None  # a frame failed: the session is over
            self.protocol.live_ended()
            self.context.manager.stop_live(session, "failed")  # stopped already: this only forgets it
        self._put(outgoing)

    # ------------------------------------------------------------ the outgoing queue

    def _sink(self, outgoing: Outgoing) -> None:
        """Job events from the manager (on the loop)."""
        self._put(outgoing)

    def _reply(self, message: Any) -> None:
        self._put(Outgoing(message))

    def _put(self, item: Outgoing | _Close | None) -> None:
        if self._dropped:
            return
        if item is None or isinstance(item, _Close):
            self._queue.append(_Slot(item if item is not None else _Close(0, ""), 0))
            self._idle.clear()
            self._wake.set()
            return
        size = _size(item)
        key = _coalescing_key(item)
        if key is not None and key in self._coalescing:
            slot = self._coalescing[key]
            self._queued_bytes += size - slot.size
            slot.item, slot.size = item, size
            return
        budget = self.context.outgoing_bytes
        large = key is None and size > budget  # a result no budget would hold: it waits alone
        if large and self._large is not None:
            self._drop("a second result larger than the event budget waits behind the first")
            return
        if not large and self._queue and self._queued_bytes + size > budget:
            self._drop(f"more than {budget // 2**20} MB of events waiting to be read")
            return
        slot = _Slot(item, size)
        if key is not None:
            self._coalescing[key] = slot
        self._queue.append(slot)
        if large:
            self._large = slot
        else:
            self._queued_bytes += size
        self._idle.clear()
        self._wake.set()

    def _drop(self, why: str) -> None:
        """Disconnect a peer that does not read (its jobs keep running; results stay fetchable)."""
        if self._dropped:
            return
        self._dropped = True
        log.warning("%s dropped: it does not read its events (%s); its results stay fetchable", self.client_name, why)
        self._queue.clear()
        self._coalescing.clear()
        self._queued_bytes = 0
        self._large = None
        self._idle.set()
        self._space.set()
        self._wake.set()
        self.websocket.transport.abort()

    async def _write_loop(self) -> None:
        try:
            await self._write_all()
        finally:
            self._writing = False
            self._space.set()  # a fetch waiting for room must not wait for a writer that is gone
            self._idle.set()

    async def _write_all(self) -> None:
        while True:
            while not self._queue:
                if self._dropped:
                    return
                self._wake.clear()
                self._idle.set()
                await self._wake.wait()
            slot = self._queue.popleft()
            item = slot.item
            if isinstance(item, Outgoing):
                key = _coalescing_key(item)
                if key is not None and self._coalescing.get(key) is slot:
                    del self._coalescing[key]
            if slot is self._large:
                self._large = None
            else:
                self._queued_bytes -= slot.size
            self._space.set()
            if isinstance(item, _Close):
                if item.code:
                    await self._close(item)
                self._idle.set()
                return
            try:
                await asyncio.wait_for(self._send(item), self.context.timeouts.send)
            except asyncio.TimeoutError:  # not the builtin before Python 3.11
                self._drop(f"a send took over {self.context.timeouts.send:g} s")
                return
            except ConnectionClosed:
                self._idle.set()
                return
            except Exception:  # boundary: one message that cannot be sent must not silence the rest
                log.exception("could not send a %s to %s", type(item.message).__name__, self.client_name)

    async def _close(self, item: _Close) -> None:
        try:
            await asyncio.wait_for(self.websocket.close(item.code, item.reason), self.context.timeouts.send)
        except (asyncio.TimeoutError, ConnectionClosed):
            self.websocket.transport.abort()

    @property
    def sending(self) -> bool:
        """Whether events are still waiting to be written to this client."""
        return not self._idle.is_set()

    async def drained(self) -> None:
        """Wait until everything queued for this client was written (or the socket is gone)."""
        await self._idle.wait()

    async def _send(self, outgoing: Outgoing) -> None:
        message, pixels = outgoing.message, outgoing.pixels
        frame = None
        if pixels is not None and (self.previews or not isinstance(message, wire.Progress)):
            image_format = self.result_format
            if image_format == "png" and pixels.size > 64 * 64 * 4:
                payload = await asyncio.to_thread(encode_image, pixels, image_format)
            else:
                payload = encode_image(pixels, image_format)
            self._frames_sent += 1
            height, width = pixels.shape[:2]
            attachment = Attachment(f"f{self._frames_sent}", image_format, width, height)
            ref = wire.AttachmentRef(**attachment.as_dict())  # type: ignore[arg-type]
            if isinstance(message, wire.Progress):
                message = message.model_copy(update={"preview": ref})
            else:
                message = message.model_copy(update={"layer": message.layer.model_copy(update={"image": ref})})
            frame = encode_frame(attachment, payload)
        await self.websocket.send(message.model_dump_json())
        if frame is not None:
            await self.websocket.send(frame)
