"""A threaded client for the daemon, shared by the CLI and the Krita and GIMP plugins.

All network I/O happens on the client's own thread, so a host's UI thread never waits on the
daemon: requests return ``concurrent.futures.Future`` objects and events arrive through the
``on_event`` callback (on the client's thread; a Qt plugin re-emits them as signals). When the
socket drops, the client reconnects with the same client id and fetches the results of jobs that
finished meanwhile. Standard library plus ``websockets`` only; Python 3.10+.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidMessage, InvalidStatus, InvalidURI
from websockets.sync.client import ClientConnection, connect

from underpaint_protocol.constants import RECONNECT_DELAYS
from underpaint_protocol.frames import Attachment, encode_frame
from underpaint_protocol.session import ClientSession, Event, ImageData, SessionError

log = logging.getLogger("underpaint.client")


@dataclass(frozen=True)
class _Outgoing:
    connection: ClientConnection
    frames: list[Any]
    on_error: Callable[[Exception], None]
    on_sent: Callable[[], None]


class DaemonError(Exception):
    """An ``error`` the daemon answered a request with."""

    def __init__(self, message: dict[str, Any]) -> None:
        super().__init__(str(message.get("message", "daemon error")))
        self.code = str(message.get("code", "internal_error"))
        self.field = message.get("field")
        self.message = message


class NotConnected(Exception):
    """The daemon cannot be reached; ``reason`` says why, so that a client can say what to do.

    Reasons: ``not_running`` (nothing listens there), ``unreachable`` (no route, name unknown),
    ``timeout`` (no answer), ``bad_address`` (not a ws:// address), ``web_server`` (an HTTP server
    answered the upgrade: another program uses the port), ``not_underpaint`` (something answered,
    but not as an underpaint daemon), ``lost`` (an open connection dropped).
    """

    RETRYABLE = ("not_running", "unreachable", "timeout", "lost")

    def __init__(
        self, message: str = "not connected to the daemon", reason: str = "lost", status: int = 0, server: str = ""
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status
        """The HTTP status a web server answered with (``web_server``)."""
        self.server = server
        """Its ``Server`` header, when it sent one (names the program: uvicorn for Gradio, ...)."""


class UnderpaintClient:
    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        client_name: str = "underpaint-client",
        client_version: str = "",
        host: tuple[str, str] | None = None,
        client_id: str | None = None,
        result_format: str = "rgba8",
        previews: bool = True,
        on_event: Callable[[Event], None] | None = None,
        on_state: Callable[[str, str], None] | None = None,
        reconnect: bool = True,
    ) -> None:
        self.url = url
        self.token = token
        self.client_name = client_name
        self.client_version = client_version
        self.host = host
        self.client_id = client_id
        self.result_format = result_format
        self.previews = previews
        self.on_event = on_event or (lambda event: None)
        self.on_state = on_state or (lambda state, detail: None)
        self.reconnect = reconnect
        self.session = ClientSession()
        self.welcome: dict[str, Any] | None = None
        self._connection: ClientConnection | None = None
        self._outbox: queue.SimpleQueue[_Outgoing | None] = queue.SimpleQueue()
        self._sender: threading.Thread | None = None
        self._futures: dict[str, tuple[str, Future[Any]]] = {}
        self._connected = threading.Event()
        self._closing = False
        self._thread: threading.Thread | None = None
        self._first_error: Exception | None = None

    # ---------------------------------------------------------------- lifecycle

    def connect(self, timeout: float = 10.0, fail_fast: bool = False) -> dict[str, Any]:
        """Connect and shake hands; raises NotConnected or DaemonError when that fails.

        With ``fail_fast`` the first failed attempt raises at once (a daemon that is not running is
        reported immediately); the client still reconnects by itself after later drops.
        """
        self._thread = threading.Thread(target=self._run, name="underpaint-client", daemon=True)
        self._thread.start()
        self._sender = threading.Thread(target=self._send_loop, name="underpaint-client-send", daemon=True)
        self._sender.start()
        deadline = time.monotonic() + timeout
        while not self._connected.wait(0.05):
            gave_up = not self._thread.is_alive()  # refused for good (unauthorized, wrong protocol)
            if self._first_error is not None and (fail_fast or gave_up or not self.reconnect):
                self.close()
                raise self._first_error
            if time.monotonic() > deadline:
                self.close()
                raise self._first_error or NotConnected(f"no answer from {self.url}")
        assert self.welcome is not None
        return self.welcome

    def close(self) -> None:
        self._closing = True
        self._outbox.put(None)
        connection = self._connection
        if connection is not None:
            connection.close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def _open(self) -> ClientConnection:
        connection = self._dial()
        connection.send(
            self.session.hello(
                self.client_name,
                self.client_version,
                self.host,
                self.token,
                self.client_id,
                self.result_format,
                self.previews,
            )
        )
        try:
            reply = self.session.receive_text(_text(connection.recv(timeout=10)))
        except (SessionError, TimeoutError) as error:
            connection.close()
            raise NotConnected(f"{self.url} does not answer as underpaint: {error}", "not_underpaint") from None
        message = reply[0].message if reply else {}
        if message.get("type") != "welcome":
            connection.close()
            if message.get("type") != "error":
                raise NotConnected(f"{self.url} does not answer as underpaint", "not_underpaint")
            raise DaemonError(message)
        self.welcome = message
        self.client_id = str(message["client_id"])
        return connection

    def _dial(self) -> ClientConnection:
        """Open the websocket, telling apart the ways that fails (see ``NotConnected.reason``)."""
        where = f"the underpaint daemon at {self.url}"
        try:
            return connect(self.url, compression=None, max_size=None, open_timeout=5, close_timeout=2)
        except InvalidURI as error:
            raise NotConnected(f"{self.url!r} is not a ws:// address: {error}", "bad_address") from None
        except InvalidStatus as error:
            status = error.response.status_code
            server = str(error.response.headers.get("Server", ""))
            message = f"{self.url} answers as a web server (HTTP {status})"
            raise NotConnected(message, "web_server", status, server) from None
        except InvalidMessage as error:
            answer = re.search(r"HTTP/\d(?:\.\d)? (\d{3})", str(error.__cause__ or ""))  # an HTTP/1.0 server
            if answer is not None:
                status = int(answer.group(1))
                message = f"{self.url} answers as a web server (HTTP {status})"
                raise NotConnected(message, "web_server", status) from None
            raise NotConnected(f"{self.url} does not answer as a websocket: {error}", "not_underpaint") from None
        except InvalidHandshake as error:
            raise NotConnected(f"{self.url} does not answer as a websocket: {error}", "not_underpaint") from None
        except TimeoutError:
            raise NotConnected(f"no answer from {where}", "timeout") from None
        except ConnectionRefusedError:
            raise NotConnected(f"nothing listens at {self.url}", "not_running") from None
        except OSError as error:
            raise NotConnected(f"cannot reach {where}: {error}", "unreachable") from None

    def _run(self) -> None:
        attempt = 0
        while not self._closing:
            try:
                connection = self._open()
            except (NotConnected, DaemonError, ConnectionClosed, SessionError) as error:
                if self._first_error is None:
                    self._first_error = error if not isinstance(error, ConnectionClosed) else NotConnected(str(error))
                fatal = (isinstance(error, DaemonError) and error.code in ("unauthorized", "unsupported_protocol")) or (
                    isinstance(error, NotConnected) and error.reason not in NotConnected.RETRYABLE
                )
                self.on_state("disconnected", str(error))
                if fatal or not self.reconnect or self._closing:
                    return
                time.sleep(RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS) - 1)])
                attempt += 1
                continue
            attempt = 0
            self._connection = connection
            self._connected.set()
            self.on_state("connected", self.url)
            if self.session.jobs:
                threading.Thread(target=self._catch_up, name="underpaint-catch-up", daemon=True).start()
            try:
                self._receive(connection)
            except (ConnectionClosed, SessionError, OSError) as error:
                log.info("connection lost: %s", error)
            finally:
                self._connected.clear()
                self._connection = None
                self._fail_futures(NotConnected("the connection to the daemon was lost"))
                if not self._closing:
                    self.on_state("reconnecting" if self.reconnect else "disconnected", "connection lost")
            if not self.reconnect:
                return

    def _receive(self, connection: ClientConnection) -> None:
        for frame in connection:
            events = self.session.receive_text(frame) if isinstance(frame, str) else self.session.receive_binary(frame)
            for event in events:
                self._dispatch(event)

    def _dispatch(self, event: Event) -> None:
        request_id = event.message.get("request_id")
        pending = self._futures.pop(request_id, None) if isinstance(request_id, str) else None
        if pending is not None:
            expected, future = pending
            if event.type == "error":
                future.set_exception(DaemonError(event.message))
            elif event.type == expected:
                future.set_result(event.message)
            else:
                self._futures[request_id] = pending  # type: ignore[index]
        try:
            self.on_event(event)
        except Exception:  # a host callback bug must not kill the connection
            log.exception("on_event callback failed")

    def _fail_futures(self, error: Exception) -> None:
        pending, self._futures = self._futures, {}
        for _, future in pending.values():
            if not future.done():
                future.set_exception(error)

    def _catch_up(self) -> None:
        """After a reconnect: fetch every job that finished (or produced results) while we were away."""
        try:
            summaries = self.list_jobs().result(timeout=30)
        except Exception as error:
            log.warning("could not list jobs after reconnecting: %s", error)
            return
        for job_id in self.session.jobs_to_fetch(summaries):
            self.fetch(job_id)

    # ---------------------------------------------------------------- requests

    def _send(
        self,
        frames: list[Any],
        on_error: Callable[[Exception], None] | None = None,
        on_sent: Callable[[], None] | None = None,
    ) -> None:
        """Queue a message (and its frames) for the sending thread: callers never wait on the network.

        This is the client's one ordered send path: messages leave in the order they were queued.
        Image data handed to ``submit`` must not change until it has been sent (``on_sent``).
        """
        connection = self._connection
        if connection is None:
            raise NotConnected("not connected to the daemon")
        failed = on_error or (lambda error: log.info("send failed: %s", error))
        self._outbox.put(_Outgoing(connection, frames, failed, on_sent or (lambda: None)))

    def _send_loop(self) -> None:
        """The one thread that writes to the socket, so a message's frames always go out together."""
        while (item := self._outbox.get()) is not None:
            try:
                for frame in item.frames:
                    item.connection.send(frame)
            except (ConnectionClosed, OSError) as error:
                item.on_error(NotConnected(f"the connection to the daemon was lost while sending: {error}"))
            else:
                item.on_sent()

    def _request(
        self, request_id: str, expected: str, frames: list[Any], on_sent: Callable[[], None] | None = None
    ) -> Future[Any]:
        future: Future[Any] = Future()
        self._futures[request_id] = (expected, future)

        def failed(error: Exception) -> None:
            pending = self._futures.pop(request_id, None)
            if pending is not None and not pending[1].done():
                pending[1].set_exception(error)

        try:
            self._send(frames, failed, on_sent)
        except NotConnected as error:
            failed(error)
        return future

    def request(
        self, message: dict[str, Any], expected: str, images: dict[str, ImageData] | None = None
    ) -> Future[dict[str, Any]]:
        """Send a request (its ``request_id`` is set here) with ``images`` as its attachments (field
        name -> image, frames in that order); resolves to the ``expected`` reply, or fails with
        ``DaemonError``. Feature modules (``library``) build their messages and use this."""
        request_id = self.session.next_request_id()
        full = {**message, "request_id": request_id}
        frames: list[Any] = []
        for name, data in (images or {}).items():
            attachment = Attachment(f"{request_id}-{name}", data.format, data.width, data.height)
            full[name] = attachment.as_dict()
            frames.append(encode_frame(attachment, data.data))
        return self._request(request_id, expected, [json.dumps(full), *frames])

    def plan(self, job: dict[str, Any]) -> Future[dict[str, Any]]:
        """Ask which canvas region the job needs (resolves to the `planned` message)."""
        request_id, text = self.session.plan(job)
        return self._request(request_id, "planned", [text])

    def submit(
        self,
        job: dict[str, Any],
        region: dict[str, int] | None = None,
        image: ImageData | None = None,
        mask: ImageData | None = None,
        on_sent: Callable[[], None] | None = None,
        controls: Sequence[ImageData] = (),
        references: Sequence[ImageData] = (),
    ) -> Future[dict[str, Any]]:
        """Queue a job (resolves to the `accepted` message with job_id and seed); ``on_sent`` is called
        on the sending thread once its frames are out. ``controls`` / ``references``: the pixels of
        each ``job["controls"]`` / ``job["references"]`` item, in order."""
        limit = int((self.welcome or {}).get("limits", {}).get("max_frame_bytes", 0))
        named = [("image", image), ("mask", mask)]
        named += [(f"controls.{index}", data) for index, data in enumerate(controls)]
        named += [(f"references.{index}", data) for index, data in enumerate(references)]
        for name, data in named:
            if data is not None and limit and memoryview(data.data).nbytes > limit:
                future: Future[dict[str, Any]] = Future()
                future.set_exception(
                    DaemonError(
                        {
                            "code": "frame_too_large",
                            "field": name,
                            "message": f"{name} is larger than the daemon accepts",
                        }
                    )
                )
                return future
        request_id, frames = self.session.submit(job, region, image, mask, controls, references)
        return self._request(request_id, "accepted", frames, on_sent)

    def cancel(self, job_id: str) -> None:
        self._send([self.session.cancel(job_id)])

    def list_jobs(self) -> Future[list[dict[str, Any]]]:
        request_id, text = self.session.list_jobs()
        outer: Future[list[dict[str, Any]]] = Future()
        inner = self._request(request_id, "jobs", [text])

        def unwrap(done: Future[Any]) -> None:
            error = done.exception()
            if error is not None:
                outer.set_exception(error)
            else:
                outer.set_result(list(done.result()["jobs"]))

        inner.add_done_callback(unwrap)
        return outer

    def live_start(self, live: dict[str, Any], mask: ImageData | None = None) -> Future[dict[str, Any]]:
        """Start this connection's live session (resolves to ``live_started``); see ``live.py``."""
        request_id, frames = self.session.live_start(live, mask)
        return self._request(request_id, "live_started", frames)

    def live_frame(self, seq: int, x: int, y: int, image: ImageData, on_sent: Callable[[], None] | None = None) -> None:
        """Send changed pixels (queued for the sending thread; ``image`` must not change until ``on_sent``).
        Raises NotConnected while there is no connection."""
        self._send(self.session.live_frame(seq, x, y, image), on_sent=on_sent)

    def live_stop(self) -> Future[dict[str, Any]]:
        """End the live session (resolves to ``live_stopped``, or fails with ``no_live_session``)."""
        request_id, text = self.session.live_stop()
        return self._request(request_id, "live_stopped", [text])

    def fetch(self, job_id: str, replay: bool = False) -> None:
        """Ask for a job's results again; they arrive as events like the first time (``replay``: even
        those this client has already received)."""
        self._send([self.session.fetch(job_id, replay)])


def _text(frame: str | bytes) -> str:
    if isinstance(frame, bytes):
        raise SessionError("expected a text message, got a binary frame")
    return frame
