"""Few-step LoRAs through the real ``#lora=`` source path, and few-step detection from names and metadata."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import peft  # noqa: F401 - the LoRA support needs it; missing, these tests fail (never skip)
import pytest
import torch
from conftest import TinyLoras, TinyModels, make_job, run
from safetensors.torch import load_file, save_file

from underpaint.engines.base import StepProgress
from underpaint.engines.diffusion import DiffusionEngine, list_local_models
from underpaint.engines.diffusion import loading as loading_module
from underpaint.engines.diffusion.registry import few_step_for, parse_source
from underpaint.errors import JobError
from underpaint.modes import Mode


def _unet_weights(engine: DiffusionEngine) -> dict[str, torch.Tensor]:
    assert engine.loaded is not None
    return {k: v.detach().clone() for k, v in engine.loaded.base.unet.state_dict().items()}


def test_lora_is_fused_into_the_unet_and_changes_the_output(tiny_models: TinyModels, tiny_loras: TinyLoras) -> None:
    folder = str(tiny_models.sd15_folder)
    eng = DiffusionEngine([folder, f"{folder}#lora={tiny_loras.style}"], [], device="cpu")
    ids = [m.id for m in eng.models()]
    assert ids == ["sd15-folder", "sd15-folder+tiny-style-lora"]  # base and LoRA'd model side by side
    job = make_job(Mode.INPAINT, "sd15-folder", steps=2)
    base_image = run(eng, job)[0]
    base = _unet_weights(eng)
    lora_job = make_job(Mode.INPAINT, "sd15-folder+tiny-style-lora", steps=2)
    lora_image = run(eng, lora_job)[0]
    assert not np.array_equal(base_image, lora_image)
    assert eng.loaded is not None
    unet = eng.loaded.base.unet
    # Fused and unloaded: plain weights again, no peft wrapper left in the forward pass.
    assert not any("lora" in name for name, _ in unet.named_modules())
    assert not any("lora" in name for name in unet.state_dict())
    fused = _unet_weights(eng)
    lora = load_file(str(tiny_loras.style))
    downs = [k for k in lora if k.endswith(".lora.down.weight")]
    assert len(downs) == 48  # 4 projections x 2 attentions x 6 transformer blocks of the tiny UNet
    for down_key in downs:
        module = down_key.removeprefix("unet.").removesuffix(".lora.down.weight")
        up = lora[down_key.replace(".down.", ".up.")]
        expected = base[module + ".weight"] + up @ lora[down_key]  # alpha == rank: scale 1
        torch.testing.assert_close(fused[module + ".weight"], expected, atol=1e-5, rtol=1e-5)
    untouched = [k for k in base if not any(k.startswith(d.removeprefix("unet.").split(".lora")[0]) for d in downs)]
    assert untouched and all(torch.equal(base[k], fused[k]) for k in untouched)
    # A style LoRA (no few-step marker) leaves scheduler and guidance alone.
    params = eng.run_params(lora_job)
    assert params.guidance == 5.0 and params.scheduler == "EulerDiscreteScheduler" and not params.adjustments
    # Deterministic, and the base model reloaded afterwards is untouched by the LoRA.
    np.testing.assert_array_equal(run(eng, lora_job)[0], lora_image)
    np.testing.assert_array_equal(run(eng, job)[0], base_image)


def test_lcm_lora_switches_scheduler_guidance_and_steps(tiny_models: TinyModels, tiny_loras: TinyLoras) -> None:
    source = f"{tiny_models.sd15_folder}#lora={tiny_loras.lcm}"
    eng = DiffusionEngine([source], [], device="cpu")
    info = eng.models()[0]
    assert info.id == "sd15-folder+tiny-lcm-lora"
    assert "few_step:lcm" in info.capabilities and "lora" in info.capabilities
    assert info.default_steps == 4 and info.default_guidance == 1.5
    job = make_job(Mode.TXT2IMG, info.id, steps=30, guidance=7.5)
    events: list[StepProgress] = []
    run(eng, job, progress=events)
    params = eng.run_params(job)
    assert params.steps == 8 and params.guidance == 1.5 and params.scheduler == "LCMScheduler"
    assert len(events) == 8  # the clamped step count is what really ran
    assert eng.loaded is not None and type(eng.loaded.pipeline_for("txt2img").scheduler).__name__ == "LCMScheduler"


def test_lora_named_only_by_its_folder_is_recognised(tiny_models: TinyModels, tiny_loras: TinyLoras) -> None:
    # `hf download latent-consistency/lcm-lora-sdv1-5 --local-dir lcm-lora-sdv1-5` leaves a generic file name.
    spec = parse_source(f"{tiny_models.sd15_folder}#lora={tiny_loras.lcm_folder}")
    assert spec.id == "sd15-folder+lcm-lora-sdv1-5"
    assert spec.few_step is not None and spec.few_step.name == "lcm"
    # The LoRA folder itself works as a source too (diffusers finds the safetensors file in it).
    eng = DiffusionEngine([f"{tiny_models.sd15_folder}#lora={tiny_loras.lcm_folder.parent}"], [], device="cpu")
    run(eng, make_job(Mode.TXT2IMG, "sd15-folder+lcm-lora-sdv1-5"))
    assert eng.loaded is not None and type(eng.loaded.base.scheduler).__name__ == "LCMScheduler"


def test_lora_metadata_beats_a_plain_name(tiny_models: TinyModels, tiny_loras: TinyLoras) -> None:
    spec = parse_source(f"{tiny_models.sd15_folder}#lora={tiny_loras.hyper_by_metadata}")
    assert spec.few_step is not None
    assert (spec.few_step.name, spec.few_step.source, spec.few_step.default_steps) == ("hyper", "metadata", 8)
    # A model name with a few-step keyword does not win over the LoRA's own description either.
    turbo_named = tiny_models.root / "my-turbo-base"
    if not turbo_named.exists():
        turbo_named.symlink_to(tiny_models.sd15_folder, target_is_directory=True)
    spec = parse_source(f"{turbo_named}#lora={tiny_loras.lcm}")
    assert spec.few_step is not None and spec.few_step.name == "lcm"
    # A LoRA that says nothing leaves the base model's own profile (a style LoRA on a turbo model).
    spec = parse_source(f"{turbo_named}#lora={tiny_loras.style}")
    assert spec.few_step is not None and spec.few_step.name == "turbo"


def test_few_step_override_in_the_source(tiny_models: TinyModels, tiny_loras: TinyLoras) -> None:
    folder = tiny_models.sd15_folder
    forced = parse_source(f"{folder}#lora={tiny_loras.style}#few_step=lcm")
    assert forced.few_step is not None and (forced.few_step.name, forced.few_step.source) == ("lcm", "override")
    assert forced.id == "sd15-folder+tiny-style-lora"
    off = parse_source(f"{folder}#lora={tiny_loras.lcm}#few_step=none")
    assert off.few_step is None and off.lora == str(tiny_loras.lcm)
    plain = parse_source(f"{folder}#few_step=turbo")  # without a LoRA too
    assert plain.few_step is not None and plain.few_step.name == "turbo" and plain.id == "sd15-folder"
    with pytest.raises(ValueError, match="few_step"):
        DiffusionEngine([f"{folder}#few_step=fast"], [], device="cpu")
    eng = DiffusionEngine([f"{folder}#lora={tiny_loras.lcm}#few_step=none"], [], device="cpu")
    job = make_job(Mode.TXT2IMG, "sd15-folder+tiny-lcm-lora", steps=3, guidance=6.0)
    run(eng, job)
    params = eng.run_params(job)
    assert params.guidance == 6.0 and params.steps == 3 and params.scheduler == "EulerDiscreteScheduler"


@pytest.mark.parametrize("which", ["pickle_bin", "pickle_pt"])
def test_pickle_lora_is_refused_like_a_pickle_checkpoint(
    tiny_models: TinyModels, tiny_loras: TinyLoras, monkeypatch: pytest.MonkeyPatch, which: str
) -> None:
    evil: Path = getattr(tiny_loras, which)

    def never(*a: object, **k: object) -> None:
        raise AssertionError("a pickle was opened")

    monkeypatch.setattr(torch, "load", never)
    source = f"{tiny_models.sd15_folder}#lora={evil}"
    eng = DiffusionEngine([source], [], device="cpu")
    assert eng.models() == []  # never offered to clients
    with pytest.raises(JobError) as err:
        run(eng, make_job(Mode.INPAINT, "sd15-folder+evil-lora"))
    assert err.value.code == "unsafe_model_format"
    assert "arbitrary code" in err.value.message and ".safetensors" in err.value.message
    listed = {m.id: m for m in list_local_models([source], [], include_hf_cache=False)}
    assert listed["sd15-folder+evil-lora"].capabilities == ("refused:pickle",)
    assert "LoRA" in listed["sd15-folder+evil-lora"].description


def test_lora_folder_with_only_pickles_and_missing_lora_are_refused_at_load(
    tiny_models: TinyModels, tiny_loras: TinyLoras, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("a pickle was opened"))
    bin_only = tmp_path / "binlora"
    bin_only.mkdir()
    shutil.copy(tiny_loras.pickle_bin, bin_only / "pytorch_lora_weights.bin")
    missing = tmp_path / "gone.safetensors"
    eng = DiffusionEngine(
        [f"{tiny_models.sd15_folder}#lora={bin_only}", f"{tiny_models.sd15_folder}#lora={missing}"], [], device="cpu"
    )
    with pytest.raises(JobError) as err:
        run(eng, make_job(Mode.TXT2IMG, "sd15-folder+binlora"))
    assert err.value.code == "unsafe_model_format"
    with pytest.raises(JobError) as err:
        run(eng, make_job(Mode.TXT2IMG, "sd15-folder+gone"))
    assert err.value.code == "model_load_failed" and "gone.safetensors" in err.value.message
    # The load-time guard holds on its own too (e.g. a hub path "owner/repo/lora.bin").
    with pytest.raises(JobError) as err:
        loading_module._apply_lora(object(), "owner/repo/lora.bin")
    assert err.value.code == "unsafe_model_format"


# --- few-step detection ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("sd_xl_turbo_1.0_fp16.safetensors", ("turbo", 2, 4)),
        ("stabilityai/sd-turbo", ("turbo", 2, 4)),
        ("sdxl_lightning_4step_lora.safetensors", ("lightning", 4, 8)),
        ("sdxl_lightning_2step_unet.safetensors", ("lightning", 2, 8)),
        ("Hyper-SD15-8steps-lora.safetensors", ("hyper", 8, 8)),
        ("Hyper-SDXL-12steps-CFG-lora.safetensors", ("hyper", 12, 12)),
        ("latent-consistency/lcm-lora-sdv1-5", ("lcm", 4, 8)),
        ("LCM_Dreamshaper_v7", ("lcm", 4, 8)),
        ("hyperRealism_v30.safetensors", None),  # a regular checkpoint, not Hyper-SD
        ("dreamshaper_8.safetensors", None),
        ("sd15-folder", None),
    ],
)
def test_few_step_names(name: str, expected: tuple[str, int, int] | None) -> None:
    found = few_step_for(name)
    assert (None if found is None else (found.name, found.default_steps, found.max_steps)) == expected


def test_diffusers_folder_with_an_lcm_scheduler_is_few_step_by_its_config(
    tiny_models: TinyModels, tmp_path: Path
) -> None:
    folder = tmp_path / "my-turbo-finetune"  # its name says turbo; its config says LCM: the config wins
    shutil.copytree(tiny_models.sd15_folder, folder)
    config_path = folder / "scheduler" / "scheduler_config.json"
    config = json.loads(config_path.read_text())
    config["_class_name"] = "LCMScheduler"
    config_path.write_text(json.dumps(config))
    spec = parse_source(str(folder))
    assert spec.few_step is not None and (spec.few_step.name, spec.few_step.source) == ("lcm", "config")
    eng = DiffusionEngine([str(folder)], [], device="cpu")
    assert "from its scheduler config" in eng.models()[0].description
    job = make_job(Mode.IMG2IMG, "my-turbo-finetune", steps=4, guidance=7.0, strength=0.5)
    run(eng, job)
    params = eng.run_params(job)
    assert params.guidance == 1.5 and params.scheduler == "LCMScheduler"
    # The unchanged folder stays a regular model.
    assert parse_source(str(tiny_models.sd15_folder)).few_step is None


def test_single_file_metadata_says_what_the_model_is(tiny_models: TinyModels, tmp_path: Path) -> None:
    state = load_file(str(tiny_models.sd15_file))
    neutral = tmp_path / "model-a.safetensors"
    save_file(state, str(neutral), metadata={"modelspec.title": "Tiny SD Turbo", "modelspec.architecture": "sd-v1"})
    shutil.copytree(tiny_models.sd15_file.with_name("sd15.config"), tmp_path / "model-a.config")
    spec = parse_source(str(neutral))
    assert spec.few_step is not None and (spec.few_step.name, spec.few_step.source) == ("turbo", "metadata")
    # Metadata beats the name; the base model a LoRA was trained on (ss_sd_model_name) does not count.
    named = tmp_path / "x-lightning.safetensors"
    save_file(state, str(named), metadata={"modelspec.description": "LCM distilled"})
    assert parse_source(str(named)).few_step.name == "lcm"  # type: ignore[union-attr]
    base_only = tmp_path / "b.safetensors"
    save_file(state, str(base_only), metadata={"ss_sd_model_name": "sd_xl_turbo_1.0.safetensors"})
    assert parse_source(str(base_only)).few_step is None
    # Loaded through the real single-file path, the metadata's profile drives scheduler and guidance.
    eng = DiffusionEngine([str(neutral)], [], device="cpu")
    job = make_job(Mode.INPAINT, "model-a", steps=10, guidance=7.0)
    run(eng, job)
    params = eng.run_params(job)
    assert params.guidance == 0.0 and params.steps == 4 and params.scheduler == "EulerAncestralDiscreteScheduler"


def test_registry_keeps_models_that_differ_only_by_their_lora(tiny_models: TinyModels, tiny_loras: TinyLoras) -> None:
    from underpaint.engines.diffusion.registry import build_registry

    folder = tiny_models.sd15_folder
    as_file = f"{folder}#lora={tiny_loras.lcm_folder}"
    as_dir = f"{folder}#lora={tiny_loras.lcm_folder.parent}"  # same label, other LoRA source
    table = build_registry([str(folder), as_file, as_dir, as_file], [])
    assert list(table) == ["sd15-folder", "sd15-folder+lcm-lora-sdv1-5", "sd15-folder+lcm-lora-sdv1-5-2"]
    assert table["sd15-folder+lcm-lora-sdv1-5-2"].lora == str(tiny_loras.lcm_folder.parent)


def test_lora_is_part_of_the_reproduction_params_and_hub_loras_fail_clearly_offline(
    tiny_models: TinyModels, tiny_loras: TinyLoras
) -> None:
    folder = tiny_models.sd15_folder
    eng = DiffusionEngine(
        [f"{folder}#lora={tiny_loras.lcm}", f"{folder}#lora=someone/lcm-lora-not-cached"], [], device="cpu"
    )
    params = eng.reproduction_params(make_job(Mode.TXT2IMG, "sd15-folder+tiny-lcm-lora"))
    assert params["lora"] == str(tiny_loras.lcm) and params["few_step"] == "lcm"
    assert params["source"] == str(folder)
    hub = eng.run_params(make_job(Mode.TXT2IMG, "sd15-folder+lcm-lora-not-cached"))
    assert hub.few_step == "lcm"  # known by the repo's name before it is ever downloaded
    with pytest.raises(JobError) as err:  # HF_HUB_OFFLINE is set for the tests: never downloaded
        run(eng, make_job(Mode.TXT2IMG, "sd15-folder+lcm-lora-not-cached"))
    assert err.value.code == "model_load_failed"
    assert "LoRA someone/lcm-lora-not-cached" in err.value.message and "offline" in err.value.message
    with pytest.raises(JobError) as err:  # a relative local path that is not there is not taken for a repo
        loading_module._apply_lora(object(), "loras/missing.safetensors")
    assert err.value.code == "model_load_failed" and "not on disk" in err.value.message
    with pytest.raises(ValueError, match="takes no #lora"):
        DiffusionEngine([f"tiny-random#lora={tiny_loras.lcm}"], [], device="cpu")
