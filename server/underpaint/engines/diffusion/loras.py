"""LoRAs a job can name: found in the models folders, safetensors only, with their trigger words.

A LoRA is told apart from a checkpoint by its tensor names (``lora_down``/``lora_up``, ``lora_A``/
``lora_B``, ``lora_unet_...``), read from the safetensors header without loading a tensor. Trigger
words come from the file's metadata: ``modelspec.trigger_phrase`` (the model-spec standard), else the
most frequent training tags in ``ss_tag_frequency`` (kohya's trainer). Pickled LoRAs (``.pt``,
``.ckpt``, ``.bin``, ``.pth``) are never opened: unpickling can run code; a job naming one is refused.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from underpaint.engines.diffusion.registry import PICKLE_SUFFIXES, safetensors_metadata
from underpaint.errors import JobError

TRIGGER_TAGS = 5
"""Most frequent training tags offered as trigger words when the file names no trigger phrase."""
SCAN_DEPTH = 3
_LORA_KEY = re.compile(r"(^|[._])lora([._]|$)|lora_(down|up|A|B)\b|^lora_(unet|te\d?)_")


@dataclass(frozen=True)
class LoraFile:
    name: str
    """What a job calls it: the file name without ``.safetensors``."""
    path: Path
    triggers: tuple[str, ...] = field(default_factory=tuple)
    base: str = ""
    """The base model it was trained on, when its metadata says (informational)."""


def _is_lora(path: Path) -> bool:
    stat = path.stat()
    return _header_says_lora(str(path), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=4096)
def _header_says_lora(path: str, _mtime_ns: int, _size: int) -> bool:
    """Cached per file version: folders are scanned again for every job that names a LoRA."""
    from safetensors import safe_open

    try:
        with safe_open(path, framework="pt") as f:
            return any(_LORA_KEY.search(key) for key in f.keys())  # noqa: SIM118 - safe_open is not iterable
    except Exception:  # an unreadable header is not something we can load
        return False


def trigger_words(metadata: dict[str, str]) -> tuple[str, ...]:
    phrase = metadata.get("modelspec.trigger_phrase", "").strip()
    if phrase:
        return tuple(part.strip() for part in phrase.split(",") if part.strip())
    try:
        datasets = json.loads(metadata.get("ss_tag_frequency", "{}"))
    except ValueError:
        return ()
    counts: dict[str, int] = {}
    if isinstance(datasets, dict):
        for tags in datasets.values():
            if isinstance(tags, dict):
                for tag, count in tags.items():
                    if isinstance(count, int | float):
                        counts[str(tag).strip()] = counts.get(str(tag).strip(), 0) + int(count)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return tuple(tag for tag, _ in ranked[:TRIGGER_TAGS] if tag)


def scan_loras(folders: list[Path]) -> tuple[dict[str, LoraFile], dict[str, Path]]:
    """The LoRAs in ``folders`` (and below) by name, and the pickles found there by name (refused)."""
    found: dict[str, LoraFile] = {}
    pickles: dict[str, Path] = {}

    def walk(folder: Path, depth: int) -> None:
        if not folder.is_dir():
            return
        for entry in sorted(folder.iterdir()):
            if entry.is_dir() and depth > 1 and not (entry / "model_index.json").is_file():
                walk(entry, depth - 1)
            elif entry.suffix.lower() == ".safetensors" and entry.stem not in found and _is_lora(entry):
                metadata = safetensors_metadata(entry)
                base = metadata.get("ss_sd_model_name") or metadata.get("modelspec.architecture", "")
                found[entry.stem] = LoraFile(entry.stem, entry, trigger_words(metadata), base)
            elif entry.suffix.lower() in PICKLE_SUFFIXES:
                pickles.setdefault(entry.stem, entry)

    for folder in folders:
        walk(Path(folder).expanduser(), SCAN_DEPTH)
    return found, pickles


def resolve(
    wanted: list[tuple[str, float]], known: dict[str, LoraFile], pickles: dict[str, Path], field_name: str
) -> list[tuple[LoraFile, float]]:
    """The job's LoRAs as files; an unknown name or a pickle is refused naming the field."""
    resolved = []
    for index, (name, weight) in enumerate(wanted):
        where = f"{field_name}[{index}].name"
        if name in known:
            resolved.append((known[name], weight))
        elif name in pickles:
            raise JobError(
                "unsafe_model_format",
                f"LoRA {pickles[name].name} is a pickle; loading one can run arbitrary code. Use its "
                ".safetensors version",
                where,
            )
        else:
            have = ", ".join(sorted(known)) or "none"
            raise JobError("unknown_lora", f"no LoRA named {name!r} in the models folders (there are: {have})", where)
    return resolved
