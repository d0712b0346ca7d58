"""The daemon: one asyncio websocket server, one job manager, one worker per device (or remote workers)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import http
import logging
import signal
import socket
import threading
from collections.abc import Callable
from typing import Any, Protocol

from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

from underpaint import __version__
from underpaint.daemon import auth, logs, memory
from underpaint.daemon.config import DaemonConfig
from underpaint.daemon.connection import ClientHandler, ConnectionContext
from underpaint.daemon.manager import JobManager
from underpaint.daemon.outputs import OutputStore
from underpaint.engines.base import Engine
from underpaint.engines.interrogate import Interrogator
from underpaint.errors import StartupError
from underpaint.library.history import HistoryStore
from underpaint.library.styles import StyleStore
from underpaint.modes import Mode
from underpaint_protocol import messages as wire
from underpaint_protocol.frames import IMAGE_FORMATS

log = logging.getLogger("underpaint.daemon")


class Workers(Protocol):
    """Engines that run outside this process (``--workers ray``): only "run the engine" moves there."""

    def threads(self) -> dict[str, int]:
        """How many jobs of each of their devices may run at once."""
        ...

    def describe(self) -> list[wire.WorkerDescription]:
        """Each worker: where it runs, its device, its warm models, whether it is busy."""
        ...


class Daemon:
    def __init__(
        self,
        config: DaemonConfig,
        engines: list[Engine],
        default_model: str,
        workers: Workers | None = None,
        interrogator: Interrogator | None = None,
    ) -> None:
        """``interrogator`` answers ``interrogate`` requests (None: they are refused)."""
        self.interrogator = interrogator
        self.config = config
        self.engines = engines
        self.workers = workers
        self.default_model = default_model
        self.loopback = auth.is_loopback_host(config.host)
        # There is always a token: beyond loopback every client must present it.
        self.token = auth.load_or_create_token(config.token_file)
        self.store = OutputStore(config.outputs, config.memory_cache_bytes)
        self._manager: JobManager | None = None
        self._context: ConnectionContext | None = None
        self._stop: asyncio.Event | None = None
        self._connections: set[ClientHandler] = set()
        self.port: int | None = None

    @property
    def manager(self) -> JobManager:
        assert self._manager is not None, "the daemon is not running"
        return self._manager

    def welcome(self, client_id: str) -> wire.Welcome:
        models = self.manager.models()
        return wire.Welcome(
            server=wire.Peer(name="underpaint", version=__version__),
            client_id=client_id,
            engines=[wire.EngineDescription(name=engine.name, device=engine.device) for engine in self.engines],
            models=[
                wire.ModelDescription(
                    id=info.id,
                    engine=info.engine,
                    family=info.family,
                    modes=[mode.value for mode in info.modes],
                    loaded=info.loaded,
                    description=info.description,
                    default_steps=info.default_steps,
                    default_guidance=info.default_guidance,
                    segment_inputs=list(info.segment_inputs) or None,  # type: ignore[arg-type]
                    control_kinds=list(info.control_kinds),  # type: ignore[arg-type]
                    reference_modes=list(info.reference_modes),  # type: ignore[arg-type]
                )
                for info, _ in models
            ],
            default_model=self.default_model,
            modes=sorted({mode.value for info, _ in models for mode in info.modes}, key=_mode_order),
            model_loaded=any(info.loaded and info.engine != "classical" for info, _ in models),
            limits=self.config.limits,
            outputs=str(self.config.outputs) if self.config.outputs else None,
            image_formats=list(IMAGE_FORMATS),  # type: ignore[arg-type]
            workers=self.workers.describe() if self.workers else self._local_workers(),
        )

    def _local_workers(self) -> list[wire.WorkerDescription]:
        """One worker thread per device of this process."""
        busy = {job.device for job in self.manager.running()}
        where = socket.gethostname()
        on: dict[str, list[Engine]] = {}
        for engine in self.engines:
            on.setdefault(engine.device, []).append(engine)
        return [
            wire.WorkerDescription(
                where=where,
                device=device,
                models=[
                    info.id
                    for engine in self.engines
                    if engine.device == device
                    for info in engine.models()
                    if info.loaded
                ],
                busy=device in busy,
            )
            for device in sorted(on)
        ]

    async def _handler(self, websocket: ServerConnection) -> None:
        assert self._context is not None
        connection = ClientHandler(websocket, self._context)
        self._connections.add(connection)
        try:
            await connection.run()
        finally:
            self._connections.discard(connection)

    async def run(self, ready: Callable[[Daemon], Any] | None = None) -> list[str]:
        """Serve until ``stop()``; returns descriptions of the jobs that were interrupted.

        Raises ``StartupError`` (one line for the user) when the address cannot be listened on."""
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._manager = JobManager(
            self.engines,
            self.default_model,
            self.store,
            self.config.limits,
            loop,
            threads=self.workers.threads() if self.workers else None,
            styles=StyleStore(self.config.styles_file),
            history=HistoryStore(self.config.history_file),
            interrogator=self.interrogator,
        )
        self._context = ConnectionContext(
            self._manager,
            self.config.limits,
            self.token,
            self.loopback,
            self.welcome,
            self.config.timeouts,
            self.config.outgoing_bytes,
        )
        logs.install_filters()
        try:
            server = await serve(
                self._handler,
                self.config.host,
                self.config.port,
                compression=None,  # raw pixels do not compress well and deflate costs ~30x on loopback
                max_size=self.config.limits.max_frame_bytes + 65536,
                max_queue=4,
                process_request=self._admit,
            )
        except OSError as error:
            await asyncio.to_thread(self._manager.shutdown)
            raise _startup_error(error, self.config.host, self.config.port) from None
        self.store.start()
        trimmer = asyncio.create_task(memory.trim_when_quiet(self._activity))
        try:
            self.port = next(iter(server.sockets)).getsockname()[1]
            where = "outputs in " + str(self.config.outputs) if self.config.outputs else "outputs not saved"
            log.info(
                "underpaint %s listening on ws://%s:%d (%s; models: %s; %s)",
                __version__,
                self.config.host,
                self.port,
                "loopback only" if self.loopback else "token required",
                ", ".join(info.id for info, _ in self.manager.models()),
                where,
            )
            if ready is not None:
                ready(self)
            await self._stop.wait()
            log.info("shutting down")
            server.server.close()  # stop accepting; connections stay open to hear how their jobs ended
            interrupted = await asyncio.to_thread(self.manager.shutdown)
            await asyncio.sleep(0)  # run the workers' last call_soon_threadsafe deliveries
            drained = [asyncio.create_task(connection.drained()) for connection in self._connections]
            if drained:
                await asyncio.wait(drained, timeout=5)  # let the last events reach the sockets
            return interrupted
        finally:
            trimmer.cancel()
            server.close()
            await server.wait_closed()
            await asyncio.to_thread(self.store.stop)
            for engine in self.engines:
                engine.close()

    def _activity(self) -> tuple[int, bool]:
        """Jobs started so far, and whether a job runs or a client still has events to receive."""
        manager = self.manager
        return manager.jobs_started, bool(manager.running()) or any(c.sending for c in self._connections)

    def _admit(self, connection: ServerConnection, request: Request) -> Response | None:
        """Refuse a connection over the cap before it costs anything beyond the HTTP request."""
        cap = self.config.limits.max_connections
        if len(self._connections) >= cap:
            log.warning("refused a connection: %d are open, the limit", cap)
            return connection.respond(
                http.HTTPStatus.SERVICE_UNAVAILABLE, f"underpaint: {cap} connections are open, the limit; try later\n"
            )
        return None

    def stop(self) -> None:
        """Ask a running daemon to shut down; safe from any thread."""
        if self._stop is not None and self._manager is not None:
            self._manager.loop.call_soon_threadsafe(self._stop.set)


def _startup_error(error: OSError, host: str, port: int) -> StartupError:
    if error.errno == errno.EADDRINUSE:
        return StartupError(
            f"port {port} on {host} is already in use (another underpaint daemon or another app); "
            f"stop it, or pick another port with --port N (--port 0 takes any free one)"
        )
    if error.errno in (errno.EADDRNOTAVAIL, errno.EACCES):
        return StartupError(f"cannot listen on {host}:{port}: {error.strerror}; check --host and --port")
    return StartupError(f"cannot listen on {host}:{port}: {error}")


def _mode_order(mode: str) -> int:
    return [m.value for m in Mode].index(mode)


def run_forever(daemon: Daemon) -> None:
    """Run in the foreground until Ctrl-C or SIGTERM, then report what was interrupted."""

    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, daemon.stop)
        return await daemon.run()

    try:
        interrupted = asyncio.run(main())
    except KeyboardInterrupt:  # platforms without signal handlers in the loop
        interrupted = []
    if interrupted:
        log.warning("interrupted: %s", "; ".join(interrupted))
    else:
        log.info("stopped cleanly; no job was interrupted")


class DaemonThread:
    """A daemon on its own event loop in a background thread: for tests, benchmarks and embedding."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="underpaint-daemon", daemon=True)
        self.interrupted: list[str] = []
        self.error: BaseException | None = None

    def _main(self) -> None:
        try:
            self.interrupted = asyncio.run(self.daemon.run(ready=lambda _: self._ready.set()))
        except BaseException as error:
            self.error = error
            self._ready.set()

    def start(self, timeout: float = 30.0) -> DaemonThread:
        self._thread.start()
        if not self._ready.wait(timeout) or self.error is not None:
            raise RuntimeError(f"daemon did not start: {self.error!r}")
        return self

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.daemon.port}"

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the daemon and wait; a failure inside it is raised here rather than lost."""
        self.daemon.stop()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise RuntimeError(f"the daemon did not stop within {timeout} s")
        if self.error is not None:
            raise RuntimeError("the daemon failed") from self.error
