"""Which models exist, what they are, and the one place a model id is turned into something on disk.

Clients only ever send a model *id*; it is looked up in the dict built here from the daemon's own
configuration (sources and model folders). A client string is never joined to a path, so ``../x`` or
``/etc/passwd`` can only ever be "unknown_model".
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from underpaint.canvas.plan import ModelResolution
from underpaint.engines.base import ModelInfo
from underpaint.modes import Mode

TINY_ID = "tiny-random"
CONFIGS_DIR = Path(__file__).parent / "configs"
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")

Family = Literal["sd1", "sd2", "sdxl", "unknown"]
Kind = Literal["tiny", "hub", "folder", "single_file", "pickle"]


@dataclass(frozen=True)
class FewStep:
    """How a distilled few-step model must be driven (wrong guidance or scheduler gives mush)."""

    name: str
    scheduler: str
    guidance: float
    default_steps: int
    max_steps: int
    source: str = "name"
    """How it was recognised: ``override`` (``#few_step=``), ``config`` (scheduler / model_index of a
    diffusers folder), ``metadata`` (safetensors ``__metadata__``) or ``name`` (file, folder or repo name)."""


FEW_STEP = {
    "turbo": FewStep("turbo", "euler_a_trailing", 0.0, 2, 4),
    "lightning": FewStep("lightning", "euler_trailing", 0.0, 4, 8),
    "lcm": FewStep("lcm", "lcm", 1.5, 4, 8),
    "hyper": FewStep("hyper", "euler_trailing", 0.0, 4, 8),
}

# Name patterns, matched on lower-cased text. Bounded so that e.g. "hyperRealism" (a regular 25-step
# checkpoint) is not taken for Hyper-SD.
_FEW_STEP_PATTERNS = {
    "turbo": re.compile(r"turbo"),
    "lightning": re.compile(r"lightning"),
    "lcm": re.compile(r"(?<![a-z])lcm"),
    "hyper": re.compile(r"hyper[-_ ]?sd"),
}
_FEW_STEP_HOW = {
    "override": "set by #few_step=",
    "config": "from its scheduler config",
    "metadata": "from its safetensors metadata",
    "name": "guessed from its name",
}
_STEP_COUNT = re.compile(r"(?<![0-9])([0-9]{1,2})[-_ ]?steps?(?![a-z])")

# safetensors ``__metadata__`` keys that describe the file itself (ModelSpec and kohya's trainer).
# ``ss_sd_model_name`` is left out on purpose: it names the base a LoRA was trained on, not the LoRA.
_SELF_DESCRIBING_KEYS = (
    "modelspec.title",
    "modelspec.description",
    "modelspec.tags",
    "modelspec.usage_hint",
    "ss_output_name",
    "ss_training_comment",
)


@dataclass(frozen=True)
class ModelSpec:
    """One configured model: where it lives and what it is (read from configs, never from weights)."""

    id: str
    kind: Kind
    location: str
    """Repo id, folder or file path; only ever set from daemon configuration."""
    family: Family = "unknown"
    inpaint_unet: bool = False
    """9-channel UNet (a dedicated inpainting checkpoint)."""
    v_prediction: bool = False
    few_step: FewStep | None = None
    lora: str | None = None
    """A few-step LoRA (LCM / Lightning / Hyper) fused on load; safetensors only."""
    config_dir: Path | None = None
    """For single files: the diffusers config folder handed to ``from_single_file(config=)``."""
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def usable(self) -> bool:
        return self.kind != "pickle"


def few_step_for(name: str, source: str = "name") -> FewStep | None:
    """The few-step profile a name (or any self-description text) points at, if any.

    A step count in the text ("8steps", "4step") becomes the default step count (Lightning and Hyper-SD
    ship 1-12 step variants).
    """
    lowered = name.lower()
    for key, pattern in _FEW_STEP_PATTERNS.items():
        if pattern.search(lowered):
            profile = replace(FEW_STEP[key], source=source)
            count = _STEP_COUNT.search(lowered)
            if count and 1 <= int(count.group(1)) <= 16:
                n = int(count.group(1))
                profile = replace(profile, default_steps=n, max_steps=max(profile.max_steps, n))
            return profile
    return None


def few_step_from_override(value: str) -> FewStep | None:
    """``#few_step=lcm|turbo|lightning|hyper|none`` in a source: what the user says beats any guess."""
    key = value.strip().lower()
    if key == "none":
        return None
    if key not in FEW_STEP:
        raise ValueError(f"unknown few_step {value!r}: use one of {', '.join(FEW_STEP)} or none")
    return replace(FEW_STEP[key], source="override")


