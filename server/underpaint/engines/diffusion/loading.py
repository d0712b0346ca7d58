"""Turning a ModelSpec into a loaded pipeline, safely (safetensors only) and offline when possible.

One model is loaded as its family's *inpaint* pipeline; the img2img and txt2img pipelines are made
from it with ``from_pipe``, which shares every module (no second copy, no reload).
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from diffusers import (
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    LCMScheduler,
    StableDiffusionControlNetImg2ImgPipeline,
    StableDiffusionControlNetInpaintPipeline,
    StableDiffusionControlNetPipeline,
    StableDiffusionImg2ImgPipeline,
    StableDiffusionInpaintPipeline,
    StableDiffusionPipeline,
    StableDiffusionXLControlNetImg2ImgPipeline,
    StableDiffusionXLControlNetInpaintPipeline,
    StableDiffusionXLControlNetPipeline,
    StableDiffusionXLImg2ImgPipeline,
    StableDiffusionXLInpaintPipeline,
    StableDiffusionXLPipeline,
)

from underpaint.engines.diffusion import tiny
from underpaint.engines.diffusion.device import Offload, choose_offload, module_bytes
from underpaint.engines.diffusion.registry import PICKLE_SUFFIXES, ModelSpec
from underpaint.errors import JobError

PIPELINES: dict[str, dict[str, Any]] = {
    "sdxl": {
        "txt2img": StableDiffusionXLPipeline,
        "img2img": StableDiffusionXLImg2ImgPipeline,
        "inpaint": StableDiffusionXLInpaintPipeline,
    },
    "sd": {
        "txt2img": StableDiffusionPipeline,
        "img2img": StableDiffusionImg2ImgPipeline,
        "inpaint": StableDiffusionInpaintPipeline,
    },
}

CONTROL_PIPELINES: dict[str, dict[str, Any]] = {
    "sdxl": {
        "txt2img": StableDiffusionXLControlNetPipeline,
        "img2img": StableDiffusionXLControlNetImg2ImgPipeline,
        "inpaint": StableDiffusionXLControlNetInpaintPipeline,
    },
    "sd": {
        "txt2img": StableDiffusionControlNetPipeline,
        "img2img": StableDiffusionControlNetImg2ImgPipeline,
        "inpaint": StableDiffusionControlNetInpaintPipeline,
    },
}
"""The same three modes with ControlNet guidance (one ControlNet, or a ``MultiControlNetModel``)."""

# Where a single-file checkpoint can find a real CLIP tokenizer (vocab.json + merges.txt, ~2 MB that
# this package does not ship): repos a user may already have in the HF cache. (repo, subfolder)
_TOKENIZER_CANDIDATES = {
    "tokenizer": [
        ("openai/clip-vit-large-patch14", ""),
        ("stable-diffusion-v1-5/stable-diffusion-v1-5", "tokenizer"),
        ("stabilityai/stable-diffusion-xl-base-1.0", "tokenizer"),
        ("stabilityai/sdxl-turbo", "tokenizer"),
    ],
    "tokenizer_2": [
        ("stabilityai/stable-diffusion-xl-base-1.0", "tokenizer_2"),
        ("stabilityai/sdxl-turbo", "tokenizer_2"),
        ("laion/CLIP-ViT-bigG-14-laion2B-39B-b160k", ""),
    ],
    "sd2": [
        ("stabilityai/stable-diffusion-2-1", "tokenizer"),
        ("stabilityai/sd-turbo", "tokenizer"),
        ("stabilityai/stable-diffusion-2-inpainting", "tokenizer"),
    ],
}

_TINY_CACHE: dict[str, Any] = {}

Pipe = Any
"""A diffusers pipeline: their attributes are set dynamically, so static typing cannot follow them."""


@dataclass
class LoadedModel:
    """One model in memory, with its per-mode pipelines sharing the same modules."""

    spec: ModelSpec
    base: Pipe
    device: str
    dtype: torch.dtype
    offload: Offload
    load_seconds: float
    pipes: dict[str, Pipe] = field(default_factory=dict)
    _offload_owner: str | None = None

    def pipeline_for(self, kind: str, controlnet: Any = None) -> Pipe:
        """The pipeline for ``kind`` (txt2img/img2img/inpaint), made once with ``from_pipe`` (no reload).

        With ``controlnet`` (a ControlNet or a ``MultiControlNetModel``), its ControlNet variant: made once
        too, sharing the same modules; the job's ControlNet is swapped in, nothing is reloaded.
        """
        key = f"control-{kind}" if controlnet is not None else kind
        pipe = self.pipes.get(key)
        family = "sdxl" if self.spec.family == "sdxl" else "sd"
        if pipe is None:
            cls = (CONTROL_PIPELINES if controlnet is not None else PIPELINES)[family][kind]
            extra: dict[str, Any] = {} if self.spec.family == "sdxl" else {"requires_safety_checker": False}
            if controlnet is not None:
                extra["controlnet"] = controlnet
            pipe = self.base if isinstance(self.base, cls) else cls.from_pipe(self.base, **extra)
            pipe.set_progress_bar_config(disable=True)
            self.pipes[key] = pipe
        elif controlnet is not None and pipe.controlnet is not controlnet:
            pipe.register_modules(controlnet=controlnet)
        kind = key
        if self.offload != "none" and self._offload_owner != kind:
            # Offload hooks live on the shared modules but are driven by one pipeline: re-arm on switch.
            if self.offload == "model":
                pipe.enable_model_cpu_offload(device=self.device)
            else:
                pipe.enable_sequential_cpu_offload(device=self.device)
            self._offload_owner = kind
        return pipe


def _family_key(spec: ModelSpec) -> str:
    return "sdxl" if spec.family == "sdxl" else "sd"


def _refuse_pickles_in_folder(folder: Path) -> None:
    """A diffusers folder whose component weights exist only as pickles is refused, like a .ckpt."""
    for sub in folder.iterdir():
        if not sub.is_dir():
            continue
        weights = [p for p in sub.iterdir() if p.suffix in PICKLE_SUFFIXES or p.suffix == ".safetensors"]
        if weights and not any(p.suffix == ".safetensors" for p in weights):
            raise JobError(
                "unsafe_model_format",
                f"{sub.name}/ in {folder.name} has only pickle weights ({weights[0].name}); loading them can run "
                "arbitrary code. Re-save the model with safetensors "
                "(pipe.save_pretrained(dir, safe_serialization=True)) or download its safetensors version.",
                "job.model",
            )


def _has_tokenizer_files(folder: Path) -> bool:
    return (folder / "tokenizer.json").is_file() or (folder / "vocab.json").is_file()


def _cached_tokenizer(candidates: list[tuple[str, str]]) -> Any | None:
    """A CLIP tokenizer from the HF cache, only where its vocabulary file really is there.

    (transformers 5 quietly builds an empty tokenizer when the files are missing, so check first.)
    """
    from huggingface_hub import try_to_load_from_cache
    from transformers import CLIPTokenizer

    for repo, sub in candidates:
        prefix = f"{sub}/" if sub else ""
        found = [try_to_load_from_cache(repo, prefix + name) for name in ("vocab.json", "tokenizer.json")]
        if not any(isinstance(f, str) for f in found):
            continue
        try:
            return CLIPTokenizer.from_pretrained(repo, subfolder=sub, local_files_only=True)
        except Exception:  # a partial download: try the next
            continue
    return None


def _single_file_tokenizers(spec: ModelSpec) -> dict[str, Any]:
    """Tokenizers the shipped configs lack (no vocab shipped): found in the HF cache, else a clear error."""
    assert spec.config_dir is not None
    needed = ["tokenizer", "tokenizer_2"] if spec.family == "sdxl" else ["tokenizer"]
    found: dict[str, Any] = {}
    for name in needed:
        if _has_tokenizer_files(spec.config_dir / name):
            continue  # the config folder has it; from_single_file loads it
        key = "sd2" if spec.family == "sd2" else name
        tok = _cached_tokenizer(_TOKENIZER_CANDIDATES[key])
        if tok is None:
            repos = ", ".join(r for r, _ in _TOKENIZER_CANDIDATES[key])
            raise JobError(
                "model_load_failed",
                f"{Path(spec.location).name} needs the CLIP tokenizer files, which underpaint does not ship. "
                f"Download one of {repos} once (e.g. `hf download {_TOKENIZER_CANDIDATES[key][0][0]} "
                "--include '*tokenizer*/*' '*.json' '*.txt'`), or put vocab.json and merges.txt in "
                f"{spec.config_dir / name}.",
                "job.model",
            )
        found[name] = tok
    return found


def _build_tiny() -> Pipe:
    """The built-in ``tiny-random`` model: built once per process, then shared."""
    if "pipe" not in _TINY_CACHE:
        tok_dir = tiny.write_tokenizer(Path(tempfile.mkdtemp(prefix="underpaint-tiny-")) / "tokenizer")
        _TINY_CACHE["pipe"] = tiny.build_sd15(tok_dir, in_channels=4, seed=0)
    cached = _TINY_CACHE["pipe"]
    return StableDiffusionInpaintPipeline(**cached.components)


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")


def _load_raw(spec: ModelSpec, dtype: torch.dtype) -> Pipe:
    cls = PIPELINES[_family_key(spec)]["inpaint"]
    offline = _hub_offline()
    common: dict[str, Any] = {"dtype": dtype}
    if spec.family != "sdxl":
        common.update(safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    if spec.kind == "tiny":
        pipe = _build_tiny()
        return pipe if dtype == torch.float32 else pipe.to(dtype=dtype)
    if spec.kind == "single_file":
        path = Path(spec.location)
        if not path.is_file():
            raise JobError("model_load_failed", f"{path.name} is missing from disk", "job.model")
        common.update(_single_file_tokenizers(spec))
        if spec.family == "unknown":
            raise JobError("model_load_failed", f"{path.name} is not an SD1/SD2/SDXL checkpoint", "job.model")
        return cls.from_single_file(str(path), config=str(spec.config_dir), local_files_only=True, **common)
    if spec.kind == "folder":
        _refuse_pickles_in_folder(Path(spec.location))
        return cls.from_pretrained(spec.location, use_safetensors=True, local_files_only=True, **common)
    # A hub repo: downloaded (with a progress bar) into the standard HF cache unless offline.
    return cls.from_pretrained(spec.location, use_safetensors=True, local_files_only=offline, **common)


LORA_ADAPTER = "underpaint_lora"


def _apply_lora(pipe: Pipe, lora_source: str) -> None:
    """Load a LoRA (safetensors only), fuse it into the weights and drop the adapter layers.

    Fused, a LoRA costs nothing per step (plain Linear layers again, no peft wrappers in the forward).
    """
    if importlib.util.find_spec("peft") is None:
        raise JobError("model_load_failed", "LoRA sources need the `peft` package (pip install peft)", "job.model")
    lora = Path(lora_source).expanduser()
    if lora.suffix.lower() in PICKLE_SUFFIXES:
        raise JobError(
            "unsafe_model_format",
            f"LoRA {lora.name} is a pickle ({lora.suffix}); loading one can run arbitrary code. Use its "
            ".safetensors version.",
            "job.model",
        )
    # use_safetensors=True: diffusers would otherwise fall back to a pickle it finds in a folder or repo.
    options: dict[str, Any] = {"use_safetensors": True, "adapter_name": LORA_ADAPTER}
    if lora.is_file():
        pipe.load_lora_weights(str(lora.parent), weight_name=lora.name, **options)
    elif lora.is_dir():
        found = [p for p in lora.iterdir() if p.suffix.lower() in (".safetensors", *PICKLE_SUFFIXES)]
        if found and not any(p.suffix.lower() == ".safetensors" for p in found):
            raise JobError(
                "unsafe_model_format",
                f"LoRA folder {lora.name} has only pickle weights ({found[0].name}); use a .safetensors LoRA",
                "job.model",
            )
        pipe.load_lora_weights(str(lora), **options)
    elif (
        lora.is_absolute()
        or lora_source.startswith((".", "~"))
        or len(lora.parts) < (3 if lora.suffix.lower() == ".safetensors" else 2)
    ):  # a local path that is not there (a repo id is "owner/repo" or "owner/repo/file.safetensors")
        raise JobError("model_load_failed", f"LoRA {lora_source} is not on disk", "job.model")
    else:  # "owner/repo" or "owner/repo/file.safetensors"
        parts = lora_source.split("/")
        repo, weight = "/".join(parts[:2]), "/".join(parts[2:]) or None
        offline = _hub_offline()
        if weight is None and offline:
            weight = "pytorch_lora_weights.safetensors"  # diffusers cannot list a repo's files offline
        try:
            pipe.load_lora_weights(repo, weight_name=weight, local_files_only=offline, **options)
        except Exception as exc:
            hint = " (offline: HF_HUB_OFFLINE is set and it is not in the local cache)" if offline else ""
            raise JobError("model_load_failed", f"could not load LoRA {lora_source}{hint}: {exc}", "job.model") from exc
    pipe.fuse_lora(adapter_names=[LORA_ADAPTER])
    pipe.unload_lora_weights()  # the fused weights stay; the adapter copies and wrappers go


def _apply_few_step(pipe: Pipe, spec: ModelSpec) -> None:
    """LoRA fused in, and the scheduler a few-step distillation was trained for."""
    if spec.lora:
        _apply_lora(pipe, spec.lora)
    if spec.few_step is None:
        return
    config = pipe.scheduler.config
    if spec.few_step.scheduler == "lcm":
        pipe.scheduler = LCMScheduler.from_config(config)
    elif spec.few_step.scheduler == "euler_a_trailing":
        pipe.scheduler = EulerAncestralDiscreteScheduler.from_config(config, timestep_spacing="trailing")
    else:
        pipe.scheduler = EulerDiscreteScheduler.from_config(config, timestep_spacing="trailing")


def load_model(spec: ModelSpec, device: str, dtype: torch.dtype, offload: Offload) -> LoadedModel:
    """Load ``spec`` onto ``device``; client-actionable failures become :class:`JobError`."""
    if not spec.usable:
        raise JobError("unsafe_model_format", " ".join(spec.notes), "job.model")
    start = time.perf_counter()
    try:
        pipe = _load_raw(spec, dtype)
        _apply_few_step(pipe, spec)
        modules = [m for m in pipe.components.values() if isinstance(m, torch.nn.Module)]
        chosen = choose_offload(offload, device, module_bytes(modules, dtype), spec.family)
        if chosen == "none":
            pipe.to(device)
    except JobError:
        raise
    except torch.cuda.OutOfMemoryError as exc:
        raise JobError("out_of_memory", f"not enough memory to load {spec.id}: {exc}", "job.model") from exc
    except Exception as exc:
        text = str(exc)
        if "safetensors" in text.lower() and (".bin" in text or "pickle" in text.lower()):
            raise JobError("unsafe_model_format", f"{spec.id} has no safetensors weights: {text}", "job.model") from exc
        hint = " (offline: HF_HUB_OFFLINE is set and it is not in the local cache)" if spec.kind == "hub" else ""
        raise JobError("model_load_failed", f"could not load {spec.id}{hint}: {text}", "job.model") from exc
    pipe.set_progress_bar_config(disable=True)
    loaded = LoadedModel(spec, pipe, device, dtype, chosen, time.perf_counter() - start)
    loaded.pipes["inpaint"] = pipe
    return loaded
