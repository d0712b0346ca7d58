"""The worker side of ``--workers ray``: a Ray Serve replica that runs engines for the daemon's jobs.

One replica holds one GPU (``num_gpus=1``) and runs one job at a time. It keeps an LRU of warm models
(``@serve.multiplexed``), so Serve's router sends a job to a replica that already has its model. A job
arrives at model resolution (the daemon did the canvas pipeline) and streams back what an engine
reports: step progress with previews, then each image. The engine runs on a thread: the replica's
event loop stays free to notice a cancel (Ray cancels an async-generator call when the daemon calls
``.cancel()`` on the response), which sets the engine's cancel event and so stops it within one step.

Everything crossing the process boundary is a plain dataclass; errors travel as a ``Stopped`` item
rather than as exceptions, so the daemon gets the engine's own error code back unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import ray
from ray import serve

from underpaint.canvas.plan import ModelResolution
from underpaint.engines.base import (
    Engine,
    GenerationInput,
    JobCancelled,
    LiveModel,
    LoraInfo,
    ModelInfo,
    StepProgress,
)
from underpaint.engines.registry import WEIGHT_SCHEMES, build_engines
from underpaint.engines.upscale import CLASSICAL_UPSCALER, UpscaleEngine
from underpaint.errors import JobError

log = logging.getLogger("underpaint.scaleout")

HEARTBEAT_SECONDS = 1.0
LORA_SECONDS = 5.0
"""How often a replica lists its models folders' LoRAs again (file headers are read only when changed)."""
LIVE_SESSIONS = 4
"""Live sessions a replica keeps set up; a frame of one it dropped sets it up again."""


@dataclass(frozen=True)
class EngineSettings:
    """The engines every replica builds: the same options ``underpaint serve`` takes."""

    engine: str = "classical"
    models: tuple[str, ...] = ()
    models_dirs: tuple[str, ...] = ()
    device: str = "auto"
    max_models: int = 2
    """Warm models kept per replica (LRU); a job for another model evicts the least recently used."""
    torch_threads: int | None = None
    """CPU threads torch may use in each replica (several CPU replicas on one machine share its cores)."""
    controls: tuple[str, ...] = ()
    """ControlNets (``KIND=SOURCE``), IP-Adapters and the depth model, as ``serve`` takes them."""
    adapters: tuple[str, ...] = ()
    depth_model: str | None = None
    live_decoders: tuple[str, ...] = ()
    """Fast latent decoders for live frames (``serve --live-decoder``)."""

    def build(self) -> tuple[list[Engine], str]:
        models_dirs = [Path(p) for p in self.models_dirs]
        return build_engines(self.engine, list(self.models), models_dirs, self.device, guides=self.guides())

    def guides(self) -> dict[str, Any]:
        """The diffusion engine's control, reference, depth and live decoder options, as ``build_engines``
        takes them."""
        return {
            "controls": list(self.controls),
            "adapters": list(self.adapters),
            "depth_model": self.depth_model,
            "live_decoders": list(self.live_decoders),
        }


@dataclass(frozen=True)
class UpscalerFacts:
    """A super-resolution model on the replicas, as the daemon's tiled pass needs to know it."""

    id: str
    family: str
    licence: str
    scale: int
    default_tile: int


@dataclass(frozen=True)
class EngineEntry:
    """One engine as a machine offers it: what the daemon needs to plan jobs for it."""

    name: str
    uses_canvas_pipeline: bool
    models: tuple[ModelInfo, ...]
    resolutions: dict[str, ModelResolution]
    upscalers: tuple[UpscalerFacts, ...] = ()
    """The upscale engine's models with weights (the classical upscaler stays in the daemon)."""
    loras: tuple[LoraInfo, ...] = ()
    """The LoRAs its jobs may name, from this machine's models folders (pickles listed as refused)."""
    live_decoders: dict[str, str | None] = field(default_factory=dict)
    """Per model, what decodes its live frames (``Engine.live_decoder``)."""


@dataclass(frozen=True)
class Survey:
    """What one machine of the cluster can run, and which configured models it lacks."""

    machine: str
    engines: tuple[EngineEntry, ...]
    default_model: str
    missing: tuple[str, ...]


def machine_name() -> str:
    return f"{socket.gethostname()} ({ray.util.get_node_ip_address()})"


