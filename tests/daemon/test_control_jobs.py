"""Control layers and references through a real daemon on a real socket: tiny random ControlNets and an
IP-Adapter loaded from disk, jobs in every mode, and every bad input answered with the field it names."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from tests.daemon.conftest import Recorder, client_maker, greeted, layer_array, photo_like, recv_json, start_daemon
from tests.daemon.test_jobs import rect_mask
from tests.guides import TinyGuides, build_guides
from underpaint.daemon.server import DaemonThread
from underpaint.engines.classical import ClassicalEngine
from underpaint_protocol.client import DaemonError, UnderpaintClient
from underpaint_protocol.messages import Limits
from underpaint_protocol.session import ImageData

W, H = 96, 80


@pytest.fixture(scope="module")
def guides(tmp_path_factory: pytest.TempPathFactory) -> TinyGuides:
    return build_guides(tmp_path_factory.mktemp("guides"))


@pytest.fixture(scope="module")
def control_daemon(tmp_path_factory: pytest.TempPathFactory, guides: TinyGuides) -> Iterator[DaemonThread]:
    from underpaint.engines.diffusion import DiffusionEngine

    diffusion = DiffusionEngine(
        sources=["tiny-random"],
        device="cpu",
        previews="none",
        controls=[f"canny={guides.canny_folder}", f"scribble={guides.scribble_file}", "depth=tiny-random"],
        adapters=[str(guides.adapter_sd15)],
        depth_model=str(guides.depth_folder),
    )
    tmp = tmp_path_factory.mktemp("control-daemon")
    running = start_daemon(
        tmp, limits=Limits(max_controls=2), engines=[ClassicalEngine(), diffusion], default_model="tiny-random"
    )
    yield running.thread
    running.thread.stop()


@pytest.fixture
def make_client(control_daemon: DaemonThread) -> Iterator[Callable[..., tuple[UnderpaintClient, Recorder]]]:
    yield from client_maker(control_daemon.url)


def region_of(canvas: np.ndarray, rect: dict[str, int]) -> np.ndarray:
    return np.ascontiguousarray(canvas[rect["y"] : rect["y"] + rect["height"], rect["x"] : rect["x"] + rect["width"]])


def raw(pixels: np.ndarray) -> ImageData:
    return ImageData("rgba8", pixels.shape[1], pixels.shape[0], pixels.tobytes())


def square_layer(width: int = W, height: int = H, left_half: bool = False) -> np.ndarray:
    """A control layer the size of the canvas: white shapes on transparent."""
    layer = np.zeros((height, width, 4), np.uint8)
    if left_half:
        layer[:, : width // 2] = 255
    else:
        layer[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4] = 255
    return layer


def run_job(
    client: UnderpaintClient,
    events: Recorder,
    job: dict[str, Any],
    canvas: np.ndarray | None,
    mask: np.ndarray | None = None,
    control_layers: list[np.ndarray] = (),  # type: ignore[assignment]
    references: list[np.ndarray] = (),  # type: ignore[assignment]
) -> np.ndarray:
    """Plan, read the image and every control layer over the planned regions, submit; the result layer."""
    planned = client.plan(job).result(timeout=10)
    upload = planned["upload"]
    image = mask_data = None
    if upload["width"] and canvas is not None:
        image = raw(region_of(canvas, upload))
        if mask is not None:
            part = region_of(mask, upload)
            mask_data = ImageData("gray8", part.shape[1], part.shape[0], part.tobytes())
    controls = [raw(region_of(layer, planned["control"])) for layer in control_layers]
    accepted = client.submit(
        job, upload if image else None, image, mask_data, controls=controls, references=[raw(r) for r in references]
    ).result(timeout=30)
    outcome = events.wait_outcome(accepted["job_id"], timeout=180)
    assert outcome.type == "finished", outcome.message
    (result,) = events.of(accepted["job_id"], "result")
    return layer_array(result)


JOBS = {
    "txt2img": ({"mode": "txt2img"}, False),
    "img2img": ({"mode": "img2img", "strength": 0.7}, False),
    "inpaint": ({"mode": "inpaint", "selection": {"x": 20, "y": 16, "width": 48, "height": 40}}, True),
    "outpaint": ({"mode": "outpaint", "extend": {"left": 0, "top": 0, "right": 32, "bottom": 0}}, False),
}


def test_welcome_announces_control_kinds_references_and_limits(make_client) -> None:
    client, _ = make_client()
    models = {m["id"]: m for m in client.welcome["models"]}
    assert set(models["tiny-random"]["control_kinds"]) == {"canny", "scribble", "depth"}
    assert set(models["tiny-random"]["reference_modes"]) == {"style", "composition", "both"}
    assert models["classical"]["control_kinds"] == [] and models["classical"]["reference_modes"] == []
    assert client.welcome["limits"]["max_controls"] == 2


@pytest.mark.parametrize("mode", list(JOBS))
def test_a_control_layer_steers_every_mode(make_client, mode: str) -> None:
    client, events = make_client()
    extra, needs_mask = JOBS[mode]
    job = {**extra, "prompt": "a house", "steps": 1, "seed": 42, "canvas": {"width": W, "height": H}}
    canvas = photo_like(W, H)
    mask = rect_mask(W, H, 20, 16, 48, 40) if needs_mask else None
    planned = client.plan({**job, "controls": [{"kind": "canny"}]}).result(timeout=10)
    work = planned["work"]
    expected = {
        "x": max(work["x"], 0),
        "y": max(work["y"], 0),
        "width": min(work["x"] + work["width"], W) - max(work["x"], 0),
        "height": min(work["y"] + work["height"], H) - max(work["y"], 0),
    }
    assert planned["control"] == expected  # the work area inside the canvas
    if mode != "txt2img":
        assert planned["control"] == planned["upload"]
    plain = run_job(client, events, job, canvas, mask)
    square = run_job(client, events, {**job, "controls": [{"kind": "canny"}]}, canvas, mask, [square_layer()])
    half = run_job(
        client, events, {**job, "controls": [{"kind": "canny"}]}, canvas, mask, [square_layer(left_half=True)]
    )
    assert plain.shape == square.shape
    assert not np.array_equal(plain, square), "the control layer did nothing"
    assert not np.array_equal(square, half), "two different control layers gave the same result"


def test_two_controls_preprocessing_and_a_reference_in_one_job(make_client) -> None:
    client, events = make_client()
    canvas = photo_like(W, H, seed=3)
    job = {
        "mode": "inpaint",
        "prompt": "a house",
        "steps": 2,
        "seed": 9,
        "canvas": {"width": W, "height": H},
        "selection": {"x": 20, "y": 16, "width": 48, "height": 40},
    }
    mask = rect_mask(W, H, 20, 16, 48, 40)
    plain = run_job(client, events, job, canvas, mask)
    guided = {
        **job,
        "controls": [
            {"kind": "scribble", "strength": 0.8, "start": 0.0, "end": 0.6},
            {"kind": "depth", "strength": 0.5, "preprocess": True},
        ],
        "references": [{"take": "style", "weight": 0.9}],
    }
    reference = photo_like(50, 70, seed=8)
    result = run_job(client, events, guided, canvas, mask, [square_layer(), canvas], [reference])
    assert result.shape == plain.shape and not np.array_equal(result, plain)
    only_reference = run_job(client, events, {**job, "references": [{"take": "both"}]}, canvas, mask, [], [reference])
    assert not np.array_equal(only_reference, plain)
    records = client.list_jobs().result(timeout=10)
    assert records  # the daemon kept serving this client


def submit_text(job: dict[str, Any], **extra: Any) -> str:
    return json.dumps({"type": "submit", "request_id": "s1", "job": job, **extra})


def attachment(index: int, width: int, height: int) -> dict[str, Any]:
    return {"id": f"c{index}", "format": "rgba8", "width": width, "height": height}


BASE = {"mode": "txt2img", "steps": 1, "canvas": {"width": 64, "height": 64}}


@pytest.mark.parametrize(
    ("job", "code", "field"),
    [
        ({**BASE, "controls": [{"kind": "pose"}]}, "unsupported_control", "job.controls.0.kind"),
        (
            {**BASE, "controls": [{"kind": "canny"}] * 3},
            "too_many_controls",
            "job.controls",
        ),
        (
            {**BASE, "references": [{"take": "style"}] * 2},
            "too_many_controls",
            "job.references",
        ),
        (
            {**BASE, "controls": [{"kind": "canny", "start": 0.7, "end": 0.2}]},
            "invalid_field",
            "job.controls.0.end",
        ),
        ({**BASE, "controls": [{"kind": "canny", "strength": 5}]}, "invalid_field", "job.controls.0.strength"),
        ({**BASE, "controls": [{"kind": "sketchy"}]}, "invalid_field", "job.controls.0.kind"),
        ({**BASE, "model": "classical", "mode": "inpaint", "references": [{}]}, "unsupported_control", None),
    ],
)
def test_bad_controls_are_refused_at_plan_naming_the_field(
    control_daemon: DaemonThread, make_client, job: dict, code: str, field: str | None
) -> None:
    client, _ = make_client()
    with pytest.raises(DaemonError) as refused:
        client.plan(job).result(timeout=10)
    assert refused.value.code == code, refused.value
    if field is not None:
        assert refused.value.field == field
    else:
        assert refused.value.field in ("job.references.0.take", "job.mode")


def test_a_control_of_the_wrong_size_or_count_is_refused_and_the_daemon_keeps_serving(
    control_daemon: DaemonThread, make_client
) -> None:
    connection = greeted(control_daemon.url)
    job = {**BASE, "controls": [{"kind": "canny"}]}
    wrong = np.zeros((32, 64, 4), np.uint8)
    from underpaint_protocol.frames import Attachment, encode_frame

    connection.send(submit_text(job, controls=[attachment(0, 64, 32)]))
    connection.send(encode_frame(Attachment("c0", "rgba8", 64, 32), wrong.tobytes()))
    error = recv_json(connection)
    assert (error["type"], error["code"], error["field"]) == ("error", "size_mismatch", "controls.0")
    connection.send(submit_text(job))  # one control item, no attachment
    error = recv_json(connection)
    assert (error["code"], error["field"]) == ("invalid_field", "controls")
    connection.send(submit_text(job, controls=[attachment(0, 64, 64)], image=attachment(0, 64, 64)))
    error = recv_json(connection)
    assert (error["code"], error["field"]) == ("invalid_field", "controls.0.id")
    connection.close()
    client, events = make_client()
    result = run_job(client, events, {**job, "steps": 1}, None, None, [np.zeros((64, 64, 4), np.uint8)])
    assert result.shape == (64, 64, 4)
