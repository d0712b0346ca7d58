"""Upscale and refine-upscale jobs: planning from bounds, the tiled passes, results streamed as tiles.

An upscale never holds its result whole. The upscaler runs over the uploaded region in overlapping
tiles (``canvas.tiles``); each band of finished output rows the pass hands out is cut at once into
result tiles of at most ``RESULT_TILE_BYTES`` (full layer width; the bands are known from the tiling,
so the count is known before the first one), each stored (``outputs``) and published by a thread
beside the pass (``_Handoff``), while the model runs on: after the last model tile only the last
band is left to send. An opaque upload runs the pass on RGB and gets its alpha per result tile. A
refine-upscale first writes
the upscaled rows to a raw file on disk, then runs the diffusion model as img2img over overlapping
tiles of it at the model's native size (same prompt, seed per tile from the job's), blended the same
way, and streams those rows out. Progress counts upscaler tiles plus diffusion steps of every tile.
"""

from __future__ import annotations

import itertools
import math
import tempfile
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from underpaint import __version__
from underpaint.canvas.geometry import Box
from underpaint.canvas.plan import JobPlan, model_size
from underpaint.canvas.resize import resize_exact
from underpaint.canvas.tiles import Cancelled, Process, TiledPass, pass_memory
from underpaint.daemon.outputs import OutputStore, StoredResult, owner_key
from underpaint.daemon.records import Job, Publish, result_message
from underpaint.engines.base import Engine, GenerationInput, JobCancelled, StepProgress
from underpaint.engines.upscale import MARGIN, UpscalePlan, Upscaler, opaque_rows, rgba, tile_process
from underpaint.errors import JobError
from underpaint.modes import Mode
from underpaint_protocol import PROTOCOL_VERSION
from underpaint_protocol import messages as wire
from underpaint_protocol.messages import Limits

RESULT_TILE_BYTES = 8 * 1024 * 1024
"""Bytes of RGBA per result tile (at most half a frame): several fit in a connection's event budget
(64 MB), so a client reading at loopback speed is never dropped as too slow while a fast upscaler
produces."""
BAND_BYTES = 32 * 1024 * 1024
"""Most bytes of one band of finished output rows (uint8 RGBA): caps the tile height on wide layers."""
DEFAULT_REFINE_STRENGTH = 0.3
MAX_FACTOR = 16.0


