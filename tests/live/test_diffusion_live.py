"""A live session on a diffusion model: set up once, the prompt encoded once, each frame the job it stands for."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from underpaint.engines.base import GenerationInput, no_progress
from underpaint.modes import Mode

pytestmark = pytest.mark.diffusion


@pytest.mark.parametrize(("family", "mode"), [("sd1", Mode.IMG2IMG), ("sd1", Mode.INPAINT), ("sdxl", Mode.IMG2IMG)])
def test_a_live_frame_is_the_job_it_stands_for_with_the_prompt_encoded_once(
    family: str, mode: Mode, tmp_path: Path
) -> None:
    from underpaint.engines.diffusion import DiffusionEngine, tiny
    from underpaint.engines.diffusion.engine import DiffusionLive

    engine = DiffusionEngine(sources=["tiny-random"], device="cpu")
    model = "tiny-random"
    if family == "sdxl":
        model = "tiny-xl"
        engine.adopt_pipeline(model, tiny.build_sdxl(tiny.write_tokenizer(tmp_path / "tok"), seed=3), "sdxl")
    mask = np.zeros((64, 64), np.uint8)
    mask[16:48, 16:48] = 255
    job = GenerationInput(
        mode, model, "a red fox", "blurry", 5, 2, 7.5, 0.5, 64, 64, None, mask if mode is Mode.INPAINT else None
    )
    live = engine.open_live(job)
    assert isinstance(live, DiffusionLive)
    cancel = threading.Event()
    rng = np.random.default_rng(0)
    first = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    live.frame(first, cancel)
    loaded = engine.loaded
    assert loaded is not None
    encoder_calls = []
    hook = loaded.base.text_encoder.register_forward_hook(lambda *args: encoder_calls.append(1))
    try:
        frames = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(2)]
        made = [live.frame(image, cancel) for image in frames]
        assert encoder_calls == [], "the prompt is encoded once per session, not per frame"
        assert live.setups == 1
        (ordinary,) = list(engine.generate(replace(job, image=frames[1], previews=False), 1, no_progress, cancel))
        assert encoder_calls, "an ordinary job encodes its prompt (the hook counts)"
    finally:
        hook.remove()
    assert np.array_equal(made[1], ordinary), "a live frame makes what the same job would"
    assert not np.array_equal(made[0], made[1])
    assert live.params()["steps"] == 2


def test_a_job_loading_another_model_between_frames_sets_the_session_up_again(tmp_path: Path) -> None:
    from underpaint.engines.diffusion import DiffusionEngine, tiny
    from underpaint.engines.diffusion.engine import DiffusionLive

    engine = DiffusionEngine(sources=["tiny-random"], device="cpu")
    job = GenerationInput(Mode.IMG2IMG, "tiny-random", "fox", "", 1, 2, 7.5, 0.5, 64, 64, None, None)
    live = engine.open_live(job)
    assert isinstance(live, DiffusionLive)
    image = np.full((64, 64, 3), 90, np.uint8)
    before = live.frame(image, threading.Event())
    engine.adopt_pipeline("other", tiny.build_sd15(tiny.write_tokenizer(tmp_path / "tok"), seed=8), "sd1")
    after = live.frame(image, threading.Event())
    assert live.setups == 2 and np.array_equal(before, after)


def test_a_few_step_model_runs_live_at_its_profile(tmp_path: Path) -> None:
    """A turbo-profile model: live_started reports (and frames run) its steps and guidance, whatever was asked."""
    from tests.daemon.conftest import start_daemon
    from underpaint.engines.diffusion import DiffusionEngine, tiny

    folder = tmp_path / "turbo"
    tiny.build_sd15(tiny.write_tokenizer(tmp_path / "tok"), seed=2).save_pretrained(str(folder))
    engine = DiffusionEngine(sources=[f"{folder}#few_step=turbo"], device="cpu")
    (model,) = [info.id for info in engine.models()]
    daemon = start_daemon(tmp_path / "daemon", engines=[engine], default_model=model)
    try:
        started = _first_live_frame(daemon.url, {"steps": 30, "guidance": 7.0})
        assert (started["type"], started["steps"], started["guidance"]) == ("live_started", 4, 0.0), started
    finally:
        daemon.thread.stop()


def _first_live_frame(url: str, live: dict[str, object]) -> dict[str, Any]:
    """Starts a live session of ``live`` on a 64x64 canvas at the daemon at ``url``, sends one blank
    frame, checks its result comes; returns the ``live_started`` message."""
    from tests.daemon.conftest import greeted, recv_json
    from underpaint_protocol.frames import Attachment, encode_frame

    connection = greeted(url)
    live = live | {"canvas": {"width": 64, "height": 64}}
    connection.send(json.dumps({"type": "live_start", "request_id": "t", "live": live}))
    started = recv_json(connection, timeout=60)
    attachment = Attachment("live-1", "rgba8", 64, 64)
    rect = {"x": 0, "y": 0, "width": 64, "height": 64}
    connection.send(json.dumps({"type": "live_frame", "seq": 1, "rect": rect, "image": attachment.as_dict()}))
    connection.send(b"".join(bytes(part) for part in encode_frame(attachment, bytes(64 * 64 * 4))))
    result = recv_json(connection, timeout=120)
    assert (result["type"], result["seq"]) == ("live_result", 1), result
    connection.close()
    return started


@pytest.mark.parametrize("few_step", ["none", "lcm", "turbo"])
def test_the_timesteps_are_set_once_per_session_and_frames_stay_the_job_they_stand_for(
    few_step: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Euler (tiny-random), LCM and Euler ancestral (trailing): the session's scheduler computes its
    timesteps on the first frame only, and every frame still equals the ordinary job for its image."""
    from underpaint.engines.diffusion import DiffusionEngine, tiny

    folder = tmp_path / "model"
    tiny.build_sd15(tiny.write_tokenizer(tmp_path / "tok"), in_channels=4, seed=4).save_pretrained(str(folder))
    engine = DiffusionEngine(sources=[f"{folder}#few_step={few_step}"], device="cpu")
    (model,) = [info.id for info in engine.models()]
    job = GenerationInput(Mode.IMG2IMG, model, "a red fox", "", 9, 4, 1.5, 0.5, 64, 64, None, None)
    job = replace(job, guidance=engine.run_params(job).guidance, steps=engine.run_params(job).steps)
    live = engine.open_live(job)
    cancel = threading.Event()
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(3)]
    live.frame(images[0], cancel)
    loaded = engine.loaded
    assert loaded is not None
    scheduler = type(loaded.base.scheduler)
    if few_step != "none":
        assert scheduler.__name__ == {"lcm": "LCMScheduler", "turbo": "EulerAncestralDiscreteScheduler"}[few_step]
    real = scheduler.set_timesteps
    calls: list[int] = []

    def counted(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(scheduler, "set_timesteps", counted)
    made = [live.frame(image, cancel) for image in images[1:]]
    assert calls == [], "the frames after the first reuse the session's timesteps"
    for image, frame in zip(images[1:], made, strict=True):
        (ordinary,) = list(engine.generate(replace(job, image=image), 1, no_progress, cancel))
        assert np.array_equal(frame, ordinary), "a live frame makes what the same job would"
    assert len(calls) == 2, "an ordinary job sets its timesteps (the counter counts)"
    assert not np.array_equal(made[0], made[1])


def test_with_loras_the_prompt_is_encoded_once_and_again_only_after_a_job_switched_them(tmp_path: Path) -> None:
    from tests.daemon.test_loras import save_tiny_lora
    from underpaint.engines.diffusion import DiffusionEngine
    from underpaint.engines.diffusion.engine import DiffusionLive

    folder = tmp_path / "models"
    folder.mkdir()
    save_tiny_lora(folder, "film", 42, {})
    save_tiny_lora(folder, "ink", 7, {})
    engine = DiffusionEngine(sources=["tiny-random"], models_dirs=[folder], device="cpu")
    job = GenerationInput(
        Mode.IMG2IMG, "tiny-random", "a red fox", "", 5, 2, 7.5, 0.5, 64, 64, None, None, loras=(("film", 0.8),)
    )
    live = engine.open_live(job)
    assert isinstance(live, DiffusionLive)
    cancel = threading.Event()
    image = np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    first = live.frame(image, cancel)
    loaded = engine.loaded
    assert loaded is not None
    in_frames: list[int] = []
    counting = [False]

    def count(*args: object) -> None:
        if counting[0]:
            in_frames.append(1)

    hook = loaded.base.text_encoder.register_forward_hook(count)

    def frame() -> np.ndarray:
        counting[0] = True
        try:
            return live.frame(image, cancel)
        finally:
            counting[0] = False

    try:
        assert np.array_equal(frame(), first) and in_frames == [], "encoded once, with the session's LoRA on"
        other = list(engine.generate(replace(job, image=image, loras=(("ink", 1.0),)), 1, no_progress, cancel))
        assert np.array_equal(frame(), first), "the session's LoRA is back on for its frame"
        assert in_frames and live.encodes == 2, "another job switched the adapters: encoded again"
        in_frames.clear()
        (ordinary,) = list(engine.generate(replace(job, image=image), 1, no_progress, cancel))
        assert np.array_equal(frame(), first) and in_frames == [], "a job with the session's LoRAs switched nothing"
    finally:
        hook.remove()
    assert np.array_equal(first, ordinary), "a live frame makes what the same job would"
    assert not np.array_equal(first, other[0]), "the other LoRA changes the picture (the test can fail)"
    assert (live.setups, live.encodes) == (1, 2)


def test_a_fast_live_decoder_decodes_the_frames_and_live_started_names_it(tmp_path: Path) -> None:
    """``--live-decoder tiny-random`` (a tiny random AutoencoderTiny): the session answers over a real
    daemon, says which decoder it uses, and its frames are the fast decoder's, not the VAE's."""
    from tests.daemon.conftest import start_daemon
    from underpaint.engines.diffusion import DiffusionEngine

    fast = DiffusionEngine(sources=["tiny-random"], device="cpu", live_decoders=["tiny-random"])
    full = DiffusionEngine(sources=["tiny-random"], device="cpu")
    assert (fast.live_decoder("tiny-random"), full.live_decoder("tiny-random")) == ("tiny-random", "vae")
    job = GenerationInput(Mode.IMG2IMG, "tiny-random", "a red fox", "", 3, 2, 7.5, 0.5, 64, 64, None, None)
    image = np.random.default_rng(3).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    by_fast = fast.open_live(job).frame(image, threading.Event())
    by_full = full.open_live(job).frame(image, threading.Event())
    assert by_fast.shape == by_full.shape == (64, 64, 3)
    assert not np.array_equal(by_fast, by_full), "the fast decoder's picture is its own"
    (ordinary,) = list(fast.generate(replace(job, image=image), 1, no_progress, threading.Event()))
    assert np.array_equal(ordinary, by_full), "ordinary jobs keep the model's VAE"

    daemon = start_daemon(tmp_path / "daemon", engines=[fast], default_model="tiny-random")
    try:
        started = _first_live_frame(daemon.url, {"strength": 0.5, "steps": 2, "seed": 3})
        assert (started["type"], started["decoder"]) == ("live_started", "tiny-random"), started
    finally:
        daemon.thread.stop()


def test_a_live_decoder_source_is_checked_at_start() -> None:
    from underpaint.engines.diffusion.live_decoder import parse_live_decoder

    assert parse_live_decoder("madebyollin/taesdxl").family == "sdxl"
    assert parse_live_decoder("madebyollin/taesd").family == "sd1"
    assert parse_live_decoder("/models/my-decoder#family=sd2") == parse_live_decoder("/models/my-decoder#family=sd2")
    assert parse_live_decoder("/models/my-decoder#family=sd2").location == "/models/my-decoder"
    for bad, says in [("taesd.pt", "pickle"), ("taesd.safetensors", "folder"), ("#family=sd1", "SOURCE")]:
        with pytest.raises(ValueError, match=says):
            parse_live_decoder(bad)


def test_serve_refuses_a_pickled_live_decoder_in_one_line(tmp_path: Path) -> None:
    from tests.daemon.test_startup import one_line, serve

    line = one_line(serve(tmp_path, "--port", "0", "--engine", "diffusion", "--live-decoder", "taesd.pt"))
    assert "taesd.pt" in line and "pickle" in line, line
