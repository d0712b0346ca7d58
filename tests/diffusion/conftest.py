"""Tiny random-weight SD1.5/SDXL models, built once per session and saved the ways users have them."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # no test may touch the network, even by accident

import threading
from dataclasses import dataclass
from pathlib import Path

# No importorskip: without torch and diffusers these tests fail (tools/test.sh installs them).
import diffusers  # noqa: F401
import numpy as np
import pytest

from tests.diffusion.ldm_export import save_single_file
from underpaint.engines.base import GenerationInput
from underpaint.engines.diffusion import tiny
from underpaint.modes import Mode


@dataclass(frozen=True)
class TinyModels:
    root: Path
    models_dir: Path
    sd15_file: Path
    """4-channel SD1.5-style single-file checkpoint (with its ``.config`` sidecar)."""
    sd15_folder: Path
    """The very same weights as ``sd15_file``, in diffusers format."""
    sd15_inpaint_folder: Path
    sd15_inpaint_file: Path
    sdxl_folder: Path
    sdxl_inpaint_file: Path
    pickle_file: Path

    @property
    def sources(self) -> list[str]:
        return [
            "tiny-random",
            str(self.sd15_file),
            str(self.sd15_folder),
            str(self.sd15_inpaint_folder),
            str(self.sd15_inpaint_file),
            str(self.sdxl_folder),
            str(self.sdxl_inpaint_file),
            str(self.pickle_file),
        ]


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> TinyModels:
    root = tmp_path_factory.mktemp("models")
    tok = tiny.write_tokenizer(root / "tokenizer")
    files = root / "files"
    files.mkdir()

    def single(pipe: object, name: str) -> Path:
        tiny.save_config_folder(pipe, files / f"{name}.config")
        return save_single_file(pipe, files / f"{name}.safetensors")

    sd15 = tiny.build_sd15(tok, in_channels=4, seed=1)
    sd15_file = single(sd15, "sd15")
    sd15.save_pretrained(str(root / "sd15-folder"))
    sd15_inp = tiny.build_sd15(tok, in_channels=9, seed=2)
    sd15_inp.save_pretrained(str(root / "sd15-inpaint-folder"))
    sd15_inp_file = single(sd15_inp, "sd15-inpaint")
    sdxl = tiny.build_sdxl(tok, in_channels=4, seed=3)
    sdxl.save_pretrained(str(root / "sdxl-folder"))
    sdxl_inp_file = single(tiny.build_sdxl(tok, in_channels=9, seed=4), "sdxl-inpaint")
    pickle_file = root / "evil.ckpt"
    pickle_file.write_bytes(b"not really a pickle: it must never be opened")
    return TinyModels(
        root=root,
        models_dir=files,
        sd15_file=sd15_file,
        sd15_folder=root / "sd15-folder",
        sd15_inpaint_folder=root / "sd15-inpaint-folder",
        sd15_inpaint_file=sd15_inp_file,
        sdxl_folder=root / "sdxl-folder",
        sdxl_inpaint_file=sdxl_inp_file,
        pickle_file=pickle_file,
    )


def make_job(
    mode: Mode,
    model: str,
    size: int = 64,
    seed: int = 7,
    steps: int = 2,
    strength: float | None = None,
    guidance: float = 5.0,
    previews: bool = True,
) -> GenerationInput:
    rng = np.random.default_rng(0)
    image = None if mode == Mode.TXT2IMG else rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
    mask = None
    if mode in (Mode.INPAINT, Mode.OUTPAINT):
        mask = np.zeros((size, size), np.uint8)
        mask[size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 255
    if strength is None:
        strength = 0.6 if mode == Mode.IMG2IMG else 1.0
    return GenerationInput(
        mode=mode,
        model=model,
        prompt="a red barn",
        negative_prompt="blurry",
        seed=seed,
        steps=steps,
        guidance=guidance,
        strength=strength,
        width=size,
        height=size,
        image=image,
        mask=mask,
        previews=previews,
    )


def run(engine, job, batch_count=1, progress=None, cancel=None):  # type: ignore[no-untyped-def]
    events = [] if progress is None else progress
    return list(engine.generate(job, batch_count, events.append, cancel or threading.Event()))


@dataclass(frozen=True)
class TinyLoras:
    lcm: Path
    """``tiny-lcm-lora.safetensors``: LCM-like by its name."""
    style: Path
    """The same tensors as ``lcm`` under a name that says nothing (a plain style LoRA)."""
    hyper_by_metadata: Path
    """The same tensors, neutral name, ``ss_output_name`` metadata naming Hyper-SD 8 steps."""
    lcm_folder: Path
    """``lcm-lora-sdv1-5/pytorch_lora_weights.safetensors``, as ``hf download --local-dir`` leaves it."""
    pickle_bin: Path
    pickle_pt: Path


@pytest.fixture(scope="session")
def tiny_loras(tiny_models: TinyModels, tmp_path_factory: pytest.TempPathFactory) -> TinyLoras:
    """A random rank-4 LoRA on the tiny SD1.5 UNet's attention projections, saved the way diffusers does.

    ``init_lora_weights=False`` makes both A and B random (B is zero by default, a no-op LoRA).
    """
    import shutil

    import peft  # noqa: F401 - the LoRA support needs it; missing, this fails
    import torch
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import load_file, save_file

    root = tmp_path_factory.mktemp("loras")
    unet = UNet2DConditionModel.from_pretrained(str(tiny_models.sd15_folder), subfolder="unet")
    torch.manual_seed(42)
    config = LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"], init_lora_weights=False)
    unet.add_adapter(config)
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    StableDiffusionPipeline.save_lora_weights(
        str(root), unet_lora_layers=layers, weight_name="tiny-lcm-lora.safetensors", safe_serialization=True
    )
    lcm = root / "tiny-lcm-lora.safetensors"
    style = root / "tiny-style-lora.safetensors"
    shutil.copy(lcm, style)
    hyper = root / "plain-name.safetensors"
    save_file(load_file(str(lcm)), str(hyper), metadata={"format": "pt", "ss_output_name": "Hyper-SD15-8steps-lora"})
    folder = root / "lcm-lora-sdv1-5"
    folder.mkdir()
    shutil.copy(lcm, folder / "pytorch_lora_weights.safetensors")
    pickle_bin = root / "evil-lora.bin"
    pickle_pt = root / "evil-lora.pt"
    for evil in (pickle_bin, pickle_pt):
        evil.write_bytes(b"not really a pickle: it must never be opened")
    return TinyLoras(lcm, style, hyper, folder / "pytorch_lora_weights.safetensors", pickle_bin, pickle_pt)
