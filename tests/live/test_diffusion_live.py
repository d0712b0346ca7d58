"""A live session on a diffusion model: set up once, the prompt encoded once, each frame the job it stands for."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

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
    import json

    from tests.daemon.conftest import greeted, recv_json, start_daemon
    from underpaint.engines.diffusion import DiffusionEngine, tiny
    from underpaint_protocol.frames import Attachment, encode_frame

    folder = tmp_path / "turbo"
    tiny.build_sd15(tiny.write_tokenizer(tmp_path / "tok"), seed=2).save_pretrained(str(folder))
    engine = DiffusionEngine(sources=[f"{folder}#few_step=turbo"], device="cpu")
    (model,) = [info.id for info in engine.models()]
    daemon = start_daemon(tmp_path / "daemon", engines=[engine], default_model=model)
    try:
        connection = greeted(daemon.url)
        live = {"steps": 30, "guidance": 7.0, "canvas": {"width": 64, "height": 64}}
        connection.send(json.dumps({"type": "live_start", "request_id": "t", "live": live}))
        started = recv_json(connection, timeout=60)
        assert (started["type"], started["steps"], started["guidance"]) == ("live_started", 4, 0.0), started
        attachment = Attachment("live-1", "rgba8", 64, 64)
        rect = {"x": 0, "y": 0, "width": 64, "height": 64}
        connection.send(json.dumps({"type": "live_frame", "seq": 1, "rect": rect, "image": attachment.as_dict()}))
        connection.send(b"".join(bytes(part) for part in encode_frame(attachment, bytes(64 * 64 * 4))))
        result = recv_json(connection, timeout=120)
        assert (result["type"], result["seq"]) == ("live_result", 1), result
        connection.close()
    finally:
        daemon.thread.stop()