def safetensors_metadata(path: Path) -> dict[str, str]:
    """A safetensors file's ``__metadata__`` (header only, no tensor read); {} when unreadable."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception:
        return {}


def few_step_from_metadata(metadata: dict[str, str]) -> FewStep | None:
    """Few-step profile from what a safetensors file says about itself (title, description, kohya name)."""
    text = " ".join(str(metadata[k]) for k in _SELF_DESCRIBING_KEYS if metadata.get(k))
    return few_step_for(text, source="metadata") if text else None


def few_step_from_folder(folder: Path) -> FewStep | None:
    """Few-step profile from a diffusers folder's own configs.

    Only unambiguous markers count: an LCM scheduler or pipeline class. (Trailing timestep spacing alone
    is not enough: zero-terminal-SNR models use it at 30+ steps.)
    """
    index = read_json(folder / "model_index.json")
    sched = read_json(folder / "scheduler" / "scheduler_config.json")
    scheduler_class = sched.get("_class_name") or (index.get("scheduler") or [None, None])[-1]
    if scheduler_class == "LCMScheduler" or "LatentConsistency" in str(index.get("_class_name", "")):
        return replace(FEW_STEP["lcm"], source="config")
    return None


def _lora_names(lora: str) -> str:
    """The names a LoRA is known by: file, its folder (``lcm-lora-sdv1-5/pytorch_lora_weights...``), the
    HF cache's ``models--org--name`` folder, or the repo id."""
    path = Path(lora)
    parts = [path.name, path.parent.name] + [p for p in path.parts if p.startswith("models--")]
    return " ".join(parts)


def lora_label(lora: str) -> str:
    """Short name of a LoRA for model ids: the file stem, or its folder for generic diffusers names."""
    path = Path(lora)
    stem = path.stem if path.suffix.lower() in (".safetensors", *PICKLE_SUFFIXES) else path.name
    if stem in ("pytorch_lora_weights", "diffusion_pytorch_model", "adapter_model") and path.parent.name:
        stem = path.parent.name
    return stem


def resolve_few_step(
    override: str | None,
    lora: str | None,
    described: FewStep | None,
    name: str,
) -> FewStep | None:
    """Override, else the LoRA (its metadata, then its names), else the model's self-description, else
    its name. A LoRA that says nothing leaves the base model's own profile in force (a style LoRA on a
    turbo model is still turbo)."""
    if override is not None:
        return few_step_from_override(override)
    if lora:
        path = Path(lora).expanduser()
        found = few_step_from_metadata(safetensors_metadata(path)) if path.is_file() else None
        found = found or few_step_for(_lora_names(lora))
        if found:
            return found
    return described or few_step_for(name)


def resolution_for(spec: ModelSpec) -> ModelResolution:
    """Native pixel budget of the family (SD2 768-v models are trained at 768x768)."""
    if spec.kind == "tiny":
        return ModelResolution(pixel_budget=512 * 512, multiple=8)
    if spec.family == "sdxl":
        return ModelResolution(pixel_budget=1024 * 1024, multiple=8, max_side=2048)
    if spec.family == "sd2" and spec.v_prediction:
        return ModelResolution(pixel_budget=768 * 768, multiple=8)
    return ModelResolution(pixel_budget=512 * 512, multiple=8)


