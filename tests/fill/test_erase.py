"""The learned fill engine (spandrel): safe loading, licences, filling, and a real daemon serving it.

The model is a LaMa with random weights built here and saved as safetensors: spandrel detects it like
a downloaded big-lama (same keys and shapes), so the whole path from file to layer is exercised.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.daemon.conftest import Recorder, layer_array, photo_like, submit_job
from tests.daemon.test_jobs import rect_mask
from tests.pickles import Payload
from underpaint.canvas import BlendSettings, Box, plan_job, prepare_job
from underpaint.canvas import fill as canvas_fill
from underpaint.daemon.config import DaemonConfig
from underpaint.daemon.server import Daemon, DaemonThread
from underpaint.engines import erase, weights
from underpaint.engines.registry import build_engines
from underpaint.errors import JobError
from underpaint.modes import Mode
from underpaint_protocol.client import UnderpaintClient

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lama_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from safetensors.torch import save_file
    from spandrel.architectures.LaMa import LaMa

    torch.manual_seed(0)
    model = LaMa(in_nc=4, out_nc=3)
    path = tmp_path_factory.mktemp("weights") / "random-lama.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def test_malicious_pickle_does_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    evil = tmp_path / "evil.pth"
    torch.save({"model.model.1.bn_l.running_mean": Payload(marker)}, evil)
    with pytest.raises(weights.UnsafeWeights):
        weights.load_state_dict(evil)
    assert not marker.exists()
    with pytest.raises(ValueError):
        erase.LearnedFillEngine([str(evil)], "cpu")
    assert not marker.exists()
    # The payload is live: unpickled the ordinary way it does write the marker (so the test can fail).
    torch.load(evil, weights_only=False)
    assert marker.exists()


def test_torchscript_and_unknown_files_are_refused(tmp_path: Path) -> None:
    for name in ("model.pt", "model.bin", "model.onnx"):
        path = tmp_path / name
        path.write_bytes(b"\0" * 16)
        with pytest.raises(weights.UnsafeWeights):
            weights.load_state_dict(path)


def test_plain_pth_state_dict_loads(tmp_path: Path, lama_file: Path) -> None:
    from safetensors.torch import load_file

    path = tmp_path / "lama.pth"
    torch.save({"state_dict": load_file(str(lama_file))}, path)
    engine = erase.LearnedFillEngine([str(path)], "cpu")
    assert engine.models()[0].family == "LaMa"


def test_research_only_architecture_needs_the_opt_in(lama_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(weights.LICENCES, "LaMa", "CC-BY-NC-4.0")  # as MAT is
    with pytest.raises(ValueError, match="allow_research"):
        erase.LearnedFillEngine([str(lama_file)], "cpu")
    engine = erase.LearnedFillEngine([f"{lama_file}#allow_research"], "cpu")
    assert "CC-BY-NC-4.0" in engine.models()[0].description


def test_fill_changes_only_the_hole(lama_file: Path) -> None:
    engine = erase.LearnedFillEngine([str(lama_file)], "cpu")
    image = photo_like(96, 80)[..., :3].copy()
    hole = np.zeros((80, 96), bool)
    hole[20:50, 30:70] = True
    out = engine.loaded["random-lama"].fill(image, hole)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert np.array_equal(out[~hole], image[~hole])
    assert not np.array_equal(out[hole], image[hole])


def test_learned_prefill(lama_file: Path) -> None:
    build_engines("classical", [f"erase:{lama_file}"], [], "cpu")  # sets the learned pre-fill
    try:
        canvas = photo_like(120, 90)
        plan = plan_job(Mode.INPAINT, 120, 90, Box(30, 20, 40, 30), None, 1.0, erase_resolution(), BlendSettings())
        upload = canvas[plan.upload.slices(plan.canvas)]
        settings = BlendSettings(prefill="learned")
        prepared = prepare_job(plan, upload, None, settings, seed=1)
        telea = prepare_job(plan, upload, None, BlendSettings(prefill="telea"), seed=1)
        assert not np.array_equal(prepared.image, telea.image)
        unknown = prepared.denoise_mask == 255
        assert np.array_equal(prepared.image[~unknown], telea.image[~unknown])
    finally:
        canvas_fill.use_learned_fill(None)
    with pytest.raises(JobError) as info:
        prepare_job(plan, upload, None, settings, seed=1)
    assert info.value.field == "settings.prefill"


def erase_resolution():
    from underpaint.canvas.plan import ModelResolution

    return ModelResolution(erase.PIXEL_BUDGET, multiple=8, min_side=64, upscale_small=False)


@pytest.fixture(scope="module")
def erase_daemon(tmp_path_factory: pytest.TempPathFactory, lama_file: Path) -> Iterator[DaemonThread]:
    tmp = tmp_path_factory.mktemp("erase-daemon")
    engines, default = build_engines("classical", [f"erase:{lama_file}"], [], "cpu")
    config = DaemonConfig(
        port=0, token_file=tmp / "token", outputs=tmp / "outputs", styles_file=None, history_file=tmp / "history.jsonl"
    )
    thread = DaemonThread(Daemon(config, engines, default)).start()
    yield thread
    thread.stop()
    canvas_fill.use_learned_fill(None)


def test_inpaint_and_outpaint_over_the_socket(erase_daemon: DaemonThread) -> None:
    recorder = Recorder()
    client = UnderpaintClient(erase_daemon.url, client_name="pytest", on_event=recorder)
    client.connect(timeout=10)
    try:
        models = {m["id"]: m for m in client.welcome["models"]}
        assert models["random-lama"]["engine"] == "erase"
        assert set(models["random-lama"]["modes"]) == {"inpaint", "outpaint"}
        assert client.welcome["default_model"] == "random-lama"
        canvas = photo_like(160, 120)
        job = {
            "mode": "inpaint",
            "model": "random-lama",
            "canvas": {"width": 160, "height": 120},
            "selection": {"x": 50, "y": 40, "width": 41, "height": 33},
        }
        accepted = submit_job(client, job, canvas, rect_mask(160, 120, 50, 40, 41, 33))
        outcome = recorder.wait_outcome(accepted["job_id"], timeout=120)
        assert outcome.type == "finished", outcome.message
        (result,) = recorder.of(accepted["job_id"], "result")
        layer = result.message["layer"]
        pixels = layer_array(result)
        inside = pixels[40 - layer["y"] : 73 - layer["y"], 50 - layer["x"] : 91 - layer["x"]]
        assert (inside[..., 3] == 255).all()
        assert not np.array_equal(inside[..., :3], canvas[40:73, 50:91, :3])  # the model filled it
        outpaint = {
            "mode": "outpaint",
            "model": "random-lama",
            "canvas": {"width": 160, "height": 120},
            "extend": {"left": 0, "top": 0, "right": 40, "bottom": 16},
        }
        accepted = submit_job(client, outpaint, canvas)
        outcome = recorder.wait_outcome(accepted["job_id"], timeout=120)
        assert outcome.type == "finished", outcome.message
        (result,) = recorder.of(accepted["job_id"], "result")
        assert result.message["canvas"]["width"] == 200 and result.message["canvas"]["height"] == 136
    finally:
        client.close()
