"""The job manager: jobs from every client: validation into a plan, fair queues per device, workers, events.

The ``JobManager`` lives on the event loop's thread; only the worker threads it starts run engines.
Workers hand events back with ``loop.call_soon_threadsafe`` so that every socket write stays on
the loop. A job belongs to the client id that submitted it, not to a socket: it survives its
connection dropping, and a reconnecting client with the same id lists and fetches it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import re
import secrets
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np

from underpaint import canvas
from underpaint.canvas.controls import control_region
from underpaint.canvas.geometry import Box, Extents
from underpaint.canvas.live import selection_over_upload
from underpaint.canvas.plan import JobPlan
from underpaint.canvas.region import SegmentInputs, plan_segment
from underpaint.daemon import runner, upscaling
from underpaint.daemon.live import LiveSession, LiveTurn
from underpaint.daemon.outputs import OutputStore, owner_key
from underpaint.daemon.queue import FairQueue
from underpaint.daemon.records import (
    Execute,
    Job,
    Outgoing,
    Sink,
    blend_settings,
    result_message,
    segment_inputs,
    to_box,
)
from underpaint.engines.base import Engine, GenerationInput, JobCancelled, ModelInfo
from underpaint.engines.interrogate import Interrogation, Interrogator, crop_to_selection
from underpaint.engines.upscale import CLASSICAL_UPSCALER, UpscaleEngine, UpscalePlan, Upscaler
from underpaint.errors import JobError
from underpaint.library.history import HistoryStore
from underpaint.library.lora_syntax import split_prompt
from underpaint.library.styles import StyleStore, apply_style
from underpaint.modes import UPSCALE_MODES, Mode
from underpaint_protocol import messages as wire
from underpaint_protocol.messages import Limits

log = logging.getLogger("underpaint.jobs")

JOB_ID = re.compile(r"^[0-9a-f]{32}$")
KEPT_JOB_RECORDS = 1000
MAX_LORAS = 8
MAX_INTERROGATIONS = 4
SPARE_BYTES = 65536
"""How much more than its crop a queued job may keep alive: a frame's header, not the rest of an upload."""
DEFAULT_STRENGTH = {
    Mode.TXT2IMG: 1.0,
    Mode.IMG2IMG: 0.6,
    Mode.INPAINT: 1.0,
    Mode.OUTPAINT: 1.0,
    Mode.UPSCALE: 0.0,
    Mode.REFINE_UPSCALE: upscaling.DEFAULT_REFINE_STRENGTH,
    Mode.RESTORE: 1.0,
}


class PlannedJob(NamedTuple):
    plan: JobPlan
    model: ModelInfo
    engine: Engine
    strength: float
    spec: wire.JobSpec
    """The job as it runs: its style applied."""
    upscale: UpscalePlan | None = None


POSITION_UPDATE_SECONDS = 0.25
"""Queue positions go out at most this often, and only those that changed."""
DISK_READERS = 2
"""Results read back from disk at once (off the event loop)."""


