"""Reading spandrel models without running code: shared by learned fill, upscalers and face restoration.

Weights are read only in forms that cannot run code: ``.safetensors``, or ``.pth``/``.ckpt`` through
``torch.load(weights_only=True)`` (a pickle that would build objects is refused, not executed); the
state dict then goes to spandrel, which detects the architecture from its keys and shapes.
Licences are respected as for other downloaded models: an architecture not known to be permissive
is research-only unless its source ends in ``#allow_research``, the user's explicit opt-in.
"""

from __future__ import annotations

import contextlib
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

ALLOW_RESEARCH = "#allow_research"
SAFE_SUFFIXES = (".safetensors", ".pth", ".ckpt")
#: Licence of each architecture underpaint loads through spandrel (spandrel itself carries no licence
#: information). Absent ones count as research-only, so a new architecture is never used
#: commercially by accident.
LICENCES = {
    "LaMa": "Apache-2.0",
    "MAT": "CC-BY-NC-4.0",
    "ESRGAN": "BSD-3-Clause",  # Real-ESRGAN, ESRGAN, BSRGAN-style RRDBNet
    "Compact": "BSD-3-Clause",  # Real-ESRGAN's SRVGGNetCompact (realesr-general-x4v3, AnimeVideo)
    "SPAN": "Apache-2.0",
    "SwinIR": "Apache-2.0",
    "Swin2SR": "Apache-2.0",
    "HAT": "Apache-2.0",
    "DAT": "Apache-2.0",
    "OmniSR": "Apache-2.0",
    "RealCUGAN": "MIT",
    "GFPGAN": "Apache-2.0",
    "CodeFormer": "S-Lab-1.0 (non-commercial)",
    "RestoreFormer": "unknown (research only)",
}
PERMISSIVE = frozenset({"Apache-2.0", "MIT", "BSD-3-Clause"})


class UnsafeWeights(ValueError):
    """The file could hold code (a pickle with objects, TorchScript), so it is not read."""


@dataclass(frozen=True)
class WeightsSource:
    """A model file named on the command line: ``PATH[#allow_research]``."""

    path: Path
    allow_research: bool

    @property
    def id(self) -> str:
        return self.path.stem


def parse_source(text: str) -> WeightsSource:
    """``PATH[#allow_research]`` to a source."""
    allow = text.endswith(ALLOW_RESEARCH)
    return WeightsSource(Path(text.removesuffix(ALLOW_RESEARCH)).expanduser(), allow)


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a weights file, read without running any code it might carry."""
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    if suffix not in SAFE_SUFFIXES:
        raise UnsafeWeights(f"{path.name}: only {', '.join(SAFE_SUFFIXES)} weights are read")
    try:
        loaded = torch.load(str(path), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, zipfile.BadZipFile) as exc:
        raise UnsafeWeights(f"{path.name}: not a plain tensor file ({exc.__class__.__name__}); not loaded") from exc
    for key in ("state_dict", "params_ema", "params"):  # BasicSR / Real-ESRGAN checkpoints nest the weights
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            loaded = loaded[key]
            break
    if not isinstance(loaded, dict):
        raise UnsafeWeights(f"{path.name}: holds no state dict")
    return loaded


def load_descriptor(path: Path) -> Any:
    """The spandrel model descriptor of a weights file, on the CPU (architecture detected from the keys)."""
    import spandrel

    with contextlib.suppress(ImportError):  # MAT, CodeFormer live there; installed only by users who want them
        import spandrel_extra_arches

        spandrel_extra_arches.install(ignore_duplicates=True)
    return spandrel.ModelLoader(device="cpu").load_from_state_dict(
        spandrel.canonicalize_state_dict(load_state_dict(path))
    )


def licence_of(architecture: str) -> str:
    return LICENCES.get(architecture, "unknown (research only)")


def permissive(licence: str) -> bool:
    return licence in PERMISSIVE
