"""Offload and VAE tiling: the pure decisions, and how the engine applies them (CPU here, no CUDA)."""

from __future__ import annotations

import pytest
import torch
from conftest import TinyModels, make_job, run
from diffusers import DiffusionPipeline

from underpaint.engines.diffusion import DiffusionEngine
from underpaint.engines.diffusion import engine as engine_module
from underpaint.engines.diffusion.device import (
    VAE_TILING_FACTOR,
    choose_offload,
    decide_offload,
    decide_vae_tiling,
    vae_decode_bytes,
    working_bytes,
)
from underpaint.engines.diffusion.loading import LoadedModel
from underpaint.engines.diffusion.registry import parse_source
from underpaint.modes import Mode

GiB = 1 << 30


# --- offload -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("setting", ["auto", "none", "model", "sequential"])
@pytest.mark.parametrize("free", [None, 0, 1 << 40])
def test_cpu_never_offloads(setting: str, free: int | None) -> None:
    assert decide_offload(setting, "cpu", free, 4 * GiB, "sdxl") == "none"  # type: ignore[arg-type]


def test_auto_offload_threshold_is_weights_plus_working_memory() -> None:
    weights = 5 * GiB  # SDXL fp16 is ~5 GiB with both text encoders and the VAE
    needed = weights + working_bytes("sdxl")
    assert working_bytes("sdxl") == 4 * GiB and working_bytes("sd1") == 2 * GiB
    assert decide_offload("auto", "cuda", needed, weights, "sdxl") == "none"
    assert decide_offload("auto", "cuda:1", needed - 1, weights, "sdxl") == "model"
    assert decide_offload("auto", "cuda", 24 * GiB, weights, "sdxl") == "none"  # a 24 GB card
    assert decide_offload("auto", "cuda", 6 * GiB, weights, "sdxl") == "model"  # an 8 GB card, 6 free
    assert decide_offload("auto", "cuda", 6 * GiB, 2 * GiB, "sd1") == "none"  # SD1.5 fits there


def test_auto_offload_grows_with_the_requested_size() -> None:
    weights, free = 5 * GiB, 10 * GiB
    assert decide_offload("auto", "cuda", free, weights, "sdxl", pixels=1024 * 1024) == "none"
    assert decide_offload("auto", "cuda", free, weights, "sdxl", pixels=2048 * 2048) == "model"
    # Smaller than native never asks for less than the native headroom.
    assert working_bytes("sdxl", 512 * 512) == working_bytes("sdxl")
    assert working_bytes("sd1", 1024 * 1024) == 4 * working_bytes("sd1")


