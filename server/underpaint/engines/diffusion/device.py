"""Device, precision and memory policy: the few decisions that make or break a consumer GPU."""

from __future__ import annotations

import gc
from typing import Literal

import torch

Offload = Literal["auto", "none", "model", "sequential"]

# Working memory a job needs on top of the weights (activations, VAE decode), measured roughly on
# fp16 cards at the family's native size; the auto offload decision keeps this much free, scaled up
# for larger outputs.
_HEADROOM_BYTES = {"sdxl": 4 << 30, "sd2": 2 << 30, "sd1": 2 << 30}
_NATIVE_PIXELS = {"sdxl": 1024 * 1024, "sd2": 768 * 768, "sd1": 512 * 512}

# VAE decode peak, per output pixel and per byte of the dtype: the last up block works on 128 channels
# at full resolution with a handful of such tensors alive at once (a rough, conservative estimate).
_VAE_DECODE_ELEMENTS_PER_PIXEL = 128 * 8

VAE_TILING_FACTOR = 2
"""Outputs above this many times the model's native pixel budget always decode tiled."""


def resolve_device(name: str) -> str:
    """``auto`` -> cuda, then mps, then cpu; an explicit device that is absent is a configuration error."""
    if name == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for, but torch sees no CUDA GPU")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ValueError("--device mps asked for, but torch sees no Apple GPU")
    if name != "cpu" and not name.startswith("cuda") and name != "mps":
        raise ValueError(f"unknown device {name!r}: use auto, cuda, mps or cpu")
    return name


def pick_dtype(device: str, dtype: str = "auto") -> torch.dtype:
    """Half precision on GPUs (fp16 default: fastest and what the checkpoints ship), fp32 on CPU."""
    table = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
    if dtype != "auto":
        return table[dtype]
    return torch.float32 if device == "cpu" else torch.float16


def module_bytes(modules: list[torch.nn.Module], dtype: torch.dtype) -> int:
    """Bytes the modules' parameters will take once cast to ``dtype``."""
    size = torch.tensor([], dtype=dtype).element_size()
    return sum(p.numel() for m in modules for p in m.parameters()) * size


def working_bytes(family: str, pixels: int | None = None) -> int:
    """Memory a job of ``pixels`` output pixels needs besides the weights (native size when None)."""
    native = _NATIVE_PIXELS.get(family, 512 * 512)
    scale = max(1.0, (pixels or native) / native)
    return int(_HEADROOM_BYTES.get(family, 2 << 30) * scale)


def decide_offload(
    setting: Offload,
    device: str,
    free_bytes: int | None,
    weight_bytes: int,
    family: str,
    pixels: int | None = None,
) -> Offload:
    """Pure offload decision: no torch query, everything it depends on comes in.

    - On the CPU there is nothing to offload to: always ``none``, whatever was asked.
    - An explicit ``none`` / ``model`` / ``sequential`` is honoured on GPUs.
    - ``auto``: only on CUDA with a known free memory. Everything stays on the GPU when weights plus
      working memory for ``pixels`` (native size when None) fit in ``free_bytes``; else model offload
      (one whole module on the GPU at a time, modestly slower). Sequential offload (layer by layer, many
      times slower) is never chosen automatically, only asked for.
    - ``auto`` on MPS, or with unknown free memory: ``none`` (unified memory, nothing to gain).
    """
    if device == "cpu":
        return "none"
    if setting != "auto":
        return setting
    if not device.startswith("cuda") or free_bytes is None:
        return "none"
    needed = weight_bytes + working_bytes(family, pixels)
    return "none" if free_bytes >= needed else "model"


def vae_decode_bytes(width: int, height: int, dtype: torch.dtype) -> int:
    """Rough peak memory of decoding a ``width`` x ``height`` image in one piece."""
    size = torch.tensor([], dtype=dtype).element_size()
    return width * height * _VAE_DECODE_ELEMENTS_PER_PIXEL * size


def decide_vae_tiling(
    width: int, height: int, pixel_budget: int, free_bytes: int | None, dtype: torch.dtype = torch.float16
) -> bool:
    """Pure VAE tiling decision: tile beyond ``VAE_TILING_FACTOR`` x the native pixel budget (where a
    full decode gets expensive on any card), or smaller when the free memory is known and a full decode
    would not fit. Tiling below that costs time and can leave faint seams, so it is off otherwise."""
    if width * height > VAE_TILING_FACTOR * pixel_budget:
        return True
    return free_bytes is not None and vae_decode_bytes(width, height, dtype) > free_bytes


def free_device_bytes(device: str) -> int | None:
    """Free memory of a CUDA device as the driver reports it; None elsewhere (CPU, MPS: unknown)."""
    if not device.startswith("cuda") or not torch.cuda.is_available():
        return None
    free, _total = torch.cuda.mem_get_info(torch.device(device))
    return int(free)


def choose_offload(setting: Offload, device: str, weight_bytes: int, family: str, pixels: int | None = None) -> Offload:
    """:func:`decide_offload` with the device's free memory, queried only when the decision needs it."""
    free = free_device_bytes(device) if setting == "auto" and device.startswith("cuda") else None
    return decide_offload(setting, device, free, weight_bytes, family, pixels)


def release_memory(device: str) -> None:
    """Return freed tensors' memory to the allocator's owner (the OS / other processes)."""
    gc.collect()
    if device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.empty_cache()
    elif device == "mps" and torch.backends.mps.is_available():
        torch.mps.empty_cache()