def plan_upscale(spec: wire.JobSpec, upscaler: Upscaler, limits: Limits) -> tuple[JobPlan, UpscalePlan]:
    """Plan an upscale from bounds alone, checking every size against the limits first."""
    if spec.upscale is None:
        raise JobError("invalid_value", f"{spec.mode} needs `upscale` with its factor", "job.upscale")
    if spec.batch != 1:
        raise JobError("invalid_value", f"{spec.mode} makes one result; batch must be 1", "job.batch")
    factor = float(spec.upscale.factor)
    if not 1.0 <= factor <= MAX_FACTOR:
        raise JobError("invalid_value", f"factor must be in [1, {MAX_FACTOR:g}], got {factor}", "job.upscale.factor")
    width, height = spec.canvas.width, spec.canvas.height
    canvas = Box(0, 0, width, height)
    region = canvas
    if spec.selection is not None:
        region = Box(spec.selection.x, spec.selection.y, spec.selection.width, spec.selection.height).intersect(canvas)
        if region.is_empty:
            raise JobError("empty_selection", "the selection lies outside the canvas", "job.selection")
    scaled = Box(0, 0, max(1, round(width * factor)), max(1, round(height * factor)))
    left, top = round(region.x * factor), round(region.y * factor)
    layer = Box.from_edges(
        left, top, max(left + 1, round(region.right * factor)), max(top + 1, round(region.bottom * factor))
    )
    field = "job.upscale.factor"
    if max(scaled.width, scaled.height) > limits.max_canvas_side:
        raise JobError(
            "too_many_pixels",
            f"x{factor:g} makes the canvas {scaled.width}x{scaled.height}; sides are limited to "
            f"{limits.max_canvas_side} pixels",
            field,
        )
    if layer.area > limits.max_result_pixels:
        raise JobError(
            "too_many_pixels",
            f"x{factor:g} makes a {layer.width}x{layer.height} layer, over the limit of "
            f"{limits.max_result_pixels} result pixels",
            field,
        )
    if region.area > limits.max_upload_pixels:
        raise JobError(
            "too_many_pixels",
            f"the upscale needs an upload of {region.width}x{region.height}, over the limit of "
            f"{limits.max_upload_pixels} pixels",
            "job.selection" if spec.selection is not None else "job.canvas",
        )
    plan = JobPlan(
        mode=Mode(spec.mode),
        canvas=canvas,
        new_canvas=scaled,
        selection=None if spec.selection is None else region,
        work=region,
        upload=region,
        model_width=layer.width,
        model_height=layer.height,
        strength=spec.strength if spec.strength is not None else DEFAULT_REFINE_STRENGTH,
    )
    # A tile row's band of finished rows spans the layer's width: keep it within BAND_BYTES.
    tile = min(
        upscaler.tile_for(factor, spec.upscale.tile), max(32, BAND_BYTES // (4 * layer.width * math.ceil(factor)))
    )
    rows = max(1, min(RESULT_TILE_BYTES, limits.max_frame_bytes // 2) // (4 * layer.width))
    return plan, UpscalePlan(factor, upscaler, region, scaled, layer, tile, rows)


def memory_bound(up: UpscalePlan, model_bytes: int = 0) -> int:
    """What an upscale holds beyond its upload, the model and the results waiting to be sent (those are
    bounded by the connection's event budget, 64 MB): the tiled pass's buffers (``tiles.pass_memory``)
    with one tile's working copies (input, native output, resampled, sharpened: float32 RGBA, a few
    each) and the output of the tile before it, blended while ``Lookahead`` makes this one, a result
    tile being cut from a band (RGBA) and one being stored while the pass goes on (``_Handoff``). For
    4096x4096 -> 16384x16384 classical: about 116 MiB, where the result itself is 1 GiB."""
    scale_x, scale_y = up.layer.width / up.region.width, up.layer.height / up.region.height
    tiled = TiledPass(up.region.width, up.region.height, up.layer.width, up.layer.height, up.tile, MARGIN)
    native = up.upscaler.scale ** up.upscaler.passes(up.factor)
    side_in = up.tile + 2 * MARGIN
    tile_bytes = 16 * side_in * side_in * (2 * native * native + 4 * scale_x * scale_y) + model_bytes
    ahead = 16 * side_in * side_in * scale_x * scale_y  # the tile being blended while the next one is made
    return pass_memory(tiled, 4, int(tile_bytes + ahead)) + (4 + 4) * up.layer.width * up.result_rows


class ResultTiles:
    """Cuts each band of finished output rows (RGB of an opaque pass, or RGBA) into RGBA result tiles of
    at most ``result_rows`` rows, each a new array (it never keeps a band alive), and stores and
    publishes each at once. ``count`` is known from the emitting pass's bands before the first."""

    def __init__(self, up: UpscalePlan, emitting: TiledPass, save: Callable[[int, int, np.ndarray], None]) -> None:
        self.up = up
        self.save = save
        edges = [*sorted({target.y for _, target in emitting.boxes()}), emitting.out_h]  # where bands start
        self.count = sum(math.ceil((end - start) / up.result_rows) for start, end in itertools.pairwise(edges))
        self.next_row = 0
        self.sent = 0

    def emit(self, first_row: int, rows: np.ndarray) -> None:
        assert first_row == self.next_row, "rows arrive in order"
        for start in range(0, rows.shape[0], self.up.result_rows):
            piece = rows[start : start + self.up.result_rows]
            self.save(self.sent, first_row + start, rgba(piece))
            self.sent += 1
        self.next_row = first_row + rows.shape[0]


class DiskImage:
    """Raw RGBA rows in a temporary file: the upscaled image a refine pass reads tiles from."""

    def __init__(self, folder: Path, width: int, height: int) -> None:
        self.file = tempfile.NamedTemporaryFile(dir=folder, prefix="underpaint-upscale-", suffix=".rgba")  # noqa: SIM115
        self.width, self.height = width, height
        self.file.truncate(width * height * 4)
        self.pixels = np.memmap(self.file.name, np.uint8, "r+", shape=(height, width, 4))

    def write(self, first_row: int, rows: np.ndarray) -> None:
        self.pixels[first_row : first_row + rows.shape[0]] = rows

    def read(self, box: Box) -> np.ndarray:
        return np.array(self.pixels[box.y : box.bottom, box.x : box.right])

    def close(self) -> None:
        del self.pixels
        self.file.close()


def execute_upscale(job: Job, publish: Publish, store: OutputStore, scratch: Path) -> int:
    """Run an upscale or refine-upscale job (one with ``upscale``); returns how many result tiles it made.

    For refine-upscale ``job.engine`` is the diffusion engine; ``scratch`` holds the upscaled rows."""
    up = job.upscale
    assert up is not None
    image = job.image
    if image is None or image.shape[:2] != (up.region.height, up.region.width):
        raise JobError("region_mismatch", "the upscale needs the pixels of its region", "image")
    refine = job.plan.mode is Mode.REFINE_UPSCALE
    upscale_pass = TiledPass(up.region.width, up.region.height, up.layer.width, up.layer.height, up.tile, MARGIN)
    opaque = bool(image[:, :, 3].min() == 255)
    process = tile_process(up.upscaler, up.factor, upscale_pass.scale_x, upscale_pass.scale_y, opaque)
    refine_pass = _refine_pass(job) if refine else None
    progress = _Progress(job, publish, upscale_pass.tiles, refine_pass)

    def save(index: int, row: int, pixels: np.ndarray) -> None:
        stored = store.save(
            StoredResult(
                job_id=job.id,
                index=index,
                owner_key=owner_key(job.owner),
                name=f"Upscale x{up.factor:g} ({job.model.id})",
                x=up.layer.x,
                y=up.layer.y + row,
                canvas={"x": 0, "y": 0, "width": up.scaled.width, "height": up.scaled.height},
                params=_params(job),
                pixels=pixels,
                output=None,
                upscale={
                    "factor": up.factor,
                    "source": _rect(up.region),
                    "canvas": {"width": up.scaled.width, "height": up.scaled.height},
                    "layer": _rect(up.layer),
                    "tiles": tiles.count,
                },
            )
        )
        job.results = index + 1
        publish(result_message(stored), stored.pixels)

    saver = _Handoff(save)
    tiles = ResultTiles(up, upscale_pass if refine_pass is None else refine_pass.pass_, saver)

    def read_region(box: Box) -> np.ndarray:
        return image[box.y : box.bottom, box.x : box.right]

    ahead = Lookahead(upscale_pass, read_region, process, job.cancel)
    try:
        if refine_pass is None:
            upscale_pass.run(read_region, ahead, tiles.emit, job.cancel, progress.tile)
        else:
            disk = DiskImage(scratch, up.layer.width, up.layer.height)
            try:
                write = opaque_rows(disk.write) if opaque else disk.write
                upscale_pass.run(read_region, ahead, write, job.cancel, progress.tile)
                job.image = None  # the upload is no longer needed
                refine_pass.pass_.run(disk.read, refine_pass.process(progress), tiles.emit, job.cancel)
            finally:
                disk.close()
    except Cancelled:
        raise JobCancelled() from None
    finally:
        ahead.close()
        saver.close()
    return tiles.sent


class Lookahead:
    """The tiled pass's ``process``, one tile ahead: while the pass blends tile k and hands out its rows,
    a thread of its own runs the upscaler on tile k + 1 (the model on the accelerator or its threads, the
    blending, storing and sending on the CPU beside it). At most two tiles' outputs are alive: the one
    being blended and the next (``memory_bound``). Tiles come in the pass's order (``TiledPass.boxes``)."""

    def __init__(
        self, tiled: TiledPass, read: Callable[[Box], np.ndarray], process: Process, cancel: threading.Event
    ) -> None:
        self.boxes = iter(tiled.boxes())
        self.read, self.process, self.cancel = read, process, cancel
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="underpaint-upscaler")
        self.pending: deque[tuple[Box, Box, Future[np.ndarray]]] = deque()
        self._submit_next()

    def _submit_next(self) -> None:
        boxes = next(self.boxes, None)
        if boxes is not None:
            self.pending.append((*boxes, self.thread.submit(self._run, *boxes)))

    def _run(self, source: Box, target: Box) -> np.ndarray:
        if self.cancel.is_set():  # the pass stops before this tile anyway
            raise Cancelled()
        return self.process(self.read(source), source, target)

    def __call__(self, tile: np.ndarray, source: Box, target: Box) -> np.ndarray:
        ahead_source, ahead_target, made = self.pending.popleft()
        assert (ahead_source, ahead_target) == (source, target), "the pass takes its tiles in order"
        self._submit_next()
        return made.result()

    def close(self) -> None:
        """Drop the tile computed ahead (a cancelled or failed pass) and stop the thread."""
        for _, _, made in self.pending:
            made.cancel()
        self.thread.shutdown(wait=True)


class _Handoff:
    """Result tiles stored and published by a thread of their own while the pass computes on (writing a
    tile to disk takes milliseconds to tens of them). One tile at most is with it: the next waits for it,
    so memory grows by one result tile (``memory_bound``) and results still go out in order."""

    def __init__(self, save: Callable[[int, int, np.ndarray], None]) -> None:
        self.save = save
        self.slot = threading.Semaphore(1)
        self.error: BaseException | None = None
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="underpaint-results")

    def __call__(self, index: int, row: int, pixels: np.ndarray) -> None:
        self.slot.acquire()
        if self.error is not None:  # storing the tile before failed (a full disk): stop the pass with it
            self.slot.release()
            raise self.error
        self.thread.submit(self._save, index, row, pixels)

    def _save(self, index: int, row: int, pixels: np.ndarray) -> None:
        try:
            self.save(index, row, pixels)
        except BaseException as error:  # handed back to the pass, which raises it on the job's thread
            self.error = error
        finally:
            self.slot.release()

    def close(self) -> None:
        """Wait for the tile being stored; raise what storing it raised."""
        self.thread.shutdown(wait=True)
        if self.error is not None:
            raise self.error


@dataclass
class _RefinePass:
    pass_: TiledPass
    engine: Engine
    job: Job
    steps_per_tile: int

    def process(self, progress: _Progress) -> Callable[[np.ndarray, Box, Box], np.ndarray]:
        job, engine = self.job, self.engine
        resolution = engine.resolution(job.model.id)
        counter = iter(range(1 << 30))

        def run(tile: np.ndarray, source: Box, target: Box) -> np.ndarray:
            index = next(counter)
            width, height = model_size(source.width, source.height, resolution)
            rgb = resize_exact(np.ascontiguousarray(tile[:, :, :3]), width, height)
            generation = GenerationInput(
                mode=Mode.IMG2IMG,
                model=job.model.id,
                prompt=job.spec.prompt,
                negative_prompt=job.spec.negative_prompt,
                seed=(job.seed + index) % 2**32,
                steps=job.steps,
                guidance=job.guidance,
                strength=job.strength,
                width=width,
                height=height,
                image=rgb,
                mask=None,
                previews=False,
            )
            # read to its end, so that a remote stream is closed
            [made] = list(engine.generate(generation, 1, progress.step, job.cancel))
            refined = resize_exact(made, source.width, source.height).astype(np.float32)
            out = np.concatenate([refined, tile[:, :, 3:].astype(np.float32)], axis=2)
            return out[target.y - source.y : target.bottom - source.y, target.x - source.x : target.right - source.x]

        return run


def _refine_pass(job: Job) -> _RefinePass:
    engine = job.engine
    up = job.upscale
    assert up is not None
    budget = engine.resolution(job.model.id).pixel_budget
    native = max(64, int(math.sqrt(budget)))
    margin = max(16, native // 8)
    tile = max(32, native - 2 * margin)
    refine = TiledPass(up.layer.width, up.layer.height, up.layer.width, up.layer.height, tile, margin)
    steps = max(1, min(job.steps, round(job.steps * job.strength)))
    return _RefinePass(refine, engine, job, steps)


class _Progress:
    """One step counter over the whole job: upscaler tiles, then every diffusion step of every tile;
    each event also says which tile of which pass (``TileProgress``), for the artist's progress line."""

    def __init__(self, job: Job, publish: Publish, tiles: int, refine: _RefinePass | None) -> None:
        self.job, self.publish = job, publish
        self.done = 0
        self.refine_tiles = refine.pass_.tiles if refine is not None else 0
        self.per_tile = refine.steps_per_tile if refine is not None else 0
        self.upscale_tiles = tiles
        self.refined = 0
        self.within = 0

    @property
    def total(self) -> int:
        return self.upscale_tiles + self.refine_tiles * self.per_tile

    def tile(self) -> None:
        self.done += 1
        where = wire.TileProgress(stage="upscale", index=self.done, count=self.upscale_tiles)
        self.publish(wire.Progress(job_id=self.job.id, step=self.done, total=self.total, tile=where))

    def step(self, progress: StepProgress) -> None:
        """A diffusion step of the current refine tile (the engine counts 1..its total per tile)."""
        if progress.step == 1 and self.within:
            self.refined += 1
        self.within = progress.step
        self.per_tile = max(self.per_tile, progress.total)
        step = self.upscale_tiles + self.refined * self.per_tile + progress.step
        where = wire.TileProgress(
            stage="refine",
            index=min(self.refined + 1, self.refine_tiles),
            count=self.refine_tiles,
            step=progress.step,
            steps=progress.total,
        )
        self.publish(wire.Progress(job_id=self.job.id, step=min(step, self.total), total=self.total, tile=where))


def _params(job: Job) -> dict[str, Any]:
    spec = job.spec
    up = job.upscale
    assert up is not None
    params: dict[str, Any] = {
        "mode": spec.mode,
        "model": job.model.id,
        "engine": job.model.engine,
        "upscale": {"factor": up.factor, "model": up.upscaler.id, "tile": up.tile},
        "canvas": spec.canvas.model_dump(),
        "selection": spec.selection.model_dump() if spec.selection else None,
        "underpaint": __version__,
        "protocol": PROTOCOL_VERSION,
    }
    if job.plan.mode is Mode.REFINE_UPSCALE:
        params.update(
            prompt=spec.prompt,
            negative_prompt=spec.negative_prompt,
            seed=job.seed,
            steps=job.steps,
            guidance=job.guidance,
            strength=job.strength,
        )
    return params


def _rect(box: Box) -> dict[str, int]:
    return {"x": box.x, "y": box.y, "width": box.width, "height": box.height}
