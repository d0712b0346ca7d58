"""LoRAs per job over a real daemon: found in the models folder with their trigger words, named by a
job or with `<lora:name:weight>`, switched between jobs without reloading the base model; a pickle
is never opened."""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.daemon.conftest import Recorder, layer_array, start_daemon, submit_job
from tests.pickles import Payload
from underpaint.daemon.server import DaemonThread
from underpaint_protocol import pnginfo
from underpaint_protocol.client import DaemonError, UnderpaintClient
from underpaint_protocol.library import Library
from underpaint_protocol.messages import Limits


@dataclass
class Served:
    thread: DaemonThread
    marker: Path
    engine: Any


def save_tiny_lora(folder: Path, name: str, seed: int, metadata: dict[str, str]) -> None:
    """A random rank-4 LoRA for the built-in tiny-random model's UNet, saved as diffusers does, with metadata."""
    import tempfile

    import torch
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import load_file, save_file

    from underpaint.engines.diffusion import tiny

    pipe = tiny.build_sd15(tiny.write_tokenizer(Path(tempfile.mkdtemp()) / "tok"), in_channels=4, seed=0)
    torch.manual_seed(seed)
    config = LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"], init_lora_weights=False)
    pipe.unet.add_adapter(config)
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(pipe.unet))
    StableDiffusionPipeline.save_lora_weights(str(folder), unet_lora_layers=layers, weight_name=f"{name}.safetensors")
    path = folder / f"{name}.safetensors"
    save_file(load_file(str(path)), str(path), metadata={"format": "pt", **metadata})


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    import torch
    from safetensors.torch import save_file

    from underpaint.engines.classical import ClassicalEngine
    from underpaint.engines.diffusion import DiffusionEngine

    tmp = tmp_path_factory.mktemp("loras-daemon")
    models = tmp / "models" / "Lora"
    models.mkdir(parents=True)
    save_tiny_lora(models, "film", 42, {"modelspec.trigger_phrase": "filmic, grainy"})
    tags = {"set1": {"ink wash": 12, "monochrome": 30, "brush": 3}, "set2": {"ink wash": 25}}
    save_tiny_lora(models, "ink", 7, {"ss_tag_frequency": json.dumps(tags)})
    save_file({"weight": torch.zeros(2, 2)}, str(models / "not-a-lora.safetensors"))
    marker = tmp / "pickle-was-opened"
    (models / "evil.pt").write_bytes(pickle.dumps(Payload(marker)))
    engine = DiffusionEngine(sources=["tiny-random"], models_dirs=[tmp / "models"], device="cpu")
    running = start_daemon(tmp, limits=Limits(), engines=[ClassicalEngine(), engine], default_model="tiny-random")
    yield Served(running.thread, marker, engine)
    running.thread.stop()


@pytest.fixture
def client(served: Served) -> Iterator[tuple[UnderpaintClient, Recorder]]:
    recorder = Recorder()
    connected = UnderpaintClient(served.thread.url, client_name="pytest", on_event=recorder)
    connected.connect()
    yield connected, recorder
    connected.close()


def run(client: tuple[UnderpaintClient, Recorder], **extra: Any) -> Any:
    connected, events = client
    job = {"mode": "txt2img", "prompt": "a boat", "steps": 1, "seed": 5, "canvas": {"width": 64, "height": 64}}
    accepted = submit_job(connected, {**job, **extra}, None)
    outcome = events.wait_outcome(accepted["job_id"], timeout=300)
    assert outcome.type == "finished", outcome.message
    (result,) = events.of(accepted["job_id"], "result")
    return result


def test_loras_are_listed_with_trigger_words_and_a_pickle_is_refused_unopened(client, served: Served) -> None:
    loras = {item["name"]: item for item in Library(client[0]).loras().result(timeout=30)}
    assert set(loras) == {"evil", "film", "ink"}  # not-a-lora.safetensors has no LoRA tensors
    assert loras["film"]["triggers"] == ["filmic", "grainy"] and loras["film"]["refused"] is None
    assert loras["ink"]["triggers"][:2] == ["ink wash", "monochrome"]  # by frequency over both datasets
    assert "pickle" in loras["evil"]["refused"]
    assert not served.marker.exists()


@pytest.mark.timeout(900)  # six tiny diffusion jobs; minutes on a loaded 2-core machine
def test_a_job_names_loras_and_switching_never_reloads_the_model(client, served: Served) -> None:
    base = layer_array(run(client))
    loaded = served.engine.loaded
    film = run(client, loras=[{"name": "film", "weight": 1.0}])
    assert not np.array_equal(layer_array(film), base)
    assert film.message["params"]["loras"] == [{"name": "film", "weight": 1.0}]
    tagged = run(client, prompt="a boat, <lora:film:1>")  # A1111's syntax: the same job
    assert np.array_equal(layer_array(tagged), layer_array(film))
    assert tagged.message["params"]["prompt"] == "a boat"
    assert tagged.message["params"]["user_prompt"] == "a boat, <lora:film:1>"  # what the user typed
    ink = run(client, loras=[{"name": "ink", "weight": 0.8}])
    assert not np.array_equal(layer_array(ink), layer_array(film))
    assert np.array_equal(layer_array(run(client)), base)  # no LoRA: exactly the base model again
    assert np.array_equal(layer_array(run(client, loras=[{"name": "film"}])), layer_array(film))
    assert served.engine.loaded is loaded  # the base model was loaded once, LoRAs switched on it
    path = Path(film.message["output"])
    text = pnginfo.read_text(path.read_bytes()) if path.is_file() else None
    if text is not None:  # written in the background; checked when there
        assert "<lora:film:1>" in text["parameters"]


def error_of(connected: UnderpaintClient, **extra: Any) -> dict[str, Any]:
    job = {"mode": "txt2img", "prompt": "a boat", "canvas": {"width": 64, "height": 64}, **extra}
    with pytest.raises(DaemonError) as raised:
        connected.plan(job).result(timeout=30)
    return raised.value.message


def test_unknown_and_pickled_loras_are_refused_naming_the_field(client, served: Served) -> None:
    connected, _ = client
    error = error_of(connected, loras=[{"name": "film"}, {"name": "missing"}])
    assert (error["code"], error["field"]) == ("unknown_lora", "job.loras[1].name")
    assert "film" in error["message"]
    error = error_of(connected, prompt="x <lora:nope:0.5>")
    assert (error["code"], error["field"]) == ("unknown_lora", "job.prompt")
    error = error_of(connected, loras=[{"name": "evil"}])
    assert (error["code"], error["field"]) == ("unsafe_model_format", "job.loras[0].name")
    error = error_of(connected, loras=[{"name": "../film"}])
    assert (error["code"], error["field"]) == ("invalid_field", "job.loras.0.name")
    assert not served.marker.exists()
