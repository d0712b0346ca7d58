"""Segment jobs through a real daemon on a real socket: the tiny SAM, CLIPSeg and text + SAM models
and the classical refine end to end (placement, shapes, the mask encoding), the embedding cache (a
further click does not run the image encoder), every bad input as an error naming its field, cancel
and ownership through the job path, and the shared controller turning the answer into a selection."""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from transformers import SamModel

from tests.daemon.conftest import (
    Recorder,
    RunningDaemon,
    client_maker,
    layer_array,
    photo_like,
    start_daemon,
    submit_job,
    wait_until,
)
from tests.daemon.engines import PACED_MODEL, PacedEngine
from tests.pickles import Payload
from tests.protocol.fake_host import FakeCanvas, FakeHost
from tests.segment.scenes import composite, iou
from underpaint.engines.classical import ClassicalEngine
from underpaint.engines.segment.classical import RefineEngine
from underpaint.engines.segment.learned import LearnedSegmentEngine
from underpaint_protocol.client import DaemonError, UnderpaintClient
from underpaint_protocol.controller import Controller, WorkQueue
from underpaint_protocol.jobs import Bounds
from underpaint_protocol.segment import SegmentRequest

SAM, SAM2, CLIPSEG = "tiny-random-sam", "tiny-random-sam2", "tiny-random-clipseg"
PAIR = "tiny-random-clipseg+tiny-random-sam"
MakeClient = Callable[..., tuple[UnderpaintClient, Recorder]]


@pytest.fixture(scope="module")
def segment_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDaemon]:
    paced = PacedEngine(step_seconds=0.2, steps=10)
    engines = [ClassicalEngine(), RefineEngine(), LearnedSegmentEngine([SAM, CLIPSEG, PAIR, SAM2]), paced]
    running = start_daemon(tmp_path_factory.mktemp("segment"), engines=engines, paced=paced)
    yield running
    running.thread.stop()


@pytest.fixture
def make_client(segment_daemon: RunningDaemon) -> Iterator[MakeClient]:
    yield from client_maker(segment_daemon.url)


def learned(daemon: RunningDaemon) -> LearnedSegmentEngine:
    return next(e for e in daemon.thread.daemon.engines if isinstance(e, LearnedSegmentEngine))


def segment_job(canvas: np.ndarray, model: str | None = None, **segment: Any) -> dict[str, Any]:
    job: dict[str, Any] = {"mode": "segment", "canvas": {"width": canvas.shape[1], "height": canvas.shape[0]}}
    if model:
        job["model"] = model
    job["segment"] = segment
    return job


def run(client: UnderpaintClient, recorder: Recorder, job: dict[str, Any], canvas: np.ndarray, **kw: Any) -> Any:
    accepted = submit_job(client, job, canvas, **kw)
    outcome = recorder.wait_outcome(accepted["job_id"], timeout=120)
    assert outcome.type == "finished", outcome.message
    (result,) = recorder.of(accepted["job_id"], "result")
    return result


def test_welcome_lists_segment_models(make_client: MakeClient) -> None:
    client, _ = make_client()
    models = {m["id"]: m for m in client.welcome["models"]}
    assert models["refine"]["segment_inputs"] == ["box", "points", "mask"]
    assert models[SAM]["segment_inputs"] == ["box", "points"]
    assert models[CLIPSEG]["segment_inputs"] == ["text"]
    assert models[PAIR]["segment_inputs"] == ["text", "box", "points"]
    assert models[SAM2]["family"] == "sam2" and models[SAM2]["segment_inputs"] == ["box", "points"]
    assert "segment_inputs" not in models["classical"] or models["classical"]["segment_inputs"] is None
    assert "segment" in client.welcome["modes"]


