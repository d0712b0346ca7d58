"""Tiny random-weight SD1.5/SDXL models, built once per session and saved the ways users have them."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # no test may touch the network, even by accident

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("diffusers")

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
        return tiny.save_single_file(pipe, files / f"{name}.safetensors")

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
