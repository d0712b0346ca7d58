"""Control models (ControlNet) and reference adapters (IP-Adapter): what is configured, and loading it safely.

The daemon is configured with ``KIND=SOURCE`` ControlNets (``canny=lllyasviel/control_v11p_sd15_canny``,
``depth=/models/cn-depth``, ``tile=/models/cn-tile.safetensors``, ``scribble=tiny-random``) and IP-Adapter
weight files (``h94/IP-Adapter/models/ip-adapter_sd15.safetensors`` or a local file with its
``image_encoder/`` folder beside it). Each belongs to a model family, read from its config or weight
shapes without loading it; a model takes the kinds configured for its family. Weights load only from
safetensors. Loaded ControlNets stay in memory, shared by every mode's pipeline.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import torch

from underpaint.engines.diffusion.registry import PICKLE_SUFFIXES, TINY_ID, Family, read_json
from underpaint.errors import JobError
from underpaint_protocol.messages import ControlKind

CONTROL_KINDS: tuple[str, ...] = get_args(ControlKind)
REFERENCE_MODES = ("style", "composition", "both")
_FAMILY_OPTION = re.compile(r"#family=(sd1|sd2|sdxl)$")


@dataclass(frozen=True)
class ControlSpec:
    """One configured ControlNet: the kind it serves and where its weights are."""

    kind: str
    location: str
    """``tiny-random``, a diffusers folder, a ``.safetensors`` file or a Hugging Face repo id."""
    family: Family


@dataclass(frozen=True)
class AdapterSpec:
    """One configured IP-Adapter: its weights file (local or ``repo/sub/file.safetensors``)."""

    location: str
    family: Family


def _family_of_config(config: dict) -> Family:
    if config.get("addition_embed_type") == "text_time":
        return "sdxl"
    if config.get("cross_attention_dim") == 1024:
        return "sd2"
    return "sd1" if config else "unknown"


def _hub_config(repo: str) -> dict:
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(repo, "config.json")
    return read_json(Path(cached)) if isinstance(cached, str) else {}


def parse_control_source(source: str) -> ControlSpec:
    """``KIND=SOURCE[#family=sd1|sd2|sdxl]``; the family is read from the ControlNet's config when not given."""
    kind, sep, location = source.partition("=")
    if not sep or kind not in CONTROL_KINDS or not location:
        raise ValueError(f"control {source!r}: use KIND=SOURCE with KIND one of {', '.join(CONTROL_KINDS)}")
    forced = _FAMILY_OPTION.search(location)
    location = _FAMILY_OPTION.sub("", location)
    path = Path(location).expanduser()
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise ValueError(f"control {path.name} is a pickle; only .safetensors ControlNets are loaded")
    family: Family
    if location == TINY_ID:
        family = "sd1"
    elif path.suffix.lower() == ".safetensors":
        family = _family_of_config(read_json(path.with_name(path.stem + ".config") / "config.json"))
        if family == "unknown":
            family = _family_of_single_file(path)
    elif path.is_dir():
        family = _family_of_config(read_json(path / "config.json"))
    else:
        family = _family_of_config(_hub_config(location))
        if family == "unknown":  # not downloaded yet: the names lllyasviel/diffusers use say it
            family = "sdxl" if "xl" in location.lower() else "sd1"
    if forced:
        family = forced.group(1)  # type: ignore[assignment]
    return ControlSpec(kind=kind, location=location, family=family)


def _family_of_single_file(path: Path) -> Family:
    """From the safetensors header: SDXL ControlNets have the text_time embedding."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            keys = list(f.keys())
    except Exception:
        return "unknown"
    if any("add_embedding" in k or "label_emb" in k for k in keys):
        return "sdxl"
    return "sd1" if keys else "unknown"


def parse_adapter_source(source: str) -> AdapterSpec:
    """An IP-Adapter ``.safetensors`` (local, or ``owner/repo/sub/file.safetensors``) ``[#family=...]``."""
    forced = _FAMILY_OPTION.search(source)
    location = _FAMILY_OPTION.sub("", source)
    path = Path(location).expanduser()
    if path.suffix.lower() != ".safetensors":
        raise ValueError(f"IP-Adapter {source!r}: name its .safetensors weights file (pickles are refused)")
    family: Family = "sdxl" if "sdxl" in path.name.lower() else "sd1"
    if path.is_file():
        family = _family_of_adapter(path)
    if forced:
        family = forced.group(1)  # type: ignore[assignment]
    return AdapterSpec(location=location, family=family)


def _family_of_adapter(path: Path) -> Family:
    """SDXL's UNet has 70 cross-attention layers (IP keys up to 139), SD1/2's 16."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        names = list(f.keys())
        keys = [k for k in names if k.startswith("ip_adapter.") and k.endswith("to_k_ip.weight")]
        width = f.get_slice(keys[0]).get_shape()[-1] if keys else 0
    if width == 2048 or len(keys) > 16:
        return "sdxl"
    return "sd2" if width == 1024 else "sd1"


def guides_by_family(controls: list[str], adapters: list[str]) -> tuple[dict[str, list[str]], set[str]]:
    """The control kinds per model family, and the families with an IP-Adapter (for ``underpaint models``)."""
    kinds: dict[str, list[str]] = {}
    for source in controls:
        spec = parse_control_source(source)
        kinds.setdefault(spec.family, []).append(spec.kind)
    return kinds, {parse_adapter_source(source).family for source in adapters}


# --- loading ------------------------------------------------------------------------------------------


def load_controlnet(spec: ControlSpec, base_unet: Any, device: str, dtype: torch.dtype) -> Any:
    """The ControlNet of ``spec`` on ``device``; ``base_unet`` shapes the built-in tiny one."""
    from diffusers import ControlNetModel

    from underpaint.engines.diffusion import tiny

    field = "job.controls"
    path = Path(spec.location).expanduser()
    try:
        if spec.location == TINY_ID:
            seed = CONTROL_KINDS.index(spec.kind) + 1
            model = tiny.build_controlnet(base_unet, seed=seed)
        elif path.suffix.lower() == ".safetensors":
            if not path.is_file():
                raise JobError("model_load_failed", f"ControlNet {path.name} is missing from disk", field)
            sidecar = path.with_name(path.stem + ".config")
            config = {"config": str(sidecar)} if (sidecar / "config.json").is_file() else {}
            model = ControlNetModel.from_single_file(str(path), local_files_only=bool(config) or None, **config)
        elif path.is_dir():
            if not any(p.suffix == ".safetensors" for p in path.iterdir()):
                raise JobError(
                    "unsafe_model_format", f"ControlNet folder {path.name} has no safetensors weights", field
                )
            model = ControlNetModel.from_pretrained(str(path), use_safetensors=True)
        else:
            model = ControlNetModel.from_pretrained(spec.location, use_safetensors=True)
    except JobError:
        raise
    except Exception as exc:
        message = f"could not load the {spec.kind} ControlNet {spec.location}: {exc}"
        raise JobError("model_load_failed", message, field) from exc
    return model.to(device=device, dtype=dtype).eval()


@dataclass
class LoadedAdapter:
    """IP-Adapter weights (``image_proj`` / ``ip_adapter`` dicts as ``load_ip_adapter`` takes them) and
    its image encoder, held in memory so that switching it on again reads nothing from disk."""

    spec: AdapterSpec
    state_dict: dict[str, dict[str, torch.Tensor]]
    image_encoder: Any
    feature_extractor: Any


def load_adapter(spec: AdapterSpec, device: str, dtype: torch.dtype) -> LoadedAdapter:
    from safetensors import safe_open
    from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

    field = "job.references"
    try:
        weights = _adapter_file(spec.location)
        state: dict[str, dict[str, torch.Tensor]] = {"image_proj": {}, "ip_adapter": {}}
        with safe_open(str(weights), framework="pt") as f:
            for key in list(f.keys()):
                group, _, rest = key.partition(".")
                if group in state:
                    state[group][rest] = f.get_tensor(key)
        encoder_dir = weights.parent / "image_encoder"
        encoder: Any = CLIPVisionModelWithProjection.from_pretrained(str(encoder_dir), use_safetensors=True)
    except JobError:
        raise
    except Exception as exc:
        raise JobError("model_load_failed", f"could not load the IP-Adapter {spec.location}: {exc}", field) from exc
    size = encoder.config.image_size
    processor = CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    moved: Any = encoder.to(device=device, dtype=dtype)
    return LoadedAdapter(spec, state, moved.eval(), processor)


def _adapter_file(location: str) -> Path:
    """The weights file on disk: local, or ``owner/repo/sub/file`` with its ``sub/image_encoder`` from the hub."""
    path = Path(location).expanduser()
    if path.is_file():
        return path
    parts = location.split("/")
    if path.is_absolute() or location.startswith((".", "~")) or len(parts) < 3:
        raise JobError("model_load_failed", f"IP-Adapter {location} is not on disk", "job.references")
    import os

    from huggingface_hub import hf_hub_download, snapshot_download

    repo, inner = "/".join(parts[:2]), "/".join(parts[2:])
    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
    sub = str(Path(inner).parent)
    prefix = "" if sub == "." else sub + "/"
    snapshot_download(
        repo,
        allow_patterns=[f"{prefix}image_encoder/*.json", f"{prefix}image_encoder/*.safetensors"],
        local_files_only=offline,
    )
    return Path(hf_hub_download(repo, inner, local_files_only=offline))


def adapter_scale(unet: Any, mode: str, weight: float) -> float | dict[str, Any]:
    """``set_ip_adapter_scale``'s argument for a reference mode (InstantStyle's block choice).

    Style acts in the first up block with attention (on SDXL its middle layer, as InstantStyle does),
    composition in the last down block with attention; both everywhere.
    """
    if mode == "both":
        return weight
    if mode == "style":
        index, block = next((i, b) for i, b in enumerate(unet.up_blocks) if hasattr(b, "attentions"))
        layers = len(block.attentions)
        scales = [0.0, weight, 0.0] if layers == 3 else [weight] * layers
        return {"up": {f"block_{index}": scales}}
    down = [(i, b) for i, b in enumerate(unet.down_blocks) if hasattr(b, "attentions")]
    index, block = down[-1]
    return {"down": {f"block_{index}": [weight] * len(block.attentions)}}
