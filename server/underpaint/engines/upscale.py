"""Upscalers: classical resampling (no weights, always there) and super-resolution models through spandrel.

An upscaler only knows its native factor and how to run one tile (``forward``); the tiled pass
(``canvas.tiles``) and :func:`tile_process` make any factor of any canvas from that: the native pass
run as often as needed to reach the factor, then exact resampling onto the output grid. The
classical upscaler's "native pass" is the identity, and it sharpens edges after the Lanczos
resampling. Model weights are read by ``engines.weights`` (safetensors, or ``.pth`` without
pickled code); spandrel detects Real-ESRGAN, ESRGAN, SwinIR, HAT, DAT, SPAN, ... from the keys.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from underpaint.canvas.geometry import Box
from underpaint.canvas.plan import ModelResolution
from underpaint.canvas.tiles import Emit, Process, edge_aware_sharpen, resample
from underpaint.engines.base import Engine, GenerationInput, ModelInfo, ProgressCallback
from underpaint.errors import JobError
from underpaint.modes import Mode

CLASSICAL_UPSCALER = "classical-upscale"
MAX_NATIVE_SIDE = 2048
"""Largest tile side a model pass produces: bounds the per-tile memory whatever the factor."""
MAX_OUTPUT_TILE = 1024
"""Largest tile side after resampling: the float32 working copies of one tile stay within tens of MB."""
CHANNELS_LAST = frozenset({"ESRGAN", "Compact"})
"""Convolutional architectures run channels-last on the CPU: oneDNN's convolutions are faster that way
(measured: Compact 1.4x, RRDBNet 1.1x) and the output is interleaved RGB as it comes (no conversion).
Others keep torch's default layout (some reshape with ``view``, which needs it)."""
MARGIN = 16
"""Input pixels of context around every tile (more than the receptive field's useful reach of the
usual SR models at a tile border; half of it, in output pixels, is the blend band)."""


