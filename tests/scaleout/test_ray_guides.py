"""LoRAs, control layers and reference images on `--workers ray`, over the real socket.

One Ray daemon (two replicas) and one local daemon (no Ray) serve the same models from the same
folders: a job through Ray must give exactly the local daemon's pixels, and its LoRA, control or
reference must change them. The tests share one deployment and run in file order.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.daemon.conftest import Recorder, client_maker, layer_array, photo_like, start_daemon, submit_job
from tests.daemon.test_control_jobs import raw, region_of, run_job, square_layer
from tests.daemon.test_loras import save_tiny_lora
from tests.guides import TinyGuides, build_guides
from tests.pickles import Payload
from tests.scaleout.conftest import RayDaemon, ray_daemon_with
from underpaint.daemon.server import DaemonThread
from underpaint.scaleout.replica import EngineSettings
from underpaint_protocol.client import DaemonError, UnderpaintClient
from underpaint_protocol.library import Library
from underpaint_protocol.messages import Limits

pytestmark = [pytest.mark.scaleout, pytest.mark.slow, pytest.mark.timeout(900)]

W, H = 96, 80
Clients = Callable[..., tuple[UnderpaintClient, Recorder]]


@pytest.fixture(scope="module")
def guides(tmp_path_factory: pytest.TempPathFactory) -> TinyGuides:
    return build_guides(tmp_path_factory.mktemp("guides"))


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory, guides: TinyGuides) -> EngineSettings:
    """tiny-random with a canny ControlNet, an IP-Adapter, a fast live decoder, and a models folder holding
    two LoRAs and a pickle."""
    models = tmp_path_factory.mktemp("models")
    loras = models / "Lora"
    loras.mkdir()
    save_tiny_lora(loras, "film", 42, {"modelspec.trigger_phrase": "filmic, grainy"})
    save_tiny_lora(loras, "ink", 7, {})
    (loras / "evil.pt").write_bytes(pickle.dumps(Payload(models / "pickle-was-opened")))
    return EngineSettings(
        engine="classical",
        models=("tiny-random",),
        models_dirs=(str(models),),
        device="cpu",
        max_models=1,
        torch_threads=1,
        controls=("canny=tiny-random",),
        adapters=(str(guides.adapter_sd15),),
        live_decoders=("tiny-random",),
    )


@pytest.fixture(scope="module")
def ray_guided(
    ray_cluster: None, settings: EngineSettings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RayDaemon]:
    with ray_daemon_with(tmp_path_factory.mktemp("ray-guided"), settings) as running:
        yield running


@pytest.fixture(scope="module")
def local(settings: EngineSettings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonThread]:
    """The same engines in a daemon without Ray: what every Ray job must equal (with the replicas' one
    torch thread: a CPU reduction split over more threads adds up in another order)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(settings.torch_threads or threads)
    engines, default_model = settings.build()
    running = start_daemon(
        tmp_path_factory.mktemp("local-guided"), limits=Limits(), engines=engines, default_model=default_model
    )
    yield running.thread
    running.thread.stop()
    torch.set_num_threads(threads)


@pytest.fixture
def on_ray(ray_guided: RayDaemon) -> Iterator[Clients]:
    yield from client_maker(ray_guided.url)


@pytest.fixture
def on_local(local: DaemonThread) -> Iterator[Clients]:
    yield from client_maker(local.url)


def txt2img(clients: Clients, **extra: Any) -> np.ndarray:
    client, events = clients()
    job = {"mode": "txt2img", "prompt": "a boat", "steps": 2, "seed": 5, "canvas": {"width": 64, "height": 64}}
    accepted = submit_job(client, {**job, **extra}, None)
    outcome = events.wait_outcome(accepted["job_id"], timeout=600)
    assert outcome.type == "finished", outcome.message
    (result,) = events.of(accepted["job_id"], "result")
    return layer_array(result)


def test_ray_offers_the_loras_control_kinds_and_references_of_the_models_folders(
    on_ray: Clients, on_local: Clients
) -> None:
    client, _ = on_ray()
    loras = Library(client).loras().result(timeout=30)
    local_client, _ = on_local()
    assert loras == Library(local_client).loras().result(timeout=30)
    by_name = {lora["name"]: lora for lora in loras}
    assert set(by_name) == {"evil", "film", "ink"}
    assert by_name["film"]["triggers"] == ["filmic", "grainy"] and by_name["film"]["refused"] is None
    assert "pickle" in by_name["evil"]["refused"]
    (model,) = [m for m in client.welcome["models"] if m["id"] == "tiny-random"]
    assert model["control_kinds"] == ["canny"]
    assert set(model["reference_modes"]) == {"style", "composition", "both"}


