"""Device, precision and memory policy: the few decisions that make or break a consumer GPU."""

from __future__ import annotations

import gc
from typing import Literal

import torch

Offload = Literal["auto", "none", "model", "sequential"]

# Working memory a job needs on top of the weights (activations, VAE decode), measured roughly on
# fp16 cards at the family's native size; the auto offload decision keeps this much free.
_HEADROOM_BYTES = {"sdxl": 4 << 30, "sd2": 2 << 30, "sd1": 2 << 30}


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


def choose_offload(setting: Offload, device: str, weight_bytes: int, family: str) -> Offload:
    """``auto``: keep everything on the GPU when weights + headroom fit in free memory, else model offload."""
    if setting != "auto":
        return setting if device != "cpu" else "none"
    if not device.startswith("cuda"):
        return "none"
    free, _total = torch.cuda.mem_get_info(torch.device(device))
    needed = weight_bytes + _HEADROOM_BYTES.get(family, 2 << 30)
    return "none" if free >= needed else "model"


def release_memory(device: str) -> None:
    """Return freed tensors' memory to the allocator's owner (the OS / other processes)."""
    gc.collect()
    if device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.empty_cache()
    elif device == "mps" and torch.backends.mps.is_available():
        torch.mps.empty_cache()
