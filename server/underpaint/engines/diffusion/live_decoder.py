"""Fast latent decoders for live frames: TAESD / TAESDXL (diffusers' ``AutoencoderTiny``).

A live frame's full VAE decode can cost as much as its steps; a distilled tiny decoder costs a few %
of it at a small loss of detail, which a picture that changes while the artist paints hides. The
daemon is configured with ``--live-decoder SOURCE[#family=sd1|sd2|sdxl]`` (``madebyollin/taesd`` for
SD1.5/SD2, ``madebyollin/taesdxl`` for SDXL, a local diffusers folder, or ``tiny-random``); without
``#family`` the name says it (``xl`` in it: SDXL, else SD1, whose latent space SD2 shares). Only live
frames use it; ordinary jobs always decode with the model's own VAE. Weights load from safetensors only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from underpaint.engines.diffusion.registry import PICKLE_SUFFIXES, TINY_ID, Family

_FAMILY_OPTION = re.compile(r"#family=(sd1|sd2|sdxl)$")


@dataclass(frozen=True)
class LiveDecoderSpec:
    """One configured fast decoder: the model family whose latents it decodes, and its weights."""

    family: Family
    location: str
    """``tiny-random``, a diffusers folder or a Hugging Face repo id."""


def parse_live_decoder(source: str) -> LiveDecoderSpec:
    """``SOURCE[#family=sd1|sd2|sdxl]`` (see the module docstring); ValueError names what is wrong."""
    forced = _FAMILY_OPTION.search(source)
    location = _FAMILY_OPTION.sub("", source)
    if not location:
        raise ValueError(f"live decoder {source!r}: use SOURCE[#family=sd1|sd2|sdxl]")
    path = Path(location).expanduser()
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise ValueError(f"live decoder {path.name} is a pickle; only safetensors decoders are loaded")
    if path.suffix.lower() == ".safetensors":
        raise ValueError(f"live decoder {path.name}: give its diffusers folder (config.json beside the weights)")
    family: Family = "sdxl" if "xl" in Path(location).name.lower() else "sd1"
    if forced:
        family = forced.group(1)  # type: ignore[assignment]
    return LiveDecoderSpec(family=family, location=location)


def decoder_for(specs: dict[Family, LiveDecoderSpec], family: Family) -> LiveDecoderSpec | None:
    """The decoder configured for ``family`` (an SD1 one serves SD2 too: the same latent space)."""
    return specs.get(family) or (specs.get("sd1") if family == "sd2" else None)


def load_live_decoder(spec: LiveDecoderSpec, device: str, dtype: torch.dtype) -> Any:
    """The ``AutoencoderTiny`` on ``device``, from safetensors only."""
    if spec.location == TINY_ID:
        from underpaint.engines.diffusion import tiny

        decoder = tiny.build_live_decoder()
    else:
        from diffusers import AutoencoderTiny

        decoder = AutoencoderTiny.from_pretrained(spec.location, use_safetensors=True)
    return decoder.to(device, dtype).eval()
