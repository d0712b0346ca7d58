"""Upscale, refine-upscale and restore with `--workers ray`: the daemon runs the tiled pass, each tile's
model pass (and the refine's diffusion, the restoration) runs on a Ray Serve replica.

A real local Ray cluster with two logical GPUs and two replicas, built like `underpaint serve --workers
ray --model tiny-random --model upscale:... --model restore:...#allow_research`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.daemon.conftest import client_maker, layer_array, photo_like, submit_job
from tests.scaleout.conftest import RayDaemon, wait_workers
from tests.upscale import models
from tests.upscale.jobs import (
    REGION_LAYER,
    REGION_UPSCALE,
    alpha_on_canvas,
    model_region_upscale,
    refine_upscale_job,
    region_picture,
    restore_job,
    tiles_in_order,
)
from tests.upscale.test_tiles import upscale
from underpaint.daemon.config import DaemonConfig
from underpaint.daemon.server import Daemon, DaemonThread
from underpaint.engines.upscale import SpandrelUpscaler
from underpaint.scaleout.backend import RayOptions, RayWorkers, ScaleoutError
from underpaint.scaleout.replica import EngineSettings

pytestmark = [pytest.mark.scaleout, pytest.mark.slow]


@pytest.fixture(scope="module")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("ray-upscale-models")
    return {"compact": models.compact_x2(folder), "restoreformer": models.restoreformer(folder)}


@pytest.fixture(scope="module")
def upscale_daemon(
    ray_cluster: None, tmp_path_factory: pytest.TempPathFactory, model_files: dict[str, Path]
) -> Iterator[RayDaemon]:
    tmp = tmp_path_factory.mktemp("ray-upscale-daemon")
    sources = (
        "tiny-random",
        f"upscale:{model_files['compact']}",
        f"restore:{model_files['restoreformer']}#allow_research",
    )
    settings = EngineSettings(engine="classical", models=sources, device="cpu", max_models=3, torch_threads=1)
    workers = RayWorkers(settings, RayOptions(cpus_per_replica=0.5, app="underpaint-upscale")).start()
    config = DaemonConfig(port=0, token_file=tmp / "token", outputs=tmp / "outputs")
    thread = DaemonThread(Daemon(config, workers.engines, workers.default_model, workers=workers)).start()
    yield RayDaemon(thread, workers, tmp / "outputs")
    thread.stop()
    workers.close()


@pytest.fixture
def make_client(upscale_daemon: RayDaemon):
    yield from client_maker(upscale_daemon.url)


def test_an_upscale_runs_its_model_passes_on_a_replica(make_client, upscale_daemon, model_files) -> None:
    client, events = make_client()
    models_by_id = {m["id"]: m for m in client.welcome["models"]}
    assert models_by_id["tiny-compact-x2"]["modes"] == ["upscale"]
    assert models_by_id["tiny-restoreformer"]["modes"] == ["restore"]
    picture = region_picture()
    accepted = submit_job(client, REGION_UPSCALE, picture)
    outcome = events.wait_outcome(accepted["job_id"], 300)
    assert outcome.type == "finished", outcome.message
    results, joined = tiles_in_order(events, accepted["job_id"])
    assert results[0].message["upscale"]["layer"] == REGION_LAYER
    progress = [p.message["step"] for p in events.of(accepted["job_id"], "progress")]
    assert progress == list(range(1, len(progress) + 1)) and len(progress) >= 2  # one step per tile
    expected = model_region_upscale(picture, model_files["compact"])
    difference = np.abs(joined.astype(int) - expected.astype(int)).max()
    assert difference <= 1, f"the replicas' passes differ from the model run here by {difference}"
    # the model ran on a replica: one of them reports it warm (the status follows within a heartbeat)
    wait_workers(upscale_daemon.url, lambda ws: any("tiny-compact-x2" in w["models"] for w in ws))


def test_tiles_that_cross_rays_object_store_are_blended_too(make_client, model_files) -> None:
    """A tile's pass of hundreds of KB comes back as a read-only view of Ray's object store; the
    tiled pass blends into it in place."""
    client, events = make_client()
    picture = photo_like(256, 192, seed=2)
    job = {
        "mode": "upscale",
        "model": "tiny-compact-x2",
        "canvas": {"width": 256, "height": 192},
        "upscale": {"factor": 2.0, "tile": 128},
    }
    accepted = submit_job(client, job, picture)
    outcome = events.wait_outcome(accepted["job_id"], 300)
    assert outcome.type == "finished", outcome.message
    _, joined = tiles_in_order(events, accepted["job_id"])
    expected, _ = upscale(picture, SpandrelUpscaler(str(model_files["compact"]), "cpu"), 2.0, tile=128)
    assert np.abs(joined.astype(int) - expected.astype(int)).max() <= 1


def test_a_classical_upscale_needs_no_replica(make_client) -> None:
    client, events = make_client()
    job = {"mode": "upscale", "canvas": {"width": 90, "height": 60}, "upscale": {"factor": 2.0}}
    job["model"] = "classical-upscale"
    accepted = submit_job(client, job, photo_like(90, 60, seed=1))
    assert events.wait_outcome(accepted["job_id"], 60).type == "finished"
    (result,) = events.of(accepted["job_id"], "result")
    assert layer_array(result).shape == (120, 180, 4)


def test_refine_upscale_runs_the_upscaler_and_the_diffusion_tiles_on_replicas(make_client) -> None:
    client, events = make_client()
    job, picture = refine_upscale_job("tiny-compact-x2")
    accepted = submit_job(client, job, picture)
    outcome = events.wait_outcome(accepted["job_id"], 300)
    assert outcome.type == "finished", outcome.message
    (result,) = events.of(accepted["job_id"], "result")
    assert result.message["upscale"]["layer"] == {"x": 0, "y": 0, "width": 192, "height": 128}
    assert result.message["params"]["upscale"]["model"] == "tiny-compact-x2"
    assert layer_array(result).shape == (128, 192, 4)
    steps = [p.message for p in events.of(accepted["job_id"], "progress")]
    assert steps[-1]["step"] == steps[-1]["total"] > 2


def test_restore_runs_on_a_replica_and_changes_only_the_selection(make_client) -> None:
    client, events = make_client()
    job, picture, mask = restore_job("tiny-restoreformer")
    accepted = submit_job(client, job, picture, mask)
    outcome = events.wait_outcome(accepted["job_id"], 300)
    assert outcome.type == "finished", outcome.message
    (result,) = events.of(accepted["job_id"], "result")
    alpha = alpha_on_canvas(result, 200, 160)
    assert alpha[60:100, 80:120].min() == 255 and alpha[:10].max() == 0


def test_a_machine_lacking_an_upscaler_file_is_named(ray_cluster: None, tmp_path: Path) -> None:
    settings = EngineSettings(models=(f"upscale:{tmp_path / 'gone.safetensors'}",), device="cpu")
    with pytest.raises(ScaleoutError, match=r"gone\.safetensors"):
        RayWorkers(settings, RayOptions(cpus_per_replica=0.5, app="underpaint-lacking")).start()