def survey(settings: EngineSettings) -> Survey:
    """Check every configured model is on this machine's disk, and build the engines to describe them."""
    missing = tuple(missing_models(settings))
    if missing:
        return Survey(machine_name(), (), "", missing)
    engines, default_model = settings.build()
    entries = tuple(
        EngineEntry(
            name=engine.name,
            uses_canvas_pipeline=engine.uses_canvas_pipeline,
            models=tuple(replace_loaded(info) for info in engine.models()),
            resolutions={info.id: engine.resolution(info.id) for info in engine.models()},
            upscalers=upscaler_facts(engine),
            loras=tuple(engine.loras()),
            live_decoders={info.id: engine.live_decoder(info.id) for info in engine.models()},
        )
        for engine in engines
    )
    for engine in engines:
        engine.close()
    return Survey(machine_name(), entries, default_model, ())


def upscaler_facts(engine: Engine) -> tuple[UpscalerFacts, ...]:
    if not isinstance(engine, UpscaleEngine):
        return ()
    return tuple(
        UpscalerFacts(up.id, up.family, up.licence, up.scale, up.default_tile)
        for up in engine.upscalers.values()
        if up.id != CLASSICAL_UPSCALER
    )


def replace_loaded(info: ModelInfo) -> ModelInfo:
    """Loaded-ness is per replica (the status says which); the catalogue says not loaded."""
    from dataclasses import replace

    return replace(info, loaded=False)


def missing_models(settings: EngineSettings) -> list[str]:
    """Configured diffusion models this machine has neither in its Hugging Face cache nor on disk."""
    if not settings.models:
        return []
    from huggingface_hub import try_to_load_from_cache

    from underpaint.engines.diffusion.registry import parse_source

    missing = []
    for source in settings.models:
        if source.startswith(WEIGHT_SCHEMES):  # erase:, upscale:, restore: name one weights file
            from underpaint.engines.weights import parse_source as parse_weights  # torch only here

            path = parse_weights(source.split(":", 1)[1]).path
            if not path.is_file():
                missing.append(f"{source} (no file {path} here)")
            continue
        try:
            spec = parse_source(source)
            cached = spec.kind != "hub" or isinstance(try_to_load_from_cache(spec.location, "model_index.json"), str)
        except (OSError, ValueError) as error:  # an unreadable file, or a name that is no path and no repo id
            missing.append(f"{source} ({error})")
            continue
        if not cached:
            missing.append(f"{source} (neither a folder nor a file here, nor in this machine's Hugging Face cache)")
    return missing


@dataclass(frozen=True)
class RemoteJob:
    """One job as the replica gets it: the engine's input and how many images to make."""

    generation: GenerationInput
    batch: int


@dataclass(frozen=True)
class LiveFrame:
    """One live frame: its session, the session's job (no image: each frame brings its own) and the
    frame's picture at model size (RGB uint8)."""

    session: str
    generation: GenerationInput
    image: np.ndarray


@dataclass(frozen=True)
class Made:
    """One finished image, with what the engine resolved to make it (for the result's sidecar)."""

    image: np.ndarray
    params: dict[str, Any]


@dataclass(frozen=True)
class Stopped:
    """The engine stopped early: cancelled, or failed with a client-facing code."""

    code: str
    message: str
    field: str | None = None


EngineLoras = tuple[tuple[str, tuple[LoraInfo, ...]], ...]
"""Each engine's name with the LoRAs its jobs may name."""


def engine_loras(engines: list[Engine]) -> EngineLoras:
    """What the engines list now (the diffusion engine scans its models folders on each call)."""
    return tuple((engine.name, tuple(engine.loras())) for engine in engines)


@dataclass(frozen=True)
class WorkerStatus:
    """One replica as ``welcome`` and ``underpaint workers`` show it."""

    replica: str
    machine: str
    device: str
    models: tuple[str, ...]
    busy: bool
    pid: int
    sequence: int
    """Reports are numbered: the board keeps the newest even if an older one arrives later."""
    loras: EngineLoras
    """The LoRAs this replica's machine has now, per engine (rescanned every ``LORA_SECONDS``)."""