def test_auto_never_picks_sequential_and_explicit_settings_hold_on_gpus() -> None:
    for free in range(0, 40 * GiB, GiB // 2):
        assert decide_offload("auto", "cuda", free, 5 * GiB, "sdxl") in ("none", "model")
    assert decide_offload("auto", "cuda", None, 5 * GiB, "sdxl") == "none"  # unknown free memory
    assert decide_offload("auto", "mps", 0, 5 * GiB, "sdxl") == "none"  # unified memory
    for setting in ("none", "model", "sequential"):
        assert decide_offload(setting, "cuda", 1 << 40, GiB, "sd1") == setting  # type: ignore[arg-type]
        assert decide_offload(setting, "mps", None, GiB, "sd1") == setting  # type: ignore[arg-type]


def test_choose_offload_asks_cuda_only_when_the_decision_needs_it(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[object] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda d: asked.append(d) or (3 * GiB, 8 * GiB))
    assert choose_offload("auto", "cpu", GiB, "sd1") == "none" and asked == []
    assert choose_offload("model", "cuda", GiB, "sd1") == "model" and asked == []
    assert choose_offload("auto", "cuda", 2 * GiB, "sd1") == "model" and len(asked) == 1  # 3 < 2 + 2
    assert choose_offload("auto", "cuda", GiB // 2, "sd1") == "none"


@pytest.mark.parametrize("offload", ["auto", "model", "sequential"])
def test_cpu_engine_never_enables_offload(
    tiny_models: TinyModels, monkeypatch: pytest.MonkeyPatch, offload: str
) -> None:
    def forbidden(*a: object, **k: object) -> None:
        raise AssertionError("offload or a CUDA query on the CPU path")

    monkeypatch.setattr(DiffusionPipeline, "enable_model_cpu_offload", forbidden)
    monkeypatch.setattr(DiffusionPipeline, "enable_sequential_cpu_offload", forbidden)
    monkeypatch.setattr(torch.cuda, "mem_get_info", forbidden)
    eng = DiffusionEngine([str(tiny_models.sd15_folder)], [], device="cpu", offload=offload)  # type: ignore[arg-type]
    for mode in (Mode.INPAINT, Mode.IMG2IMG, Mode.TXT2IMG):
        run(eng, make_job(mode, "sd15-folder", steps=1))
    assert eng.loaded is not None and eng.loaded.offload == "none"
    assert eng.loaded.base.unet.device.type == "cpu"


def test_offload_hooks_are_rearmed_on_the_pipeline_in_use(
    tiny_models: TinyModels, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With offload on, one pipeline drives the shared modules' hooks: a mode switch re-arms them."""
    armed: list[tuple[str, str]] = []
    monkeypatch.setattr(
        DiffusionPipeline,
        "enable_model_cpu_offload",
        lambda self, device=None, **k: armed.append((type(self).__name__, str(device))),
    )
    spec = parse_source(str(tiny_models.sd15_folder))
    pipe = DiffusionPipeline.from_pretrained(str(tiny_models.sd15_folder), safety_checker=None)
    loaded = LoadedModel(spec, pipe, "cuda:0", torch.float16, "model", 0.0, {"inpaint": pipe})
    loaded.pipeline_for("inpaint")
    loaded.pipeline_for("inpaint")
    img2img = loaded.pipeline_for("img2img")
    loaded.pipeline_for("inpaint")
    assert armed == [
        ("StableDiffusionInpaintPipeline", "cuda:0"),
        ("StableDiffusionImg2ImgPipeline", "cuda:0"),
        ("StableDiffusionInpaintPipeline", "cuda:0"),
    ]
    assert img2img.unet is pipe.unet


# --- VAE tiling --------------------------------------------------------------------------------------


def test_vae_tiling_decision_by_size_and_free_memory() -> None:
    budget = 512 * 512
    limit = VAE_TILING_FACTOR * budget
    assert not decide_vae_tiling(512, 512, budget, None)
    assert not decide_vae_tiling(1024, limit // 1024, budget, None)  # exactly at the limit
    assert decide_vae_tiling(1024, limit // 1024 + 8, budget, None)
    assert decide_vae_tiling(2048, 2048, budget, 1 << 50)  # beyond the limit even with memory to spare
    # Below the limit, only a known shortage of memory tiles.
    need = vae_decode_bytes(1024, 1024, torch.float16)
    assert 1 * GiB < need < 4 * GiB  # the estimate is in the range SDXL's VAE really takes at 1024 px fp16
    assert not decide_vae_tiling(1024, 1024, 1024 * 1024, need)
    assert decide_vae_tiling(1024, 1024, 1024 * 1024, need - 1)
    assert vae_decode_bytes(1024, 1024, torch.float32) == 2 * need


def test_engine_tiles_the_vae_above_the_threshold_and_untiles_below(
    tiny_models: TinyModels, monkeypatch: pytest.MonkeyPatch
) -> None:
    eng = DiffusionEngine([str(tiny_models.sd15_folder)], [], device="cpu")
    run(eng, make_job(Mode.TXT2IMG, "sd15-folder", steps=1))
    assert eng.loaded is not None
    vae = eng.loaded.base.vae
    calls: list[str] = []
    real_tiled = vae.tiled_decode
    monkeypatch.setattr(vae, "enable_tiling", lambda: calls.append("enable") or setattr(vae, "use_tiling", True))
    monkeypatch.setattr(vae, "disable_tiling", lambda: calls.append("disable") or setattr(vae, "use_tiling", False))
    monkeypatch.setattr(vae, "tiled_decode", lambda *a, **k: calls.append("tiled_decode") or real_tiled(*a, **k))
    # 728 x 728 > 2 x 512 x 512 (the SD1.5 budget): tiled, and the decode really goes through the tiles
    # (the tiny VAE's tile is 128 px).
    big = run(eng, make_job(Mode.TXT2IMG, "sd15-folder", size=728, steps=1, previews=False))[0]
    assert big.shape == (728, 728, 3)
    assert calls == ["enable", "tiled_decode"] and vae.use_tiling
    calls.clear()
    run(eng, make_job(Mode.TXT2IMG, "sd15-folder", size=64, steps=1))
    assert calls == ["disable"] and not vae.use_tiling
    # Known free memory too short for a full decode tiles even a small image.
    calls.clear()
    monkeypatch.setattr(engine_module, "free_device_bytes", lambda device: 1024)
    run(eng, make_job(Mode.TXT2IMG, "sd15-folder", size=256, steps=1))
    assert calls[0] == "enable" and vae.use_tiling