def test_sam_clicks_reuse_the_image_embedding(
    segment_daemon: RunningDaemon, make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    original = SamModel.get_image_embeddings

    def counted(self: SamModel, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SamModel, "get_image_embeddings", counted)
    client, recorder = make_client()
    canvas = photo_like(320, 240, seed=5)
    first = run(client, recorder, segment_job(canvas, SAM, points=[{"x": 100, "y": 90}]), canvas)
    layer = first.message["layer"]
    assert (layer["x"], layer["y"], layer["width"], layer["height"]) == (0, 0, 320, 240)  # points: whole image
    pixels = layer_array(first)
    assert pixels.shape == (240, 320, 4) and (pixels[..., :3] == 255).all()  # white, the mask in alpha
    assert first.message["params"]["engine_params"]["embedding"] == "computed"
    assert first.message["params"]["segment"]["points"] == [{"x": 100, "y": 90}]
    assert len(calls) == 1
    second = run(
        client,
        recorder,
        segment_job(canvas, SAM, points=[{"x": 100, "y": 90}, {"x": 200, "y": 60}], negative_points=[{"x": 5, "y": 5}]),
        canvas,
    )
    assert second.message["params"]["engine_params"]["embedding"] == "cached"
    assert len(calls) == 1, "the second click on the same picture ran the image encoder again"
    other = photo_like(320, 240, seed=6)
    third = run(client, recorder, segment_job(other, SAM, points=[{"x": 100, "y": 90}]), other)
    assert third.message["params"]["engine_params"]["embedding"] == "computed"
    assert len(calls) == 2


def test_sam2_clicks_and_box(segment_daemon: RunningDaemon, make_client: MakeClient) -> None:
    client, recorder = make_client()
    canvas = photo_like(300, 200, seed=9)
    engine = learned(segment_daemon)
    runs = engine.encoder_runs
    click = run(client, recorder, segment_job(canvas, SAM2, points=[{"x": 30, "y": 40}]), canvas)
    assert layer_array(click).shape == (200, 300, 4)
    assert engine.encoder_runs == runs + 1
    again = run(client, recorder, segment_job(canvas, SAM2, points=[{"x": 30, "y": 40}, {"x": 200, "y": 150}]), canvas)
    assert again.message["params"]["engine_params"]["embedding"] == "cached" and engine.encoder_runs == runs + 1
    box = run(client, recorder, segment_job(canvas, SAM2, box={"x": 100, "y": 50, "width": 60, "height": 40}), canvas)
    assert (box.message["layer"]["width"], box.message["layer"]["height"]) == (92, 72)  # at least 16 px context


def test_sam_box_region_and_placement(make_client: MakeClient) -> None:
    client, recorder = make_client()
    canvas = photo_like(400, 300, seed=1)
    box = {"x": 150, "y": 100, "width": 80, "height": 60}
    result = run(client, recorder, segment_job(canvas, SAM, box=box, soften=0), canvas)
    layer = result.message["layer"]
    # the box plus a quarter of its longer side (20 px) each way
    assert (layer["x"], layer["y"], layer["width"], layer["height"]) == (130, 80, 120, 100)
    alpha = layer_array(result)[..., 3]
    assert set(np.unique(alpha)) <= {0, 255}  # soften 0: hard edge


def test_text_models(make_client: MakeClient) -> None:
    client, recorder = make_client(result_format="bgra8")
    canvas = photo_like(256, 192, seed=2)
    words = run(client, recorder, segment_job(canvas, CLIPSEG, text="the cat", threshold=0.0), canvas)
    assert (words.message["layer"]["width"], words.message["layer"]["height"]) == (256, 192)
    assert words.image is not None and words.image.format == "bgra8"
    assert (layer_array(words)[..., 3] == 255).all()  # threshold 0: everything
    pair = run(client, recorder, segment_job(canvas, PAIR, text="the cat", threshold=0.0), canvas)
    assert layer_array(pair).shape == (192, 256, 4)
    assert pair.message["params"]["model"] == PAIR


def test_default_model_follows_the_inputs(make_client: MakeClient) -> None:
    client, recorder = make_client()
    canvas = photo_like(200, 150, seed=3)
    by_words = run(client, recorder, segment_job(canvas, text="a dog", threshold=0.0), canvas)
    assert by_words.message["params"]["model"] == CLIPSEG
    by_click = run(client, recorder, segment_job(canvas, points=[{"x": 20, "y": 30}]), canvas)
    assert by_click.message["params"]["model"] == SAM
    mask = np.zeros((150, 200), np.uint8)
    mask[40:90, 60:120] = 255
    job = segment_job(canvas)
    job["selection"] = {"x": 60, "y": 40, "width": 60, "height": 50}
    rough = run(client, recorder, job, canvas, mask=mask)
    assert rough.message["params"]["model"] == "refine"


@pytest.mark.parametrize(
    ("job", "code", "field"),
    [
        ({"model": "refine", "segment": {"box": {"x": 5, "y": 5, "width": 0, "height": 9}}}, "empty_selection",
         "job.segment.box"),
        ({"model": SAM, "segment": {"points": [{"x": 5, "y": 5}, {"x": 500, "y": 5}]}}, "invalid_value",
         "job.segment.points.1"),
        ({"model": SAM, "segment": {"points": [{"x": 5, "y": 5}], "negative_points": [{"x": -1, "y": 5}]}},
         "invalid_value", "job.segment.negative_points.0"),
        ({"model": CLIPSEG, "segment": {"text": "   "}}, "invalid_value", "job.segment.text"),
        ({"model": SAM, "segment": {"text": "a cat"}}, "invalid_value", "job.segment.text"),
        ({"model": "refine", "segment": {"text": "a cat"}}, "invalid_value", "job.segment.text"),
        ({"model": "refine", "segment": {}}, "invalid_value", "job.segment"),
        ({"model": "classical", "segment": {"points": [{"x": 1, "y": 1}]}}, "unsupported_mode", "job.model"),
        ({"model": SAM}, "invalid_field", "job.segment"),
        ({"mode": "inpaint", "selection": {"x": 1, "y": 1, "width": 5, "height": 5},
          "segment": {"points": [{"x": 1, "y": 1}]}}, "invalid_field", "job.segment"),
        ({"segment": {"threshold": 2}}, "invalid_field", "job.segment.threshold"),
    ],
)  # fmt: skip
def test_bad_input_names_the_field(make_client: MakeClient, job: dict[str, Any], code: str, field: str) -> None:
    client, recorder = make_client()
    spec = {"mode": "segment", "canvas": {"width": 300, "height": 200}, **job}
    with pytest.raises(DaemonError) as refused:
        client.plan(spec).result(timeout=10)
    assert (refused.value.code, refused.value.field) == (code, field), refused.value
    canvas = photo_like(300, 200)  # the daemon keeps serving this client
    run(client, recorder, segment_job(canvas, "refine", box={"x": 50, "y": 50, "width": 100, "height": 80}), canvas)


def test_cancel_ownership_list_and_fetch(segment_daemon: RunningDaemon, make_client: MakeClient) -> None:
    owner, recorder = make_client()
    stranger, stranger_events = make_client()
    canvas = photo_like(200, 160, seed=4)
    busy = submit_job(owner, {"mode": "img2img", "model": PACED_MODEL, "canvas": {"width": 64, "height": 64}},
                      photo_like(64, 64))  # fmt: skip
    waiting = submit_job(owner, segment_job(canvas, SAM, points=[{"x": 10, "y": 10}]), canvas)
    stranger.cancel(waiting["job_id"])
    stranger_events.wait_for(lambda: any(e.type == "error" for e in stranger_events.events))
    assert next(e for e in stranger_events.events if e.type == "error").message["code"] == "not_owner"
    owner.cancel(waiting["job_id"])
    assert recorder.wait_outcome(waiting["job_id"]).type == "cancelled"
    owner.cancel(busy["job_id"])
    recorder.wait_outcome(busy["job_id"])
    done = submit_job(owner, segment_job(canvas, "refine", box={"x": 40, "y": 40, "width": 90, "height": 70}), canvas)
    assert recorder.wait_outcome(done["job_id"], timeout=60).type == "finished"
    listed = {j["job_id"]: j for j in owner.list_jobs().result(timeout=10)}
    assert listed[done["job_id"]]["mode"] == "segment" and listed[waiting["job_id"]]["state"] == "cancelled"
    assert done["job_id"] not in [j["job_id"] for j in stranger.list_jobs().result(timeout=10)]
    stranger.fetch(done["job_id"])
    stranger_events.wait_for(lambda: sum(e.type == "error" for e in stranger_events.events) == 2)
    assert [e.message["code"] for e in stranger_events.events if e.type == "error"] == ["not_owner"] * 2
    owner.fetch(done["job_id"], replay=True)
    recorder.wait_for(lambda: len(recorder.of(done["job_id"], "result")) == 2)
    first, again = recorder.of(done["job_id"], "result")
    assert np.array_equal(layer_array(again), layer_array(first))


def test_the_controller_turns_the_answer_into_the_selection(segment_daemon: RunningDaemon) -> None:
    scene = composite("astronaut.jpg", 1)
    height, width = scene.truth.shape
    canvas = FakeCanvas(width, height, np.dstack([scene.rgb, np.full((height, width), 255, np.uint8)]))
    host, work = FakeHost(canvas), WorkQueue()
    controller = Controller(host, work.post, client_name="pytest")
    controller.connect(segment_daemon.url, segment_daemon.token)
    try:
        work.run_until(lambda: controller.connected, 20)
        x, y, w, h = scene.box
        job = controller.segment(SegmentRequest(box=Bounds(x, y, w, h), model="refine"))
        assert job is not None, controller.error
        work.run_until(lambda: job.settled, 120)
        assert job.state == "finished" and not controller.error, controller.error
        assert canvas.selections[0].combine == "replace" and canvas.undo_steps == ["select"]
        assert canvas.mask is not None and iou(canvas.mask, scene.truth) > 0.9
        assert [r for r, _ in canvas.reads] == ["image"]  # no rough selection was read
        # subtract what a box over the left half selects: the host combines, the right part stays
        before = canvas.mask.copy()
        left = SegmentRequest(box=Bounds(x, y, w // 2, h), model="refine", combine="subtract")
        job = controller.segment(left)
        assert job is not None
        work.run_until(lambda: job.settled, 120)
        removed = canvas.selections[-1]
        assert removed.combine == "subtract" and (removed.x, removed.width) <= (x, w)
        assert canvas.mask.sum() < before.sum() and canvas.mask[:, x + w // 2 :].sum() == before[:, x + w // 2 :].sum()
        # refine the current selection: it is uploaded as the mask
        job = controller.segment(SegmentRequest(refine_selection=True, model="refine", combine="add"))
        assert job is not None
        work.run_until(lambda: job.settled, 120)
        assert canvas.reads[-1][0] == "mask" and job.state == "finished"
        # refused before anything is sent
        assert controller.segment(SegmentRequest(text="a cat", model="refine")) is None
        assert "words" in controller.error
        assert controller.segment(SegmentRequest()) is None
    finally:
        controller.close()


@pytest.mark.parametrize("with_other_safetensors", [False, True])
def test_pickle_checkpoints_are_refused(tmp_path: Path, make_client: MakeClient, with_other_safetensors: bool) -> None:
    folder = tmp_path / "evil-sam"
    folder.mkdir()
    marker = tmp_path / "pwned"
    (folder / "config.json").write_text('{"model_type": "sam"}')
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(Payload(marker)))
    if with_other_safetensors:  # the pre-check passes; transformers itself must not read the pickle
        from safetensors.numpy import save_file

        save_file({"x": np.zeros(1, np.float32)}, str(folder / "unrelated.safetensors"))
    running = start_daemon(
        tmp_path, engines=[RefineEngine(), LearnedSegmentEngine([str(folder)])], default_model="refine"
    )
    try:
        for client, recorder in [next(iter([_connect(running.url)]))]:
            canvas = photo_like(64, 64)
            accepted = submit_job(client, segment_job(canvas, str(folder), points=[{"x": 5, "y": 5}]), canvas)
            failed = recorder.wait_outcome(accepted["job_id"], timeout=60)
            client.close()
            assert failed.type == "failed"
            assert failed.message["code"] in ("unsafe_model_format", "model_load_failed"), failed.message
            if not with_other_safetensors:
                assert failed.message["code"] == "unsafe_model_format"
    finally:
        running.thread.stop()
    assert not marker.exists(), "a pickle was unpickled"


def _connect(url: str) -> tuple[UnderpaintClient, Recorder]:
    recorder = Recorder()
    client = UnderpaintClient(url, client_name="pytest", on_event=recorder)
    client.connect(timeout=10)
    wait_until(lambda: client.welcome is not None)
    return client, recorder
