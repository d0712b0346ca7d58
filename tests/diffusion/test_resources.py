"""Memory after many cancels, preview cost, TAESD previews, and the configs shipped for single files."""

from __future__ import annotations

import gc
import os
import threading
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TinyModels, make_job, run

from underpaint.engines.base import JobCancelled, StepProgress
from underpaint.engines.diffusion import DiffusionEngine
from underpaint.engines.diffusion.previews import LinearPreview
from underpaint.engines.diffusion.registry import CONFIGS_DIR
from underpaint.errors import JobError
from underpaint.modes import Mode


def _rss_bytes() -> int:
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="RSS read from /proc")
def test_100_cancelled_jobs_leave_memory_where_it_started(tiny_models: TinyModels) -> None:
    eng = DiffusionEngine([str(tiny_models.sd15_folder)], [], device="cpu")

    def cancelled_job() -> None:
        cancel = threading.Event()

        def on_progress(event: StepProgress) -> None:
            cancel.set()

        with pytest.raises(JobCancelled):
            list(eng.generate(make_job(Mode.INPAINT, "sd15-folder", size=64, steps=4), 2, on_progress, cancel))

    for _ in range(10):  # warm up: allocator pools, lazily built pipelines, torch caches
        cancelled_job()
    gc.collect()
    rss_before = _rss_bytes()
    tracemalloc.start()
    py_before = tracemalloc.get_traced_memory()[0]
    for _ in range(100):
        cancelled_job()
    gc.collect()
    py_after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    rss_after = _rss_bytes()
    print(
        f"RSS {rss_before / 2**20:.1f} -> {rss_after / 2**20:.1f} MiB; "
        f"python heap +{(py_after - py_before) / 1024:.1f} KiB"
    )
    # One cancelled 64 px job touches ~1-2 MiB of tensors; a leak of even one latent set per job would
    # add >= 100 x that. 16 MiB leaves room for glibc arena noise while catching any per-job leak.
    assert rss_after - rss_before < 16 * 2**20
    assert py_after - py_before < 256 * 1024
    eng.close()


def test_linear_previews_show_the_latents_at_an_eighth_of_the_size() -> None:
    """The step previews come from the latents alone (a linear map per channel: no VAE); what they
    cost against a step is measured by bench/engine.py."""
    preview = LinearPreview("sd1")
    flat = preview(torch.zeros(1, 4, 64, 48))
    varied = preview(torch.randn(1, 4, 64, 48))
    assert flat.shape == varied.shape == (64, 48, 3) and flat.dtype == np.uint8
    assert len(np.unique(flat.reshape(-1, 3), axis=0)) == 1  # uniform latents: one colour
    assert varied.std() > flat.std()


def test_taesd_previews_from_a_configured_folder(tiny_models: TinyModels, tmp_path: Path) -> None:
    from diffusers import AutoencoderTiny

    torch.manual_seed(0)
    AutoencoderTiny(
        encoder_block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8),
        num_encoder_blocks=(1, 1, 1, 1),
        num_decoder_blocks=(1, 1, 1, 1),
    ).save_pretrained(str(tmp_path / "taesd"))
    eng = DiffusionEngine([str(tiny_models.sd15_folder)], [], device="cpu", previews=str(tmp_path / "taesd"))
    events: list[StepProgress] = []
    run(eng, make_job(Mode.INPAINT, "sd15-folder", size=128), progress=events)
    assert events and all(e.preview is not None and e.preview.shape == (128, 128, 3) for e in events)


def test_single_file_without_sidecar_uses_shipped_config_and_explains_missing_tokenizer(
    tiny_models: TinyModels, tmp_path: Path
) -> None:
    lone = tmp_path / "lone.safetensors"
    lone.symlink_to(tiny_models.sd15_file)
    eng = DiffusionEngine([str(lone)], [], device="cpu")
    assert eng.loaded is None
    with pytest.raises(JobError) as err:
        run(eng, make_job(Mode.INPAINT, "lone"))
    assert err.value.code == "model_load_failed" and "tokenizer" in err.value.message


# Parameter counts of the real models (millions): the shipped configs must rebuild those architectures.
EXPECTED = {
    "sd15": (859.52, 123.06, None),
    "sd15-inpaint": (859.54, 123.06, None),
    "sd2": (865.91, 340.39, None),
    "sd2-inpaint": (865.93, 340.39, None),
    "sdxl": (2567.46, 123.06, 694.66),
    "sdxl-inpaint": (2567.48, 123.06, 694.66),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shipped_configs_describe_the_real_architectures(name: str) -> None:
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    folder = CONFIGS_DIR / name
    assert not list(folder.rglob("*.safetensors")) and not list(folder.rglob("*.bin"))

    def millions(module: torch.nn.Module) -> float:
        return round(sum(p.numel() for p in module.parameters()) / 1e6, 2)

    unet_m, text_m, text2_m = EXPECTED[name]
    with init_empty_weights():
        assert millions(UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(folder / "unet"))) == unet_m
        assert millions(AutoencoderKL.from_config(AutoencoderKL.load_config(folder / "vae"))) == 83.65
        assert millions(CLIPTextModel(CLIPTextConfig.from_pretrained(folder / "text_encoder"))) == text_m
        if text2_m is not None:
            config2 = CLIPTextConfig.from_pretrained(folder / "text_encoder_2")
            assert millions(CLIPTextModelWithProjection(config2)) == text2_m
    assert np.isclose(AutoencoderKL.load_config(folder / "vae")["scaling_factor"], 0.13025 if "xl" in name else 0.18215)