class JobManager:
    def __init__(
        self,
        engines: list[Engine],
        default_model: str,
        store: OutputStore,
        limits: Limits,
        loop: asyncio.AbstractEventLoop,
        execute: Execute | None = None,
        threads: Mapping[str, int] | None = None,
        styles: StyleStore | None = None,
        history: HistoryStore | None = None,
        interrogator: Interrogator | None = None,
    ) -> None:
        """``execute`` runs one job on a worker thread (default: in this process, see ``runner``);
        ``threads`` says how many jobs of a device run at once (default one: a device runs one job);
        ``styles`` and ``history`` are the user's prompt library (default: shipped styles, no history)."""
        self.styles = styles or StyleStore(None)
        self.history = history
        self.interrogator = interrogator
        self._interrogations = 0
        self.engines = engines
        self.execute: Execute = execute or functools.partial(runner.execute, store=store)
        self.default_model = default_model
        self.store = store
        self.limits = limits
        self.loop = loop
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self._sinks: dict[str, set[Sink]] = {}
        self._queues: dict[str, FairQueue[Job | LiveTurn]] = {}
        self._workers: list[threading.Thread] = []
        self._running: dict[str, Job] = {}
        self.live_sessions: set[LiveSession] = set()
        """Every live session running (one per connection at most)."""
        self.jobs_started = 0
        """How many jobs a worker has taken so far (tells the heap trimmer whether it was quiet)."""
        self._shutting_down = False
        self._announcing: set[str] = set()
        self._disk_readers = asyncio.Semaphore(DISK_READERS)
        for device in sorted({engine.device for engine in engines}):
            self._queues[device] = FairQueue()
            for index in range((threads or {}).get(device, 1)):
                name = f"worker-{device}-{index}"
                worker = threading.Thread(target=self._work, args=(device,), name=name, daemon=True)
                self._workers.append(worker)
                worker.start()

    # ------------------------------------------------------------ models

    def models(self) -> list[tuple[ModelInfo, Engine]]:
        return [(info, engine) for engine in self.engines for info in engine.models()]

    def resolve_model(self, name: str | None, mode: Mode | None = None) -> tuple[ModelInfo, Engine]:
        """The named model, else the default one; an upscale or restore without a model, when the default
        cannot run it, gets the first model that can (an upscaler, a restoration model)."""
        wanted = name or self.default_model
        if name is None and mode in (Mode.UPSCALE, Mode.RESTORE):
            able = [info.id for info, _ in self.models() if mode in info.modes]
            if able and wanted not in able:
                wanted = able[0]
        for info, engine in self.models():
            if info.id == wanted:
                return info, engine
        known = ", ".join(info.id for info, _ in self.models())
        raise JobError("unknown_model", f"unknown model {wanted!r}; this daemon has: {known}", "job.model")

    def loras(self) -> list[wire.LoraDescription]:
        """Every LoRA jobs may name, from every engine (the first of a name wins)."""
        found: dict[str, wire.LoraDescription] = {}
        for engine in self.engines:
            for info in engine.loras():
                found.setdefault(
                    info.name,
                    wire.LoraDescription(
                        name=info.name, triggers=list(info.triggers), base=info.base, refused=info.refused
                    ),
                )
        return list(found.values())

    async def interrogate(self, image: np.ndarray, mask: np.ndarray | None, flavours: int) -> Interrogation:
        """A prompt for the image (the selection's bounding box with a mask), on a thread; at most
        MAX_INTERROGATIONS run or wait at once, the rest are refused with ``queue_full``."""
        if self.interrogator is None:
            raise JobError("unsupported_mode", "this daemon has no interrogator (serve --interrogator)", "type")
        if mask is not None and mask.shape[:2] != image.shape[:2]:
            raise JobError("size_mismatch", "mask and image must have the same size", "mask")
        if self._interrogations >= MAX_INTERROGATIONS:
            raise JobError("queue_full", f"{self._interrogations} interrogations are waiting; try again later")
        self._interrogations += 1
        try:
            rgb = np.ascontiguousarray(crop_to_selection(image[..., :3], mask))
            return await asyncio.to_thread(self.interrogator.interrogate, rgb, flavours)
        finally:
            self._interrogations -= 1

    # ------------------------------------------------------------ subscriptions

    def subscribe(self, client_id: str, sink: Sink) -> None:
        self._sinks.setdefault(client_id, set()).add(sink)

    def unsubscribe(self, client_id: str, sink: Sink) -> None:
        sinks = self._sinks.get(client_id)
        if sinks is not None:
            sinks.discard(sink)
            if not sinks:
                del self._sinks[client_id]

    def _deliver(self, client_id: str, outgoing: Outgoing) -> None:
        for sink in list(self._sinks.get(client_id, ())):
            sink(outgoing)

    def publish(self, job: Job, message: Any, pixels: np.ndarray | None = None) -> None:
        """Send an event to every connection of the job's owner; callable from any thread."""
        self.loop.call_soon_threadsafe(self._deliver, job.owner, Outgoing(message, pixels))

    # ------------------------------------------------------------ planning and submitting

    def plan(self, spec: wire.JobSpec) -> PlannedJob:
        """Apply the job's style, resolve the model and plan the job from bounds only, checking every
        pixel count it would allocate against the announced limits before anything is allocated."""
        if spec.style is not None:
            spec = apply_style(spec, self.styles.get(spec.style))
        mode = Mode(spec.mode)
        if (mode is Mode.SEGMENT or mode in UPSCALE_MODES) and (spec.controls or spec.references):
            field = "job.controls" if spec.controls else "job.references"
            raise JobError("invalid_field", f"control layers and references do not apply to {mode.value}", field)
        if mode is Mode.SEGMENT:
            return self._plan_segment(spec)
        if spec.segment is not None:
            raise JobError("invalid_field", "job.segment belongs to mode segment only", "job.segment")
        info, engine = self.resolve_model(spec.model, mode)
        spec = self._with_loras(spec, engine)
        if mode not in info.modes:
            can = ", ".join(m.value for m in info.modes)
            hint = (
                " (txt2img and img2img need a diffusion model: start the daemon with --model)"
                if (info.engine == "classical")
                else ""
            )
            raise JobError("unsupported_mode", f"model {info.id!r} cannot {mode.value}; it can {can}{hint}", "job.mode")
        if info.refusal is not None:
            raise JobError("licence_refused", info.refusal, "job.model")
        if mode in UPSCALE_MODES or spec.upscale is not None:
            return self._plan_upscale(spec, mode, info, engine)
        limits = self.limits
        _check_guides(spec, info, limits)
        side = limits.max_canvas_side
        if spec.canvas.width > side or spec.canvas.height > side:
            raise JobError("too_many_pixels", f"canvas sides are limited to {side} pixels", "job.canvas")
        if spec.batch > limits.max_batch:
            raise JobError("too_many_pixels", f"batch is limited to {limits.max_batch} results", "job.batch")
        strength = spec.strength if spec.strength is not None else DEFAULT_STRENGTH[mode]
        extend = Extents(**spec.extend.model_dump()) if spec.extend else None
        plan = canvas.plan_job(
            mode,
            spec.canvas.width,
            spec.canvas.height,
            to_box(spec.selection),
            extend,
            strength,
            engine.resolution(info.id),
            blend_settings(spec),
        )
        self._check_pixels(spec, plan)
        return PlannedJob(plan, info, engine, strength, spec)

    def _with_loras(self, spec: wire.JobSpec, engine: Engine) -> wire.JobSpec:
        """The job's LoRAs (``loras`` and ``<lora:name:weight>`` tags, taken out of the prompt),
        each checked against what the engine offers."""
        prompt, tagged = split_prompt(spec.prompt)
        refs = list(spec.loras or [])
        if not refs and not tagged:
            return spec
        named = {ref.name for ref in refs}
        refs += [
            wire.LoraRef(name=name, weight=max(-4.0, min(4.0, weight))) for name, weight in tagged if name not in named
        ]
        if len(refs) > MAX_LORAS:
            raise JobError("invalid_value", f"at most {MAX_LORAS} LoRAs per job", "job.loras")
        available = {info.name: info for info in engine.loras()}
        for index, ref in enumerate(refs):
            where = f"job.loras[{index}].name" if index < len(spec.loras or []) else "job.prompt"
            info = available.get(ref.name)
            if info is None:
                have = ", ".join(sorted(available)) or "none"
                raise JobError("unknown_lora", f"no LoRA named {ref.name!r} (there are: {have})", where)
            if info.refused is not None:
                raise JobError("unsafe_model_format", f"LoRA {ref.name!r}: {info.refused}", where)
        return spec.model_copy(update={"prompt": prompt, "loras": refs})

    def _plan_segment(self, spec: wire.JobSpec) -> PlannedJob:
        """A segment job: the model that can take its inputs, and the region around them."""
        if spec.segment is None:
            raise JobError("invalid_field", "mode segment needs job.segment (what to select)", "job.segment")
        inputs = segment_inputs(spec)
        plan = plan_segment(spec.canvas.width, spec.canvas.height, inputs)  # the inputs' own errors first
        used = _segment_inputs_used(inputs)
        info, engine = self.resolve_model(spec.model or self._default_segment_model(used))
        if Mode.SEGMENT not in info.modes:
            raise JobError("unsupported_mode", f"model {info.id!r} cannot select objects", "job.model")
        missing = sorted(used - set(info.segment_inputs))
        if missing:
            field = {"mask": "job.selection", "box": "job.segment.box"}.get(missing[0], f"job.segment.{missing[0]}")
            what = "select by words" if "text" in missing else f"start from {', '.join(missing)}"
            raise JobError(
                "invalid_value",
                f"model {info.id!r} cannot {what}; it takes {', '.join(info.segment_inputs)}",
                "job.segment.text" if "text" in missing else field,
            )
        self._check_pixels(spec, plan)
        return PlannedJob(plan, info, engine, 1.0, spec)

    def _default_segment_model(self, used: set[str]) -> str:
        """The first segment model that takes every input used, a learned one before the classical."""
        able = [info for info, _ in self.models() if Mode.SEGMENT in info.modes and used <= set(info.segment_inputs)]
        able.sort(key=lambda info: info.family == "classical")
        if able:
            return able[0].id
        field = "job.segment.text" if "text" in used else "job.segment"
        raise JobError(
            "invalid_value",
            f"no model of this daemon can start from {', '.join(sorted(used))} "
            "(start it with --segment-model, e.g. CIDAS/clipseg-rd64-refined for words)",
            field,
        )

    def _plan_upscale(self, spec: wire.JobSpec, mode: Mode, info: ModelInfo, engine: Engine) -> PlannedJob:
        if mode not in UPSCALE_MODES:
            raise JobError("invalid_value", "`upscale` applies only to upscale and refine_upscale", "job.upscale")
        named = info.id if mode is Mode.UPSCALE else (spec.upscale.model if spec.upscale is not None else None)
        upscaler = self._upscaler(named, mode)
        plan, up = upscaling.plan_upscale(spec, upscaler, self.limits)
        return PlannedJob(plan, info, engine, plan.strength, spec, up)

    def _upscaler(self, name: str | None, mode: Mode) -> Upscaler:
        """The upscaler a job names (``job.model`` for upscale, ``job.upscale.model`` for refine-upscale);
        refine-upscale's default is the first super-resolution model, else the classical upscaler."""
        field = "job.model" if mode is Mode.UPSCALE else "job.upscale.model"
        engine = next((engine for engine in self.engines if isinstance(engine, UpscaleEngine)), None)
        if engine is None:
            raise JobError("unknown_model", "this daemon serves no upscaler", field)
        if name is None:
            name = next((key for key in engine.upscalers if key != CLASSICAL_UPSCALER), CLASSICAL_UPSCALER)
        return engine.upscaler(name, field)

    def _check_pixels(self, spec: wire.JobSpec, plan: JobPlan) -> None:
        limits = self.limits
        grown = plan.new_canvas
        area_field = "job.extend" if spec.extend is not None else "job.selection" if spec.selection else "job.canvas"
        if grown.width > limits.max_canvas_side or grown.height > limits.max_canvas_side:
            raise JobError(
                "too_many_pixels",
                f"the outpaint would grow the canvas to {grown.width}x{grown.height}; "
                f"sides are limited to {limits.max_canvas_side} pixels",
                area_field,
            )
        work = plan.work.area
        if work > limits.max_work_pixels:
            raise JobError(
                "too_many_pixels",
                f"the job's work area is {plan.work.width}x{plan.work.height} ({work} pixels), "
                f"over the limit of {limits.max_work_pixels}",
                area_field,
            )
        if plan.upload.area > limits.max_upload_pixels:
            raise JobError(
                "too_many_pixels",
                f"the job needs an upload of {plan.upload.width}x{plan.upload.height}, "
                f"over the limit of {limits.max_upload_pixels} pixels",
                area_field,
            )
        model = plan.model_width * plan.model_height
        if model > limits.max_model_pixels:
            raise JobError(
                "too_many_pixels",
                f"the model would work at {plan.model_width}x{plan.model_height}, "
                f"over the limit of {limits.max_model_pixels} pixels",
                "job.model",
            )
        if spec.batch * max(work, model) > limits.max_result_pixels:
            raise JobError(
                "too_many_pixels",
                f"batch {spec.batch} x {max(work, model)} pixels is over the limit of "
                f"{limits.max_result_pixels} result pixels per job",
                "job.batch",
            )

    def submit(
        self,
        client_id: str,
        submit: wire.Submit,
        image: np.ndarray | None,
        mask: np.ndarray | None,
        controls: list[np.ndarray] | None = None,
        references: list[np.ndarray] | None = None,
    ) -> Job:
        """Queue a job; ``controls`` and ``references`` are the decoded frames of ``submit.controls`` /
        ``submit.references``, in order."""
        plan, info, engine, strength, spec, upscale = self.plan(submit.job)
        controls = controls or []
        _check_control_sizes(plan, controls)
        queued = sum(len(q) for q in self._queues.values())
        if queued >= self.limits.max_queued_jobs:
            raise JobError("queue_full", f"{queued} jobs are queued; try again later")
        mine = sum(1 for job in self.jobs.values() if job.owner == client_id and job.state == "queued")
        if mine >= self.limits.max_queued_per_client:
            raise JobError("queue_full", f"{mine} of your jobs are queued, the limit per client; wait for them")
        image, mask = self._crop_upload(plan, submit, image, mask)
        job = Job(
            id=uuid.uuid4().hex,
            owner=client_id,
            spec=spec,
            model=info,
            engine=engine,
            plan=plan,
            seed=spec.seed if spec.seed is not None else secrets.randbelow(2**32),
            steps=spec.steps or info.default_steps,
            guidance=spec.guidance if spec.guidance is not None else info.default_guidance,
            strength=strength,
            image=image,
            mask=mask,
            upscale=upscale,
            asked=submit.job if submit.job != spec else None,
            controls=controls,
            references=references or [],
        )
        self._remember(job)
        self.jobs[job.id] = job
        self._forget_old_jobs()
        self._queues[engine.device].put(job)
        log.info(
            "job %s queued: %s on %s, %dx%d work area, batch %d, from %s",
            job.id[:8],
            spec.mode,
            info.id,
            plan.work.width,
            plan.work.height,
            spec.batch,
            client_id[:8],
        )
        return job

    def _remember(self, job: Job) -> None:
        """Add the job to the user's history, as they asked for it (their prompt before a style)."""
        if self.history is None:
            return
        asked = job.asked or job.spec
        self.history.add(
            wire.HistoryEntry(
                created=job.created,
                mode=asked.mode,
                model=job.model.id,
                prompt=asked.prompt,
                negative_prompt=asked.negative_prompt,
                style=asked.style,
                seed=job.seed,
                steps=asked.steps,
                guidance=asked.guidance,
                strength=asked.strength,
                width=asked.canvas.width,
                height=asked.canvas.height,
            )
        )

    def _crop_upload(
        self, plan: JobPlan, submit: wire.Submit, image: np.ndarray | None, mask: np.ndarray | None
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Check the uploaded region covers ``plan.upload`` and cut both arrays to exactly it."""
        if plan.upload.is_empty:
            return None, None
        if image is None:
            raise JobError(
                "region_mismatch",
                f"this job needs the canvas pixels of {_rect_text(plan.upload)} as `image`",
                "image",
            )
        region = to_box(submit.region) or plan.upload
        if not region.contains(plan.upload):
            raise JobError(
                "region_mismatch",
                f"region {_rect_text(region)} does not cover the pixels the job needs, {_rect_text(plan.upload)}",
                "region",
            )
        if not plan.canvas.contains(region):
            raise JobError("region_mismatch", f"region {_rect_text(region)} leaves the canvas", "region")
        for name, array in (("image", image), ("mask", mask)):
            if array is not None and array.shape[:2] != (region.height, region.width):
                raise JobError(
                    "size_mismatch",
                    f"{name} is {array.shape[1]}x{array.shape[0]} but region is {region.width}x{region.height}",
                    name,
                )
        rows, cols = plan.upload.slices(region)
        return _own(image[rows, cols]), None if mask is None else _own(mask[rows, cols])

    def _forget_old_jobs(self) -> None:
        while len(self.jobs) > KEPT_JOB_RECORDS:
            oldest = next((job for job in self.jobs.values() if job.terminal_event is not None), None)
            if oldest is None:
                return
            del self.jobs[oldest.id]

    # ------------------------------------------------------------ live painting (daemon/live.py)

    def start_live(
        self,
        client_id: str,
        start: wire.LiveStart,
        mask: np.ndarray | None,
        publish: Callable[[Any, np.ndarray | None], None],
    ) -> LiveSession:
        """Plan a live session like a job (errors name ``live.*``); its frames then take turns on the
        model's device. ``mask``: the soft selection over ``live.selection``. ``publish`` sends to the
        starting connection only (callable from any thread)."""
        live = start.live
        if live.strength == 0:
            raise JobError("invalid_value", "at strength 0 every frame would come back unchanged", "live.strength")
        try:
            info, _ = self.resolve_model(live.model)
            mode = live.mode or ("img2img" if Mode.IMG2IMG in info.modes else "inpaint")
            if mode not in wire.LIVE_MODES:
                raise JobError("invalid_value", f"live painting runs {' or '.join(wire.LIVE_MODES)}", "job.mode")
            spec = wire.JobSpec(
                mode=mode,
                model=live.model,
                prompt=live.prompt,
                negative_prompt=live.negative_prompt,
                seed=live.seed,
                steps=live.steps,
                guidance=live.guidance,
                strength=live.strength,
                canvas=live.canvas,
                selection=live.selection,
                style=live.style,
                loras=live.loras,
                blend=wire.Blend(colour_match=False, prefill="none"),
            )
            plan, info, engine, strength, spec = self.plan(spec)[:5]
        except JobError as error:
            raise JobError(error.code, error.message, _live_field(error.field)) from None
        selection = to_box(live.selection)
        if mask is not None and (selection is None or mask.shape[:2] != (selection.height, selection.width)):
            size = f"{selection.width}x{selection.height}" if selection is not None else "no selection"
            raise JobError("size_mismatch", f"mask must cover live.selection exactly ({size})", "mask")
        seed = spec.seed if spec.seed is not None else secrets.randbelow(2**32)
        generation = GenerationInput(
            mode=Mode(spec.mode),
            model=info.id,
            prompt=spec.prompt,
            negative_prompt=spec.negative_prompt,
            seed=seed,
            steps=spec.steps or info.default_steps,
            guidance=spec.guidance if spec.guidance is not None else info.default_guidance,
            strength=strength,
            width=plan.model_width,
            height=plan.model_height,
            image=None,
            mask=None,
            previews=False,
            loras=tuple((ref.name, ref.weight) for ref in spec.loras or ()),
        )
        try:
            resolved = engine.reproduction_params(generation)  # a few-step profile's steps and guidance
        except JobError as error:
            raise JobError(error.code, error.message, _live_field(error.field)) from None
        generation = dataclasses.replace(
            generation,
            steps=int(resolved.get("steps", generation.steps)),
            guidance=float(resolved.get("guidance", generation.guidance)),
        )
        words = " ".join(live.prompt.split())
        session = LiveSession(
            session_id=uuid.uuid4().hex,
            owner=client_id,
            model=info,
            engine=engine,
            plan=plan,
            generation=generation,
            mask=selection_over_upload(plan, mask),
            publish=publish,
            layer_name=f"Live: {words[:48]}" if words else f"Live ({info.id})",
        )
        self.live_sessions.add(session)
        log.info(
            "live session %s started: %s on %s, %dx%d region at model size %dx%d, from %s",
            session.id[:8],
            spec.mode,
            info.id,
            plan.upload.width,
            plan.upload.height,
            plan.model_width,
            plan.model_height,
            client_id[:8],
        )
        return session

    def live_frame(self, session: LiveSession, seq: int, rect: Box, pixels: np.ndarray) -> None:
        """Patch the session's copy; the newest frame waits for the session's next turn on its device."""
        if session.patch(seq, rect, pixels):
            self._queues[session.engine.device].put(session.turn)

    def stop_live(self, session: LiveSession, reason: str, request_id: str | None = None) -> Any | None:
        """End a session at once (nothing waiting runs; a running frame stops at its next step): the
        ``live_stopped`` message, or None when it had ended already."""
        self.live_sessions.discard(session)
        self._queues[session.engine.device].remove(session.turn)
        if not session.stop():
            return None
        log.info(
            "live session %s %s: %d frames, %d results, %d dropped",
            session.id[:8],
            reason,
            session.frames,
            session.results,
            session.dropped,
        )
        return session.stopped_message(reason, request_id)

    # ------------------------------------------------------------ cancel, list, fetch

    def _owned(self, client_id: str, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise JobError("unknown_job", f"no job {job_id}", "job_id")
        if job.owner != client_id:
            raise JobError("not_owner", f"job {job_id} belongs to another client", "job_id")
        return job

    def cancel(self, client_id: str, job_id: str) -> None:
        job = self._owned(client_id, job_id)
        if job.terminal_event is not None:
            raise JobError("not_cancellable", f"job {job_id} is already {job.state}", "job_id")
        job.cancel.set()
        if self._queues[job.device].remove(job):
            self._finish(job, "cancelled", wire.Cancelled(job_id=job.id))
            log.info("job %s cancelled while queued", job.id[:8])
            self._announce_positions(job.device)
        # a running job stops after its current step; the worker reports `cancelled` then

    def announce_position(self, job: Job) -> int | None:
        """The job's queue position, now told to its owner (None once it left the queue)."""
        job.announced_position = self.positions(job.device).get(job.id)
        return job.announced_position

    def positions(self, device: str) -> dict[str, int]:
        return {job.id: index + 1 for index, job in enumerate(self._queues[device].order())}

    def list_jobs(self, client_id: str) -> list[wire.JobSummary]:
        positions = {job_id: pos for device in self._queues for job_id, pos in self.positions(device).items()}
        return [job.summary(positions.get(job.id)) for job in self.jobs.values() if job.owner == client_id]

    async def fetch(self, client_id: str, job_id: str) -> list[Outgoing]:
        """Everything a reconnecting client needs to place a job's results, ending with its state.

        Results are read in a thread (from memory, or from disk after a restart), a few at a time."""
        job = self.jobs.get(job_id)
        if job is not None:
            self._owned(client_id, job_id)
        elif not JOB_ID.match(job_id):
            raise JobError("unknown_job", f"no job {job_id}", "job_id")
        async with self._disk_readers:
            stored = await asyncio.to_thread(self.store.load, job_id)
        replay = [Outgoing(result_message(item), item.pixels) for item in stored]
        if job is not None:
            if job.terminal_event is not None:
                replay.append(Outgoing(job.terminal_event))
            elif job.state == "queued" and job.id in (positions := self.positions(job.device)):
                replay.append(Outgoing(wire.Queued(job_id=job.id, position=positions[job.id])))
            else:
                replay.append(Outgoing(wire.Started(job_id=job.id)))
            return replay
        if not stored:
            raise JobError("unknown_job", f"no job {job_id}", "job_id")
        if stored[0].owner_key != owner_key(client_id):
            raise JobError("not_owner", f"job {job_id} belongs to another client", "job_id")
        return [*replay, Outgoing(wire.Finished(job_id=job_id, results=len(stored)))]

    # ------------------------------------------------------------ workers

    def _work(self, device: str) -> None:
        queue = self._queues[device]
        while True:
            job = queue.take()
            if job is None:
                return
            self.loop.call_soon_threadsafe(self._announce_positions, device)
            if isinstance(job, LiveTurn):
                # frames run back to back while nobody else waits; then back in line, after the others
                if job.session.run_turn(lambda: len(queue) == 0):
                    queue.put(job)
                continue
            if job.cancel.is_set():  # cancelled while this worker was taking it
                self._finish_threadsafe(job, "cancelled", wire.Cancelled(job_id=job.id))
                continue
            self._running[job.id] = job
            self.jobs_started += 1
            try:
                self._run(job)
            finally:
                self._running.pop(job.id, None)

    def _run(self, job: Job) -> None:
        job.state = "running"
        self.publish(job, wire.Started(job_id=job.id))
        started = time.perf_counter()
        try:
            count = self.execute(job, functools.partial(self.publish, job))
        except JobCancelled:
            if self._shutting_down:
                self._finish_threadsafe(job, "failed", _shutting_down(job))
            else:
                self._finish_threadsafe(job, "cancelled", wire.Cancelled(job_id=job.id))
                log.info("job %s cancelled while running", job.id[:8])
        except JobError as error:
            self._finish_threadsafe(
                job, "failed", wire.Failed(job_id=job.id, code=error.code, message=error.message, field=error.field)
            )
            log.warning("job %s failed: %s (%s)", job.id[:8], error.message, error.code)
        except MemoryError:
            self._finish_threadsafe(
                job, "failed", wire.Failed(job_id=job.id, code="out_of_memory", message="the daemon ran out of memory")
            )
        except Exception as error:  # an engine bug must not kill the worker
            log.exception("job %s crashed", job.id[:8])
            message = f"{type(error).__name__}: {error}"
            self._finish_threadsafe(job, "failed", wire.Failed(job_id=job.id, code="engine_failed", message=message))
        else:
            self._finish_threadsafe(job, "finished", wire.Finished(job_id=job.id, results=count))
            log.info("job %s finished: %d result(s) in %.2f s", job.id[:8], count, time.perf_counter() - started)

    def _finish_threadsafe(self, job: Job, state: str, event: Any) -> None:
        self.loop.call_soon_threadsafe(self._finish, job, state, event)

    def _finish(self, job: Job, state: str, event: Any) -> None:
        if job.terminal_event is not None:
            return  # a job ends once
        job.state = state
        job.terminal_event = event
        job.image = job.mask = None  # the pixels are no longer needed; results live in the store
        job.controls, job.references = [], []
        self._deliver(job.owner, Outgoing(event))

    def _announce_positions(self, device: str) -> None:
        """Coalesced: one pass per POSITION_UPDATE_SECONDS per device, sending only changed positions."""
        if device in self._announcing:
            return
        self._announcing.add(device)
        self.loop.call_later(POSITION_UPDATE_SECONDS, self._send_positions, device)

    def _send_positions(self, device: str) -> None:
        self._announcing.discard(device)
        for job_id, position in self.positions(device).items():
            job = self.jobs.get(job_id)
            if job is not None and job.announced_position != position:
                job.announced_position = position
                self._deliver(job.owner, Outgoing(wire.Queued(job_id=job_id, position=position)))

    def running(self) -> list[Job]:
        return list(self._running.values())

    def shutdown(self, timeout: float = 10.0) -> list[str]:
        """Stop every job (each ends as `failed` with `shutting_down`), wait for the workers, say what stopped."""
        self._shutting_down = True
        interrupted = []
        for session in list(self.live_sessions):
            stopped = self.stop_live(session, "shutting_down")
            if stopped is not None:
                session.publish(stopped, None)
            interrupted.append(f"live session {session.id[:8]} ({session.frames} frames)")
        for queue in self._queues.values():
            for job in queue.close():
                if isinstance(job, LiveTurn):
                    continue
                interrupted.append(f"job {job.id[:8]} ({job.spec.mode}, queued)")
                self._finish_threadsafe(job, "failed", _shutting_down(job))
        for job in self.running():
            interrupted.append(f"job {job.id[:8]} ({job.spec.mode}, running, {job.results}/{job.spec.batch} done)")
            job.cancel.set()
        deadline = time.monotonic() + timeout
        for worker in self._workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        return interrupted


def _live_field(field: str | None) -> str | None:
    """A planning error's field as the live request names it (``job.selection`` -> ``live.selection``)."""
    if field is not None and field.startswith("job."):
        return "live." + field.removeprefix("job.")
    return field


def _segment_inputs_used(inputs: SegmentInputs) -> set[str]:
    used = {"box"} if inputs.box is not None else set()
    if inputs.points or inputs.negative_points:
        used.add("points")
    if inputs.rough is not None:
        used.add("mask")
    if inputs.text is not None:
        used.add("text")
    return used


def _check_guides(spec: wire.JobSpec, info: ModelInfo, limits: Limits) -> None:
    """Control layers and references the model can take, within the announced limits."""
    if len(spec.controls) > limits.max_controls:
        raise JobError(
            "too_many_controls",
            f"{len(spec.controls)} control layers; this daemon takes at most {limits.max_controls} per job",
            "job.controls",
        )
    if len(spec.references) > limits.max_references:
        raise JobError(
            "too_many_controls",
            f"{len(spec.references)} reference images; this daemon takes at most {limits.max_references} per job",
            "job.references",
        )
    for index, control in enumerate(spec.controls):
        if control.kind not in info.control_kinds:
            can = ", ".join(info.control_kinds) or "none"
            raise JobError(
                "unsupported_control",
                f"model {info.id!r} has no {control.kind} control; it takes: {can}",
                f"job.controls.{index}.kind",
            )
        if control.start >= control.end:
            raise JobError(
                "invalid_field",
                f"control {index} starts at {control.start} but ends at {control.end}: start must be before end",
                f"job.controls.{index}.end",
            )
    for index, reference in enumerate(spec.references):
        if reference.take not in info.reference_modes:
            raise JobError(
                "unsupported_control",
                f"model {info.id!r} takes no reference images (no IP-Adapter for its family is configured)"
                if not info.reference_modes
                else f"model {info.id!r} takes no {reference.take} references",
                f"job.references.{index}.take",
            )


def _check_control_sizes(plan: JobPlan, controls: list[np.ndarray]) -> None:
    """Each control layer covers exactly the planned control region, so it lines up with the canvas."""
    region = control_region(plan)
    for index, array in enumerate(controls):
        if array.shape[:2] != (region.height, region.width):
            raise JobError(
                "size_mismatch",
                f"control {index} is {array.shape[1]}x{array.shape[0]} but the planned control region is "
                f"{region.width}x{region.height} ({_rect_text(region)})",
                f"controls.{index}",
            )


def _shutting_down(job: Job) -> wire.Failed:
    return wire.Failed(job_id=job.id, code="shutting_down", message="the daemon shut down; the job was interrupted")


def _own(crop: np.ndarray) -> np.ndarray:
    """The crop as an array of its own when it is a view into something larger, so a queued job
    does not keep the whole upload (or the websocket frame it was decoded from) alive; a crop that
    is the whole payload stays a view (copying 16 MB costs more than the frame's header it keeps)."""
    root = crop
    while isinstance(root.base, np.ndarray):
        root = root.base
    held = root.nbytes if root.base is None else memoryview(root.base).nbytes
    return crop.copy() if held > crop.nbytes + SPARE_BYTES else crop


def _rect_text(rect: Box) -> str:
    return f"x={rect.x} y={rect.y} {rect.width}x{rect.height}"
