"""DiffusionEngine end to end on tiny random-weight models, loaded through the same code users hit."""

from __future__ import annotations

import gc
import threading
import time
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TinyModels, make_job, run

from underpaint.engines.base import JobCancelled, StepProgress
from underpaint.engines.diffusion import DiffusionEngine, list_local_models
from underpaint.engines.diffusion import loading as loading_module
from underpaint.errors import JobError
from underpaint.modes import Mode


@pytest.fixture(scope="module")
def engine(tiny_models: TinyModels) -> DiffusionEngine:
    eng = DiffusionEngine(tiny_models.sources, [tiny_models.models_dir], device="cpu")
    yield eng
    eng.close()


MODELS = ["tiny-random", "sd15", "sd15-inpaint-folder", "sd15-inpaint", "sdxl-folder", "sdxl-inpaint"]


def test_registry_lists_configured_models(engine: DiffusionEngine) -> None:
    infos = {m.id: m for m in engine.models()}
    assert set(MODELS) <= set(infos)
    assert "evil" not in infos  # pickles are never offered to clients
    assert infos["sd15-inpaint"].family == "sd1" and "inpaint_unet" in infos["sd15-inpaint"].capabilities
    assert infos["sdxl-inpaint"].family == "sdxl"
    assert engine.resolution("sdxl-folder").pixel_budget == 1024 * 1024
    assert engine.resolution("sd15").pixel_budget == 512 * 512
    assert engine.resolution("sd15").multiple == 8


@pytest.mark.parametrize("model", MODELS)
def test_every_mode_yields_images_of_the_job_size(engine: DiffusionEngine, model: str) -> None:
    for mode in (m for m in Mode if m is not Mode.SEGMENT):  # segment jobs go to segment engines
        size = 64 if mode != Mode.OUTPAINT else 96
        out = run(engine, make_job(mode, model, size=size))
        assert len(out) == 1
        assert out[0].shape == (size, size, 3) and out[0].dtype == np.uint8
    assert engine.loaded is not None and engine.loaded.spec.id == model


def test_single_file_and_folder_give_the_same_pixels(engine: DiffusionEngine) -> None:
    job = make_job(Mode.INPAINT, "sd15")
    from_file = run(engine, job)[0]
    from_folder = run(engine, make_job(Mode.INPAINT, "sd15-folder"))[0]
    np.testing.assert_array_equal(from_file, from_folder)


def test_same_seed_same_pixels_and_batch_items_use_seed_plus_k(engine: DiffusionEngine) -> None:
    job = make_job(Mode.INPAINT, "sd15-folder", seed=11)
    a = run(engine, job, batch_count=2)
    b = run(engine, job, batch_count=2)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], a[1])
    second_alone = run(engine, make_job(Mode.INPAINT, "sd15-folder", seed=12))[0]
    np.testing.assert_array_equal(a[1], second_alone)