class _Warm:
    """One warm model in the replica's LRU; Serve calls ``__del__`` when it evicts it."""

    def __init__(self, model: str, engine: Engine, owned: bool, on_evict: Any) -> None:
        self.model, self.engine, self.owned, self.on_evict = model, engine, owned, on_evict

    def __del__(self) -> None:
        self.on_evict(self.model)
        if self.owned:
            self.engine.close()


_END = object()
Work = Callable[["_Warm", Callable[[Any], None], threading.Event], None]
"""What a call runs on the engine's thread: with the warm model, a way to report items, the cancel event."""


class EngineReplica:
    """The Serve deployment (wrapped by ``serve.deployment`` in ``backend.py``)."""

    def __init__(self, settings: EngineSettings, board: Any) -> None:
        if settings.torch_threads:
            import torch

            torch.set_num_threads(settings.torch_threads)
        self.settings = settings
        self.engines, _ = settings.build()
        self.by_model = {info.id: engine for engine in self.engines for info in engine.models()}
        self.board = board
        self.replica = serve.get_replica_context().replica_id.unique_id
        self.device = _device_text(self.engines)
        self.warm: list[str] = []
        self.busy = False

        async def load(model: str) -> _Warm:  # a plain function: Serve keeps its LRU on the function object
            return self._load(model)

        self.load = serve.multiplexed(max_num_models_per_replica=settings.max_models)(load)
        self.machine = machine_name()
        self._jobs = ThreadPoolExecutor(max_workers=1, thread_name_prefix="underpaint-job")
        """The engine's thread (one job at a time), kept from job to job."""
        self._live: OrderedDict[str, LiveModel] = OrderedDict()
        """Live sessions by id, least recently used first."""
        self._live_lock = threading.RLock()  # an eviction may run on a thread that holds it (garbage collection)
        self._sequence = 0
        self._stop = threading.Event()
        self._changed = threading.Event()
        self._reporter = threading.Thread(target=self._heartbeat, name="underpaint-heartbeat", daemon=True)
        self._reporter.start()

    def _load(self, model: str) -> _Warm:
        shared = self.by_model.get(model)
        if shared is None:
            raise JobError("unknown_model", f"this worker has no model {model!r}", "job.model")
        if shared.name == "diffusion":  # each warm diffusion model gets an engine of its own to stay loaded in
            from underpaint.engines.diffusion import DiffusionEngine

            sources = [m for m in self.settings.models if not m.startswith(WEIGHT_SCHEMES)]
            engine: Engine = DiffusionEngine(
                sources=sources or ["tiny-random"],
                models_dirs=[Path(p) for p in self.settings.models_dirs],
                device=self.settings.device,
                **self.settings.guides(),
            )
            warm = _Warm(model, engine, True, self._evicted)
        else:
            warm = _Warm(model, shared, False, self._evicted)
        self.warm.append(model)
        self._changed.set()
        return warm

    def _evicted(self, model: str) -> None:
        if model in self.warm:
            self.warm.remove(model)
        with self._live_lock:  # their live models hold the evicted model's pipeline
            for session in [key for key, live in self._live.items() if live.job.model == model]:
                del self._live[session]

    def _heartbeat(self) -> None:
        """Send the status every heartbeat and at once when it changed: from this thread only, so
        a job's start and end never wait on a call to the board."""
        loras, scanned = engine_loras(self.engines), time.monotonic()
        while True:
            self._changed.wait(HEARTBEAT_SECONDS)
            self._changed.clear()
            if self._stop.is_set():
                return
            self._sequence += 1
            if time.monotonic() - scanned >= LORA_SECONDS:  # a LoRA dropped into a models folder shows
                loras, scanned = engine_loras(self.engines), time.monotonic()
            status = WorkerStatus(
                self.replica,
                self.machine,
                self.device,
                tuple(self.warm),
                self.busy,
                os.getpid(),
                self._sequence,
                loras,
            )
            self.board.report.remote(status)

    def __del__(self) -> None:
        self._stop.set()
        self._changed.set()
        self._jobs.shutdown(wait=False)

    async def upscale_tile(self, rgb: np.ndarray) -> np.ndarray:
        """One tile's native pass of an upscaler (the daemon runs the tiled pass and asks for each tile)."""
        model = serve.get_multiplexed_model_id()
        warm = await self.load(model)
        engine = warm.engine
        assert isinstance(engine, UpscaleEngine)
        upscaler = engine.upscaler(model)
        self.busy = True
        self._changed.set()
        try:
            return await asyncio.get_running_loop().run_in_executor(self._jobs, upscaler.forward, rgb)
        finally:
            self.busy = False
            self._changed.set()

    async def generate(self, request: RemoteJob) -> AsyncIterator[StepProgress | Made | Stopped]:
        """Run one job, streaming progress and images; a cancelled call stops the engine within a step."""

        def work(warm: _Warm, put: Callable[[Any], None], cancel: threading.Event) -> None:
            engine = warm.engine
            for image in engine.generate(request.generation, request.batch, put, cancel):
                put(Made(np.ascontiguousarray(image), engine.reproduction_params(request.generation)))

        async for item in self._run(work):
            yield item

    async def live_frame(self, request: LiveFrame) -> AsyncIterator[Made | Stopped]:
        """One frame of a live session, from the session's live model on this replica (set up here on
        the session's first frame on this replica: pipeline, prompt embeddings)."""

        def work(warm: _Warm, put: Callable[[Any], None], cancel: threading.Event) -> None:
            live = self._live_model(warm, request)
            image = live.frame(request.image, cancel)
            put(Made(np.ascontiguousarray(image), live.params()))

        async for item in self._run(work):
            yield item

    def _live_model(self, warm: _Warm, request: LiveFrame) -> LiveModel:
        """The session's live model, kept for its later frames (least recently used sessions go)."""
        with self._live_lock:
            live = self._live.get(request.session)
        if live is None or live.engine is not warm.engine:  # new here, or its model was reloaded since
            live = warm.engine.open_live(request.generation)
        with self._live_lock:
            self._live[request.session] = live
            self._live.move_to_end(request.session)
            while len(self._live) > LIVE_SESSIONS:
                self._live.popitem(last=False)
        return live

    async def _run(self, work: Work) -> AsyncIterator[Any]:
        """Run ``work`` on the engine's thread with the job's warm model, streaming what it reports; it
        ends with ``Stopped`` when the engine fails or is cancelled (the call's cancel stops it)."""
        model = serve.get_multiplexed_model_id()
        try:
            warm = await self.load(model)
        except JobError as error:
            yield Stopped(error.code, error.message, error.field)
            return
        self.warm.remove(model)
        self.warm.append(model)  # most recently used last, as the LRU sees it
        loop = asyncio.get_running_loop()
        items: asyncio.Queue[Any] = asyncio.Queue()
        cancel = threading.Event()

        def put(item: Any) -> None:
            loop.call_soon_threadsafe(items.put_nowait, item)

        def guarded() -> None:
            try:
                work(warm, put, cancel)
            except JobCancelled:
                put(Stopped("cancelled", "the job was cancelled"))
            except JobError as error:
                put(Stopped(error.code, error.message, error.field))
            except MemoryError:
                put(Stopped("out_of_memory", f"{machine_name()} ran out of memory"))
            except Exception as error:  # an engine bug fails the job, not the replica
                log.exception("a %s job crashed on this worker", model)
                put(Stopped("engine_failed", f"{type(error).__name__}: {error}"))
            finally:
                put(_END)

        self.busy = True
        self._changed.set()
        done = loop.run_in_executor(self._jobs, guarded)
        try:
            while (item := await items.get()) is not _END:
                yield item
        finally:
            cancel.set()  # cancelled (or the daemon went away): the engine stops at its next step
            try:
                await _outlast_cancels(done)
            finally:
                self.busy = False
                self._changed.set()


async def _outlast_cancels(done: asyncio.Future[None]) -> None:
    """Wait for ``done`` even if this task is cancelled again meanwhile: the replica must not take its
    next job while the engine thread still runs (Serve may cancel a call more than once)."""
    while not done.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(done)


def _device_text(engines: list[Engine]) -> str:
    """Where this replica computes: its engines' device and the GPU Ray gave it."""
    devices = sorted({engine.device for engine in engines if engine.name == "diffusion"}) or ["cpu"]
    gpus = ray.get_gpu_ids()
    text = ", ".join(devices)
    if "cuda" in devices:
        import torch

        text += f" ({torch.cuda.get_device_name(0)})"
    if gpus:
        text += f" [Ray GPU {', '.join(str(g) for g in gpus)}]"
    return text
