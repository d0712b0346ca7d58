"""The I/O shell around one client's websocket.

Frames go into the sans-I/O ``ConnectionProtocol``; what comes out is acted upon with the
``JobManager`` and answered through one outgoing queue, so replies and job events reach the client
in the order they happened. Image encoding that could stall the event loop (PNG) runs in a thread.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from underpaint.daemon import auth
from underpaint.daemon.images import decode_attachment, encode_image
from underpaint.daemon.manager import JobManager
from underpaint.daemon.protocol import ConnectionProtocol, HelloReceived, Reply, RequestReceived, SubmitReceived
from underpaint.daemon.records import Outgoing, to_wire_rect
from underpaint.errors import JobError
from underpaint_protocol import messages as wire
from underpaint_protocol.frames import Attachment, encode_frame

log = logging.getLogger("underpaint.connection")

POLICY_VIOLATION = 1008


@dataclass(frozen=True)
class _Close:
    code: int
    reason: str


@dataclass(frozen=True)
class ConnectionContext:
    """The little a connection needs from its daemon."""

    manager: JobManager
    limits: wire.Limits
    token: str
    loopback: bool
    """Whether the daemon listens on loopback only (then local clients need no token)."""
    welcome: Callable[[str], wire.Welcome]


class ClientHandler:
    """Serves one client's websocket (named apart from websockets' own ``ClientConnection``)."""

    def __init__(self, websocket: ServerConnection, context: ConnectionContext) -> None:
        self.websocket = websocket
        self.context = context
        self.protocol = ConnectionProtocol(context.limits.max_frame_bytes)
        self.outgoing: asyncio.Queue[Outgoing | _Close | None] = asyncio.Queue()
        self.client_id: str | None = None
        self.client_name = "?"
        self.result_format = "rgba8"
        self.previews = True
        self._frames_sent = 0

    async def run(self) -> None:
        writer = asyncio.create_task(self._write_loop())
        try:
            async for frame in self.websocket:
                if isinstance(frame, str):
                    events = self.protocol.receive_text(frame)
                else:
                    events = self.protocol.receive_binary(frame)
                for event in events:
                    await self._handle(event)
        except ConnectionClosed:
            pass
        finally:
            if self.client_id is not None:
                self.context.manager.unsubscribe(self.client_id, self._sink)
                log.info("%s disconnected", self.client_name)
            self.outgoing.put_nowait(None)
            await asyncio.gather(writer, return_exceptions=True)

    def _sink(self, outgoing: Outgoing) -> None:
        self.outgoing.put_nowait(outgoing)

    def _reply(self, message: Any) -> None:
        self.outgoing.put_nowait(Outgoing(message))

    async def _handle(self, event: object) -> None:
        if isinstance(event, Reply):
            self._reply(event.message)
            if event.close:
                self.outgoing.put_nowait(_Close(POLICY_VIOLATION, event.message.code))
        elif isinstance(event, HelloReceived):
            self._hello(event.hello)
        elif isinstance(event, RequestReceived):
            self._request(event.message)
        elif isinstance(event, SubmitReceived):
            await self._submit(event)

    def _hello(self, hello: wire.Hello) -> None:
        origin = self.websocket.request.headers.get("Origin") if self.websocket.request else None
        if auth.token_required(origin, self.context.loopback) and not auth.token_matches(
            self.context.token, hello.token
        ):
            why = f"a connection from origin {origin!r}" if origin is not None else "a non-loopback daemon"
            self._reply(
                wire.Error(
                    code="unauthorized",
                    message=f"{why} must present the daemon's token (run `underpaint token` to see it)",
                    field="token",
                )
            )
            self.outgoing.put_nowait(_Close(POLICY_VIOLATION, "unauthorized"))
            log.warning("refused %s: missing or wrong token (origin %s)", hello.client.name, origin)
            return
        self.protocol.handshake_done()
        self.client_id = hello.client_id or secrets.token_urlsafe(18)
        self.client_name = f"{hello.client.name}" + (
            f" in {hello.host.name} {hello.host.version}" if hello.host else ""
        )
        self.result_format = hello.result_format
        self.previews = hello.previews
        self.context.manager.subscribe(self.client_id, self._sink)
        self._reply(self.context.welcome(self.client_id))
        log.info("%s connected", self.client_name)

    def _request(self, message: Any) -> None:
        manager = self.context.manager
        assert self.client_id is not None
        try:
            if isinstance(message, wire.PlanRequest):
                plan, _, _, _ = manager.plan(message.job)
                self._reply(
                    wire.Planned(
                        request_id=message.request_id,
                        upload=to_wire_rect(plan.upload),
                        work=to_wire_rect(plan.work),
                        canvas=to_wire_rect(plan.new_canvas),
                        model_width=plan.model_width,
                        model_height=plan.model_height,
                    )
                )
            elif isinstance(message, wire.Cancel):
                manager.cancel(self.client_id, message.job_id)
            elif isinstance(message, wire.ListJobs):
                self._reply(wire.Jobs(request_id=message.request_id, jobs=manager.list_jobs(self.client_id)))
            elif isinstance(message, wire.Fetch):
                for outgoing in manager.fetch(self.client_id, message.job_id):
                    self.outgoing.put_nowait(outgoing)
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

    async def _submit(self, event: SubmitReceived) -> None:
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
            job = self.context.manager.submit(self.client_id, submit, arrays.get("image"), arrays.get("mask"))
        except JobError as error:
            self._reply(
                wire.Error(code=error.code, message=error.message, field=error.field, request_id=submit.request_id)
            )
            return
        self._reply(wire.Accepted(request_id=submit.request_id, job_id=job.id, seed=job.seed))
        position = self.context.manager.positions(job.device).get(job.id)
        if position is not None:
            self._reply(wire.Queued(job_id=job.id, position=position))

    async def _write_loop(self) -> None:
        try:
            while (item := await self.outgoing.get()) is not None:
                try:
                    if isinstance(item, _Close):
                        await self.websocket.close(item.code, item.reason)
                        return
                    await self._send(item)
                finally:
                    self.outgoing.task_done()
        except ConnectionClosed:
            return

    async def drained(self) -> None:
        """Wait until everything queued for this client was written (or the socket is gone)."""
        await self.outgoing.join()

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