def test_mode_switch_shares_modules_and_does_not_reload(
    engine: DiffusionEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(engine, make_job(Mode.INPAINT, "sd15-folder"))
    loaded = engine.loaded
    assert loaded is not None
    loads: list[str] = []
    real_load = loading_module.load_model
    monkeypatch.setattr(
        "underpaint.engines.diffusion.engine.load_model", lambda *a: loads.append(a[0].id) or real_load(*a)
    )
    loaded.pipes.pop("img2img", None)
    loaded.pipes.pop("txt2img", None)
    start = time.perf_counter()
    img2img = loaded.pipeline_for("img2img")
    switch_s = time.perf_counter() - start
    run(engine, make_job(Mode.IMG2IMG, "sd15-folder"))
    run(engine, make_job(Mode.TXT2IMG, "sd15-folder"))
    assert engine.loaded is loaded and loads == []
    inpaint = loaded.pipes["inpaint"]
    assert img2img.unet is inpaint.unet and img2img.vae is inpaint.vae
    assert loaded.pipes["txt2img"].unet is inpaint.unet
    assert loaded.pipes["txt2img"].text_encoder is inpaint.text_encoder
    print(f"first from_pipe mode switch: {switch_s * 1000:.1f} ms")
    assert switch_s < 0.5  # issue 4 asks < 50 ms; generous bound for a loaded 2-core CI box


def test_switching_models_frees_the_old_one(engine: DiffusionEngine) -> None:
    run(engine, make_job(Mode.INPAINT, "sd15-folder"))
    assert engine.loaded is not None
    old_unet = weakref.ref(engine.loaded.base.unet)
    old_pipe = weakref.ref(engine.loaded.pipeline_for("img2img"))
    run(engine, make_job(Mode.INPAINT, "sd15-inpaint-folder"))
    gc.collect()
    assert old_unet() is None and old_pipe() is None
    assert engine.loaded is not None and engine.loaded.spec.id == "sd15-inpaint-folder"


def test_pickle_checkpoint_is_refused_with_why_and_how(engine: DiffusionEngine, tiny_models: TinyModels) -> None:
    with pytest.raises(JobError) as err:
        run(engine, make_job(Mode.INPAINT, "evil"))
    assert err.value.code == "unsafe_model_format"
    assert "arbitrary code" in err.value.message and ".safetensors" in err.value.message
    listed = {m.id: m for m in list_local_models([str(tiny_models.pickle_file)], [], include_hf_cache=False)}
    assert listed["evil"].capabilities == ("refused:pickle",) and listed["evil"].modes == ()


def test_diffusers_folder_with_only_pickle_weights_is_refused(tiny_models: TinyModels, tmp_path: Path) -> None:
    import shutil

    folder = tmp_path / "binonly"
    shutil.copytree(tiny_models.sd15_folder, folder)
    for weights in folder.glob("*/*.safetensors"):
        weights.rename(weights.with_suffix(".bin"))
    eng = DiffusionEngine([str(folder)], [], device="cpu")
    with pytest.raises(JobError) as err:
        run(eng, make_job(Mode.INPAINT, "binonly"))
    assert err.value.code == "unsafe_model_format"


@pytest.mark.parametrize(
    "name", ["nope", "../sd15", "/etc/passwd", "sd15.safetensors", "C:\\models\\sd15.safetensors", ""]
)
def test_unknown_and_path_like_names_are_refused(engine: DiffusionEngine, tiny_models: TinyModels, name: str) -> None:
    with pytest.raises(JobError) as err:
        run(engine, make_job(Mode.TXT2IMG, name))
    assert err.value.code == "unknown_model" and err.value.field == "job.model"
    # Even the real path of a configured file is not a model id: only ids are.
    with pytest.raises(JobError):
        run(engine, make_job(Mode.TXT2IMG, str(tiny_models.sd15_file)))


def test_progress_every_step_with_small_previews(engine: DiffusionEngine) -> None:
    events: list[StepProgress] = []
    run(engine, make_job(Mode.INPAINT, "sd15-folder", size=128, steps=3), batch_count=2, progress=events)
    assert [e.step for e in events] == [1, 2, 3, 4, 5, 6]
    assert all(e.total == 6 for e in events)
    for e in events:
        assert e.preview is not None and e.preview.dtype == np.uint8
        assert e.preview.shape == (16, 16, 3) and max(e.preview.shape) <= 256
    quiet: list[StepProgress] = []
    run(engine, make_job(Mode.INPAINT, "sd15-folder", previews=False), progress=quiet)
    assert len(quiet) == 2 and all(e.preview is None for e in quiet)


def test_cancel_stops_after_the_current_step_without_decoding(
    engine: DiffusionEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(engine, make_job(Mode.INPAINT, "sd15-folder"))
    assert engine.loaded is not None
    vae = engine.loaded.base.vae
    decodes: list[int] = []
    real_decode = vae.decode
    monkeypatch.setattr(vae, "decode", lambda *a, **k: decodes.append(1) or real_decode(*a, **k))
    unet_calls: list[int] = []
    hook = engine.loaded.base.unet.register_forward_hook(lambda *a: unet_calls.append(1))
    cancel = threading.Event()
    events: list[StepProgress] = []

    def on_progress(event: StepProgress) -> None:
        events.append(event)
        if event.step == 2:
            cancel.set()

    try:
        with pytest.raises(JobCancelled):
            list(engine.generate(make_job(Mode.INPAINT, "sd15-folder", steps=10), 3, on_progress, cancel))
    finally:
        hook.remove()
    assert [e.step for e in events] == [1, 2]
    assert len(unet_calls) == 2  # the 8 remaining steps were skipped, not run
    assert decodes == []
    # A job whose cancel is already set never starts.
    with pytest.raises(JobCancelled):
        run(engine, make_job(Mode.INPAINT, "sd15-folder"), cancel=cancel)


def test_nan_decode_is_redone_in_fp32_not_returned(engine: DiffusionEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    run(engine, make_job(Mode.INPAINT, "sd15-folder"))
    assert engine.loaded is not None
    vae = engine.loaded.base.vae
    real_decode = vae.decode
    calls: list[torch.dtype] = []

    def nan_once(z: torch.Tensor, *a: object, **k: object) -> object:
        calls.append(vae.dtype)
        out = real_decode(z, *a, **k)
        if len(calls) == 1:
            out[0].fill_(float("nan"))
        return out

    monkeypatch.setattr(vae, "decode", nan_once)
    image = run(engine, make_job(Mode.INPAINT, "sd15-folder"))[0]
    assert len(calls) == 2 and calls[1] == torch.float32 and engine.last_decode_redone
    monkeypatch.setattr(vae, "decode", real_decode)
    np.testing.assert_array_equal(image, run(engine, make_job(Mode.INPAINT, "sd15-folder"))[0])

    def always_nan(z: torch.Tensor, *a: object, **k: object) -> object:
        out = real_decode(z, *a, **k)
        out[0].fill_(float("nan"))
        return out

    monkeypatch.setattr(vae, "decode", always_nan)
    with pytest.raises(JobError) as err:
        run(engine, make_job(Mode.INPAINT, "sd15-folder"))
    assert err.value.code == "generation_failed"


def test_strength_below_one_step_is_clamped_not_a_silent_noop(engine: DiffusionEngine) -> None:
    job = make_job(Mode.IMG2IMG, "sd15-folder", steps=2, strength=0.3)
    params = engine.run_params(job)
    assert params.steps == 4 and params.steps_run == 1 and params.adjustments
    events: list[StepProgress] = []
    out = run(engine, job, progress=events)
    assert len(events) == 1 and out[0].shape == (64, 64, 3)
    assert not np.array_equal(out[0], job.image)  # it really ran a step
    for bad in (0.0, -0.5, 1.5):
        with pytest.raises(JobError) as err:
            run(engine, make_job(Mode.IMG2IMG, "sd15-folder", strength=bad))
        assert err.value.code == "invalid_value" and err.value.field == "job.strength"


def test_few_step_models_get_their_guidance_and_scheduler(tiny_models: TinyModels, tmp_path: Path) -> None:
    turbo = tmp_path / "tiny-sd-turbo"
    turbo.symlink_to(tiny_models.sd15_folder, target_is_directory=True)
    eng = DiffusionEngine([str(turbo)], [], device="cpu")
    info = eng.models()[0]
    assert info.default_guidance == 0.0 and info.default_steps <= 4
    job = make_job(Mode.TXT2IMG, "tiny-sd-turbo", steps=30, guidance=7.5)
    run(eng, job)
    params = eng.run_params(job)
    assert params.guidance == 0.0 and params.steps == 4
    assert params.scheduler == "EulerAncestralDiscreteScheduler"
    assert eng.loaded is not None and eng.loaded.base.scheduler.config.timestep_spacing == "trailing"


def test_offline_hub_repo_not_in_cache_fails_clearly() -> None:
    eng = DiffusionEngine(["someone/not-in-the-cache"], [], device="cpu")
    with pytest.raises(JobError) as err:
        run(eng, make_job(Mode.TXT2IMG, "someone/not-in-the-cache"))
    assert err.value.code == "model_load_failed" and "offline" in err.value.message


def test_list_local_models_for_the_cli(tiny_models: TinyModels) -> None:
    infos = list_local_models(["tiny-random"], [tiny_models.models_dir])
    ids = {i.id for i in infos}
    assert {"tiny-random", "sd15", "sd15-inpaint", "sdxl-inpaint"} <= ids
    assert all(i.engine == "diffusion" for i in infos)