def model_info(spec: ModelSpec, loaded: bool = False) -> ModelInfo:
    """What a client (or ``underpaint models``) is told about ``spec``."""
    if not spec.usable:
        return ModelInfo(
            id=spec.id,
            engine="diffusion",
            family=spec.family,
            modes=(),
            description=" ".join(spec.notes),
            default_steps=0,
            default_guidance=0.0,
            loaded=False,
            capabilities=("refused:pickle",),
        )
    caps = ["inpaint_unet" if spec.inpaint_unet else "regular_unet"]
    if spec.few_step:
        caps.append(f"few_step:{spec.few_step.name}")
    if spec.v_prediction:
        caps.append("v_prediction")
    if spec.lora:
        caps.append("lora")
    caps.append("previews")
    steps = spec.few_step.default_steps if spec.few_step else (25 if spec.family == "sdxl" else 20)
    guidance = spec.few_step.guidance if spec.few_step else (6.0 if spec.family == "sdxl" else 7.0)
    description = {
        "tiny": "Built-in random weights: draws noise. For trying the plugins without a model.",
        "hub": f"Hugging Face {spec.location}",
        "folder": f"diffusers folder {spec.location}",
        "single_file": f"single-file checkpoint {Path(spec.location).name}",
    }.get(spec.kind, spec.location)
    if spec.lora:
        description += f" + LoRA {lora_label(spec.lora)}"
    if spec.few_step:
        how = _FEW_STEP_HOW.get(spec.few_step.source, spec.few_step.source)
        description += f" [few-step {spec.few_step.name}, {how}]"
    if spec.notes:
        description += " (" + "; ".join(spec.notes) + ")"
    return ModelInfo(
        id=spec.id,
        engine="diffusion",
        family=spec.family,
        modes=(Mode.TXT2IMG, Mode.IMG2IMG, Mode.INPAINT, Mode.OUTPAINT, Mode.REFINE_UPSCALE),
        description=description,
        default_steps=steps,
        default_guidance=guidance,
        loaded=loaded,
        capabilities=tuple(caps),
    )


# --- reading what a model is, without loading it ------------------------------------------------------


def read_json(path: Path) -> dict:
    """A model's JSON config file as a dict; a missing or unreadable one reads as empty."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def describe_folder(folder: Path) -> tuple[Family, bool, bool]:
    """(family, 9-channel unet, v-prediction) from a diffusers folder's json files."""
    index = read_json(folder / "model_index.json")
    unet = read_json(folder / "unet" / "config.json")
    sched = read_json(folder / "scheduler" / "scheduler_config.json")
    family: Family
    if "XL" in str(index.get("_class_name", "")) or "text_encoder_2" in index:
        family = "sdxl"
    elif unet.get("cross_attention_dim") == 1024:
        family = "sd2"
    elif unet:
        family = "sd1"
    else:
        family = "unknown"
    return family, unet.get("in_channels") == 9, sched.get("prediction_type") == "v_prediction"