def test_a_lora_job_on_ray_equals_the_local_daemons(on_ray: Clients, on_local: Clients) -> None:
    plain = txt2img(on_ray)
    film = txt2img(on_ray, loras=[{"name": "film", "weight": 1.0}])
    assert not np.array_equal(film, plain), "the LoRA did nothing on the replica"
    assert np.array_equal(film, txt2img(on_local, loras=[{"name": "film", "weight": 1.0}]))
    assert np.array_equal(txt2img(on_ray, prompt="a boat, <lora:film:1>"), film)  # A1111's syntax
    ink = txt2img(on_ray, loras=[{"name": "ink", "weight": 0.8}])  # switched on the warm model
    assert not np.array_equal(ink, film)
    assert np.array_equal(txt2img(on_ray), plain), "no LoRA: exactly the base model again"


def test_a_lora_dropped_into_the_models_folder_is_offered_without_a_restart(
    on_ray: Clients, settings: EngineSettings
) -> None:
    client, _ = on_ray()
    save_tiny_lora(Path(settings.models_dirs[0]) / "Lora", "late", 3, {"modelspec.trigger_phrase": "late light"})
    deadline = time.monotonic() + 120
    while "late" not in {lora["name"] for lora in Library(client).loras().result(timeout=30)}:
        assert time.monotonic() < deadline, "the replicas never reported the new LoRA"
        time.sleep(0.5)
    assert txt2img(on_ray, loras=[{"name": "late", "weight": 1.0}]).shape == (64, 64, 4)


def test_unknown_and_pickled_loras_on_ray_are_refused_naming_the_field(
    on_ray: Clients, settings: EngineSettings
) -> None:
    client, _ = on_ray()
    job = {"mode": "txt2img", "prompt": "a boat", "canvas": {"width": 64, "height": 64}}
    for extra, code, field in [
        ({"loras": [{"name": "film"}, {"name": "missing"}]}, "unknown_lora", "job.loras[1].name"),
        ({"prompt": "x <lora:nope:0.5>"}, "unknown_lora", "job.prompt"),
        ({"loras": [{"name": "evil"}]}, "unsafe_model_format", "job.loras[0].name"),
    ]:
        with pytest.raises(DaemonError) as raised:
            client.plan({**job, **extra}).result(timeout=30)
        assert (raised.value.message["code"], raised.value.message["field"]) == (code, field)
    assert not (Path(settings.models_dirs[0]) / "pickle-was-opened").exists()
    assert txt2img(on_ray).shape == (64, 64, 4), "the daemon keeps serving"


def test_a_control_and_a_reference_on_ray_equal_the_local_daemons(on_ray: Clients, on_local: Clients) -> None:
    canvas = photo_like(W, H)
    job = {"mode": "txt2img", "prompt": "a house", "steps": 2, "seed": 42, "canvas": {"width": W, "height": H}}
    controlled = {**job, "controls": [{"kind": "canny"}]}
    referenced = {**job, "references": [{"take": "both", "weight": 0.9}]}
    reference = photo_like(50, 70, seed=8)
    ray_client, ray_events = on_ray()
    local_client, local_events = on_local()
    plain = run_job(ray_client, ray_events, job, canvas)
    control = run_job(ray_client, ray_events, controlled, canvas, None, [square_layer()])
    assert not np.array_equal(control, plain), "the control layer did nothing on the replica"
    assert np.array_equal(control, run_job(local_client, local_events, controlled, canvas, None, [square_layer()]))
    guided = run_job(ray_client, ray_events, referenced, canvas, None, [], [reference])
    assert not np.array_equal(guided, plain), "the reference did nothing on the replica"
    assert np.array_equal(guided, run_job(local_client, local_events, referenced, canvas, None, [], [reference]))


def live_painting(clients: Clients) -> tuple[list[int], np.ndarray]:
    """A live session of 12 frames (the region, then small dabs): the seqs answered, and the last picture."""
    client, events = clients()
    canvas = photo_like(W, H)
    started = client.live_start(
        {"model": "tiny-random", "prompt": "a house", "steps": 2, "seed": 4, "canvas": {"width": W, "height": H}}
    ).result(timeout=60)
    assert started["decoder"] == "tiny-random"  # the fast live decoder, passed through to the replicas
    region = started["region"]
    client.live_frame(1, region["x"], region["y"], raw(region_of(canvas, region)))
    for seq in range(2, 13):
        client.live_frame(seq, 20 + 2 * seq, 30, raw(np.full((8, 8, 4), 40 * (seq % 6), np.uint8)))
    answered = lambda: [e for e in events.events if e.type == "live_result"]  # noqa: E731
    events.wait_for(lambda: any(e.message["seq"] == 12 for e in answered()), timeout=600)
    stopped = client.live_stop().result(timeout=60)
    assert stopped["frames"] == 12 and stopped["results"] + stopped["dropped"] == 12
    return [e.message["seq"] for e in answered()], layer_array(answered()[-1])


def test_live_painting_on_ray_answers_in_order_as_the_local_daemon_does(on_ray: Clients, on_local: Clients) -> None:
    seqs, last = live_painting(on_ray)
    assert seqs == sorted(set(seqs)) and seqs[-1] == 12
    local_seqs, local_last = live_painting(on_local)
    assert local_seqs[-1] == 12
    assert np.array_equal(last, local_last), "the last frame's picture differs from the local daemon's"
