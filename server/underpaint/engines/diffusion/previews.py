"""Per-step preview images made from the latents, cheap enough to send every step.

The linear approximation multiplies the 4 latent channels by a 4x3 matrix (factors from ComfyUI's
latent_formats.py) and costs well under a millisecond; TAESD, a tiny distilled VAE decoder, looks much
better and is used when its weights are configured or cached.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import torch

MAX_SIDE = 256

_FACTORS = {
    "sd1": (
        [[0.3512, 0.2297, 0.3227], [0.3250, 0.4974, 0.2350], [-0.2829, 0.1762, 0.2721], [-0.2120, -0.2616, -0.7177]],
        [0.0, 0.0, 0.0],
    ),
    "sdxl": (
        [[0.3651, 0.4232, 0.4341], [-0.2533, -0.0042, 0.1068], [0.1076, 0.1111, -0.0362], [-0.3165, -0.2492, -0.2188]],
        [0.1084, -0.0175, -0.0011],
    ),
}


class Previewer(Protocol):
    def __call__(self, latents: torch.Tensor) -> np.ndarray: ...


def _to_uint8(rgb: torch.Tensor) -> np.ndarray:
    """(H, W, 3) in [-1, 1] -> uint8, shrunk by an integer stride to at most MAX_SIDE."""
    stride = max(1, -(-max(rgb.shape[0], rgb.shape[1]) // MAX_SIDE))
    rgb = rgb[::stride, ::stride]
    return ((rgb.float() + 1.0) * 127.5).clamp(0, 255).to(torch.uint8).cpu().numpy()


class LinearPreview:
    """Latent -> RGB by one small matmul (SD2 shares SD1's VAE, so its factors)."""

    def __init__(self, family: str) -> None:
        weights, bias = _FACTORS["sdxl" if family == "sdxl" else "sd1"]
        self._weights = torch.tensor(weights)
        self._bias = torch.tensor(bias)

    def __call__(self, latents: torch.Tensor) -> np.ndarray:
        x = latents[0].detach()
        if self._weights.device != x.device or self._weights.dtype != x.dtype:
            self._weights = self._weights.to(x.device, x.dtype)
            self._bias = self._bias.to(x.device, x.dtype)
        rgb = torch.einsum("chw,cr->hwr", x, self._weights) + self._bias
        return _to_uint8(rgb)


class TaesdPreview:
    """TAESD/TAESDXL decoder (``AutoencoderTiny``): real colours and shapes at a few % of a step."""

    def __init__(self, folder: str | Path, device: str, dtype: torch.dtype) -> None:
        from diffusers import AutoencoderTiny

        self._vae = AutoencoderTiny.from_pretrained(str(folder), local_files_only=True).to(device, dtype).eval()

    @torch.no_grad()
    def __call__(self, latents: torch.Tensor) -> np.ndarray:
        x = latents[:1].to(self._vae.device, self._vae.dtype)
        image = self._vae.decode(x, return_dict=False)[0][0]  # [-1, 1], (3, H, W)
        return _to_uint8(image.permute(1, 2, 0))


def find_taesd(family: str) -> Path | None:
    """madebyollin/taesd(xl) in the local HF cache, if someone downloaded it; never hits the network."""
    from huggingface_hub import try_to_load_from_cache

    repo = "madebyollin/taesdxl" if family == "sdxl" else "madebyollin/taesd"
    found = try_to_load_from_cache(repo, "config.json")
    if isinstance(found, str) and (Path(found).parent / "diffusion_pytorch_model.safetensors").exists():
        return Path(found).parent
    return None


def make_previewer(setting: str, family: str, device: str, dtype: torch.dtype) -> Previewer | None:
    """``none`` | ``linear`` | ``taesd`` (from the HF cache) | ``auto`` (TAESD on GPU when cached) | a folder."""
    if setting == "none":
        return None
    if setting == "linear":
        return LinearPreview(family)
    if setting in ("auto", "taesd"):
        folder = find_taesd(family) if (setting == "taesd" or device != "cpu") else None
        return TaesdPreview(folder, device, dtype) if folder else LinearPreview(family)
    return TaesdPreview(setting, device, dtype)