def describe_single_file(path: Path) -> tuple[Family, bool]:
    """(family, 9-channel unet) from the safetensors header alone: no tensor is read."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        keys = set(f.keys())
        conv_in = "model.diffusion_model.input_blocks.0.0.weight"
        channels = f.get_slice(conv_in).get_shape()[1] if conv_in in keys else 4
        v2_key = "model.diffusion_model.input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight"
        v2 = v2_key in keys and f.get_slice(v2_key).get_shape()[-1] == 1024
    family: Family
    if any(k.startswith("conditioner.embedders.1.") for k in keys):
        family = "sdxl"
    elif v2:
        family = "sd2"
    elif conv_in in keys:
        family = "sd1"
    else:
        family = "unknown"
    return family, channels == 9


def shipped_config(family: Family, inpaint_unet: bool) -> Path:
    """The config folder this package ships for a family (SD2 plain = 768 v-prediction, like 2.1)."""
    name = {"sd1": "sd15", "sd2": "sd2", "sdxl": "sdxl"}.get(family, "sd15")
    return CONFIGS_DIR / (name + ("-inpaint" if inpaint_unet else ""))


# --- building the id -> spec table ------------------------------------------------------------------


def _pickle_spec(model_id: str, path: Path, what: str = "checkpoint") -> ModelSpec:
    note = (
        f"{path.name} is a pickle {what} ({path.suffix}); loading one can run arbitrary code, so "
        "underpaint refuses it. Convert it once, in an environment you trust, to .safetensors "
        '(e.g. `python -c "import torch, safetensors.torch as s; '
        "sd = torch.load('in.ckpt', weights_only=True); sd = sd.get('state_dict', sd); "
        "s.save_file({k: v.contiguous() for k, v in sd.items() if hasattr(v, 'contiguous')}, 'out.safetensors')\"`) "
        "or download the .safetensors version of the model."
    )
    return ModelSpec(id=model_id, kind="pickle", location=str(path), notes=(note,))


def _lora_id(model_id: str, lora: str | None) -> str:
    return f"{model_id}+{lora_label(lora)}" if lora else model_id


def spec_from_single_file(
    path: Path, model_id: str | None = None, lora: str | None = None, few_step: str | None = None
) -> ModelSpec:
    """A spec for a ``.safetensors`` checkpoint; a sibling ``<stem>.config/`` folder overrides the shipped one."""
    model_id = model_id or _lora_id(path.stem, lora)
    family, inpaint = describe_single_file(path)
    sidecar = path.with_name(path.stem + ".config")
    v_pred = False
    described = few_step_from_metadata(safetensors_metadata(path))
    if (sidecar / "model_index.json").is_file():
        config_dir = sidecar
        _, _, v_pred = describe_folder(sidecar)
        described = described or few_step_from_folder(sidecar)
    else:
        config_dir = shipped_config(family, inpaint)
        v_pred = family == "sd2" and not inpaint
    return ModelSpec(
        id=model_id,
        kind="single_file",
        location=str(path),
        family=family,
        inpaint_unet=inpaint,
        v_prediction=v_pred,
        few_step=resolve_few_step(few_step, lora, described, path.name),
        lora=lora,
        config_dir=config_dir,
    )


def spec_from_folder(
    folder: Path, model_id: str | None = None, lora: str | None = None, few_step: str | None = None
) -> ModelSpec:
    family, inpaint, v_pred = describe_folder(folder)
    return ModelSpec(
        id=model_id or _lora_id(folder.name, lora),
        kind="folder",
        location=str(folder),
        family=family,
        inpaint_unet=inpaint,
        v_prediction=v_pred,
        few_step=resolve_few_step(few_step, lora, few_step_from_folder(folder), folder.name),
        lora=lora,
    )


def spec_from_hub(repo_id: str, lora: str | None = None, few_step: str | None = None) -> ModelSpec:
    """A hub repo: described from the local HF cache when it is there (no network)."""
    from huggingface_hub import try_to_load_from_cache

    family: Family = "unknown"
    inpaint = v_pred = False
    notes: tuple[str, ...] = ()
    described = None
    cached = try_to_load_from_cache(repo_id, "model_index.json")
    if isinstance(cached, str):
        family, inpaint, v_pred = describe_folder(Path(cached).parent)
        described = few_step_from_folder(Path(cached).parent)
    else:
        notes = ("not downloaded yet: the first use downloads it into the Hugging Face cache",)
    return ModelSpec(
        id=_lora_id(repo_id, lora),
        kind="hub",
        location=repo_id,
        family=family,
        inpaint_unet=inpaint,
        v_prediction=v_pred,
        few_step=resolve_few_step(few_step, lora, described, repo_id),
        lora=lora,
        notes=notes,
    )


_SOURCE_OPTIONS = re.compile(r"#(lora|few_step)=")


def parse_source(source: str) -> ModelSpec:
    """One configured source -> spec.

    Forms: ``tiny-random``; a local diffusers folder; a ``.safetensors`` file; a Hugging Face repo id.
    Options appended to any of them:

    - ``#lora=<file.safetensors, LoRA folder or repo id>`` fuses a LoRA on load; few-step LoRAs (LCM,
      Lightning, Hyper-SD) are recognised by their metadata or name and switch scheduler, guidance and
      steps. The model's id becomes ``<model>+<lora name>``.
    - ``#few_step=lcm|turbo|lightning|hyper|none`` says which few-step profile applies (``none``: not a
      few-step model), overriding detection.
    """
    base, *pairs = _SOURCE_OPTIONS.split(source)
    options = dict(zip(pairs[::2], pairs[1::2], strict=True))
    lora = options.get("lora") or None
    few_step = options.get("few_step") or None
    if few_step is not None:
        few_step_from_override(few_step)  # a typo is a configuration error, reported at startup
    if base == TINY_ID:
        if lora:  # its modules are built once and shared: a fused LoRA would leak into every later use
            raise ValueError(f"{TINY_ID} takes no #lora=")
        return ModelSpec(id=TINY_ID, kind="tiny", location=TINY_ID, family="sd1")
    path = Path(base).expanduser()
    if path.suffix.lower() in PICKLE_SUFFIXES:
        return _pickle_spec(path.stem, path)
    if lora and Path(lora).suffix.lower() in PICKLE_SUFFIXES:
        base_id = path.stem if path.suffix.lower() == ".safetensors" else path.name if path.is_dir() else base
        return _pickle_spec(_lora_id(base_id, lora), Path(lora), what="LoRA")
    if path.suffix.lower() == ".safetensors":
        return spec_from_single_file(path, lora=lora, few_step=few_step)
    if path.is_dir():
        return spec_from_folder(path, lora=lora, few_step=few_step)
    return spec_from_hub(base, lora=lora, few_step=few_step)


def scan_models_dir(folder: Path, depth: int = 2) -> list[ModelSpec]:
    """Single files and diffusers folders inside ``folder`` (and ``depth - 1`` levels below)."""
    specs: list[ModelSpec] = []
    if not folder.is_dir():
        return specs
    for entry in sorted(folder.iterdir()):
        if entry.is_dir():
            if (entry / "model_index.json").is_file():
                specs.append(spec_from_folder(entry))
            elif depth > 1 and not entry.name.endswith(".config"):
                specs.extend(scan_models_dir(entry, depth - 1))
        elif entry.suffix.lower() == ".safetensors":
            try:
                spec = spec_from_single_file(entry)
            except Exception:  # unreadable header: not something we can load anyway
                continue
            if spec.family != "unknown":  # LoRAs, VAEs, embeddings live in the same folders
                specs.append(spec)
        elif entry.suffix.lower() in (".ckpt", ".pt", ".pth"):
            specs.append(_pickle_spec(entry.stem, entry))
    return specs


def scan_hf_cache() -> list[ModelSpec]:
    """diffusers pipelines (repos with a model_index.json) in the local Hugging Face cache."""
    try:
        from huggingface_hub import scan_cache_dir

        info = scan_cache_dir()
    except Exception:  # no cache yet
        return []
    specs = []
    for repo in sorted(info.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model":
            continue
        if any(f.file_name == "model_index.json" for rev in repo.revisions for f in rev.files):
            specs.append(spec_from_hub(repo.repo_id))
    return specs


def build_registry(sources: list[str], models_dirs: list[Path]) -> dict[str, ModelSpec]:
    """id -> spec for everything the daemon is configured with; later duplicates get ``-2``, ``-3``..."""
    table: dict[str, ModelSpec] = {}
    specs = [parse_source(s) for s in sources]
    for folder in models_dirs:
        specs.extend(scan_models_dir(Path(folder).expanduser()))
    for spec in specs:
        model_id, n = spec.id, 2
        while model_id in table:
            if (table[model_id].location, table[model_id].lora) == (spec.location, spec.lora):
                break
            model_id, n = f"{spec.id}-{n}", n + 1
        else:
            table[model_id] = replace(spec, id=model_id)
    return table


def list_local_models(sources: list[str], models_dirs: list[Path], include_hf_cache: bool = True) -> list[ModelInfo]:
    """For ``underpaint models``: configured sources, scanned folders and the HF cache's diffusers models.

    Refused pickle files are listed too (with ``refused:pickle`` and the conversion hint) so users see why.
    HF-cache entries that are not configured say so in their description.
    """
    table = build_registry(sources, models_dirs)
    infos = [model_info(spec) for spec in table.values()]
    if include_hf_cache:
        known = {spec.location for spec in table.values()}
        for spec in scan_hf_cache():
            if spec.location not in known:
                info = model_info(spec)
                infos.append(
                    replace(info, description=info.description + " [in HF cache; add it as a source to use it]")
                )
    return infos