class Upscaler:
    """One way of scaling a tile: the native factor and the pass itself (float32 RGB 0-255)."""

    id: str = ""
    family: str = ""
    licence: str = ""
    scale: int = 1
    """The model's native factor (1: resampling only)."""
    default_tile: int = 512
    sharpen: bool = False
    """Edge-aware sharpening after the resampling (for the classical upscaler)."""

    def forward(self, rgb: np.ndarray) -> np.ndarray:
        """(h, w, 3) uint8 or float32 0-255 -> (h * scale, w * scale, 3) float32 0-255, rows contiguous."""
        return rgb

    def passes(self, factor: float) -> int:
        """Native passes that reach ``factor`` (the resampling then shrinks the rest exactly)."""
        if self.scale <= 1 or factor <= 1.0:
            return 0
        return max(1, math.ceil(math.log(factor, self.scale) - 1e-9))

    def tile_for(self, factor: float, wanted: int | None) -> int:
        """Input tile core side: the job's or the model's choice, small enough that a model pass
        stays within ``MAX_NATIVE_SIDE`` and the resampled tile within ``MAX_OUTPUT_TILE``."""
        native = self.scale ** self.passes(factor)
        most = min(MAX_NATIVE_SIDE // native, int(MAX_OUTPUT_TILE / max(factor, 1.0))) - 2 * MARGIN
        return max(32, min(wanted or self.default_tile, most))


class ClassicalUpscaler(Upscaler):
    id = CLASSICAL_UPSCALER
    family = "classical"
    licence = "no weights"
    scale = 1
    default_tile = 512
    sharpen = True


class SpandrelUpscaler(Upscaler):
    """A super-resolution model spandrel detects (``model.scale`` is its native factor)."""

    def __init__(self, source: str, device: str) -> None:
        import spandrel

        from underpaint.engines.weights import ALLOW_RESEARCH, licence_of, load_descriptor, parse_source, permissive

        parsed = parse_source(source)
        descriptor = load_descriptor(parsed.path)
        channels = (descriptor.input_channels, descriptor.output_channels)
        if not isinstance(descriptor, spandrel.ImageModelDescriptor) or channels != (3, 3):
            raise ValueError(f"{parsed.path.name}: {descriptor.architecture.name} is not an RGB image model")
        if descriptor.purpose not in ("SR", "Restoration"):
            raise ValueError(f"{parsed.path.name}: {descriptor.architecture.name} is a {descriptor.purpose} model")
        self.id = parsed.id
        self.family = descriptor.architecture.name
        self.licence = licence_of(descriptor.architecture.id)
        if not permissive(self.licence) and not parsed.allow_research:
            raise ValueError(
                f"{parsed.path.name}: {self.family} is licensed {self.licence}, for research only; "
                f"add {ALLOW_RESEARCH} to the model source to use it anyway"
            )
        self.scale = int(descriptor.scale)
        self.default_tile = 192 if self.scale >= 4 else 256
        self.device = device
        self.descriptor: Any = descriptor.to(device).eval()
        if device == "cpu" and descriptor.architecture.id in CHANNELS_LAST:
            import torch

            self.descriptor.model.to(memory_format=torch.channels_last)
        self.lock = threading.Lock()

    def forward(self, rgb: np.ndarray) -> np.ndarray:
        import torch

        pixels = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None]
        image = pixels.to(self.device, torch.float32).div(255.0)  # a new tensor: the caller's array stays as it is
        with self.lock, torch.inference_mode():
            out = self.descriptor(image)[0]
            if self.device != "cpu":  # the accelerator interleaves and scales; one copy comes back
                return out.permute(1, 2, 0).mul(255.0).contiguous().cpu().numpy()
        # a channels-last model's output is interleaved already; planes go to pixels with OpenCV (several
        # times faster than a strided copy)
        pixels_last = out.permute(1, 2, 0)
        made = pixels_last.numpy() if pixels_last.is_contiguous() else cv2.merge(list(out.numpy()))
        # in place, on this thread (torch's threaded multiply cost twice as much CPU); values past 0-255
        # stay: the tiled pass saturates when it rounds into uint8
        return np.multiply(made, np.float32(255.0), out=made)


def tile_process(upscaler: Upscaler, factor: float, scale_x: float, scale_y: float, opaque: bool) -> Process:
    """The tiled pass's ``process`` for ``upscaler``: native passes on the RGB, exact resampling onto the
    output grid, edge-aware sharpening (classical) and the alpha channel resampled alongside. An
    ``opaque`` image (every alpha 255, the usual flattened canvas) gets RGB tiles only, no alpha to carry:
    :func:`opaque_rows` adds it to the finished uint8 rows, a quarter of the bytes of the float tiles."""
    passes = upscaler.passes(factor)
    native_scale = upscaler.scale**passes
    pad = math.ceil(3 * max(scale_x, scale_y)) + 2 if upscaler.sharpen else 0  # the sharpening's reach

    def process(tile: np.ndarray, source: Box, target: Box) -> np.ndarray:
        rgb = tile[:, :, :3]
        if passes == 0:
            rgb = rgb.astype(np.float32)
        for _ in range(passes):
            rgb = upscaler.forward(rgb)
        reach = Box.from_edges(
            max(0, target.x - pad),
            max(0, target.y - pad),
            min(round((source.right) * scale_x), target.right + pad),
            min(round((source.bottom) * scale_y), target.bottom + pad),
        )
        out = resample(rgb, source, native_scale, reach, scale_x, scale_y)
        if upscaler.sharpen:
            out = edge_aware_sharpen(out, sigma=max(0.6, 0.5 * scale_x))
        out = out[target.y - reach.y : target.bottom - reach.y, target.x - reach.x : target.right - reach.x]
        if opaque:
            return out
        made = np.empty((target.height, target.width, 4), np.float32)
        made[:, :, :3] = out
        made[:, :, 3:] = resample(tile[:, :, 3:].astype(np.float32), source, 1, target, scale_x, scale_y)
        return made

    return process


def rgba(rows: np.ndarray) -> np.ndarray:
    """Finished rows as a new RGBA array: an opaque pass's RGB gets alpha 255."""
    return cv2.cvtColor(rows, cv2.COLOR_RGB2RGBA) if rows.shape[2] == 3 else rows.copy()


def opaque_rows(emit: Emit) -> Emit:
    """``emit`` for the RGB rows of an opaque pass: the same rows as RGBA, alpha 255."""

    def with_alpha(first_row: int, rows: np.ndarray) -> None:
        emit(first_row, rgba(rows))

    return with_alpha


@dataclass(frozen=True)
class UpscalePlan:
    """What an upscale job scales with what, and where the result lands in the scaled canvas."""

    factor: float
    upscaler: Upscaler
    region: Box
    """The original canvas's pixels to scale (the whole canvas, or the selection's bounds)."""
    scaled: Box
    """The scaled canvas, Box(0, 0, round(width * factor), round(height * factor))."""
    layer: Box
    """The result layer in the scaled canvas."""
    tile: int
    """Input pixels per upscaler tile core."""
    result_rows: int
    """Most rows of the layer per result tile."""


class UpscaleEngine(Engine):
    """The upscalers a daemon serves, as models of mode ``upscale``; the daemon's upscale step
    (``daemon.upscaling``) runs them through the tiled pass, not through ``generate``."""

    name = "upscale"

    def __init__(self, sources: list[str], device: str = "cpu", elsewhere: Sequence[Upscaler] = ()) -> None:
        """``sources`` are loaded here; ``elsewhere`` are upscalers already made, whose passes run where
        they say (``--workers ray``: on the replicas, and ``device`` is then the daemon's queue for them)."""
        self.upscalers: dict[str, Upscaler] = {CLASSICAL_UPSCALER: ClassicalUpscaler()}
        if sources:
            from underpaint.engines.diffusion.device import resolve_device

            self.device = resolve_device(device)
        elif elsewhere:
            self.device = device
        for upscaler in [*(SpandrelUpscaler(source, self.device) for source in sources), *elsewhere]:
            if upscaler.id in self.upscalers:
                raise ValueError(f"two upscalers are named {upscaler.id!r}")
            self.upscalers[upscaler.id] = upscaler

    def models(self) -> list[ModelInfo]:
        return [
            ModelInfo(
                id=up.id,
                engine=self.name,
                family=up.family,
                modes=(Mode.UPSCALE,),
                description=(
                    "Lanczos resampling with edge-aware sharpening; no weights, any factor"
                    if up.scale == 1
                    else f"Super-resolution {up.scale}x ({up.family}, {up.licence}); any factor"
                ),
                default_steps=1,
                default_guidance=0.0,
                loaded=True,
            )
            for up in self.upscalers.values()
        ]

    def upscaler(self, model: str, field: str = "job.model") -> Upscaler:
        if model not in self.upscalers:
            known = ", ".join(self.upscalers)
            raise JobError("unknown_model", f"no upscaler {model!r}; this daemon has: {known}", field)
        return self.upscalers[model]

    def resolution(self, model: str) -> ModelResolution:
        up = self.upscaler(model)
        return ModelResolution(pixel_budget=up.default_tile**2, multiple=1, min_side=1, upscale_small=False)

    def generate(
        self, job: GenerationInput, batch_count: int, on_progress: ProgressCallback, cancel: threading.Event
    ) -> Iterator[np.ndarray]:
        raise JobError("unsupported_mode", f"an upscaler cannot {job.mode.value}; it only upscales", "job.mode")

    def close(self) -> None:
        self.upscalers = {CLASSICAL_UPSCALER: ClassicalUpscaler()}
