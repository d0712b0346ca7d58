"""The panel wording and units every host shares (underpaint_protocol.panel), and the controller's
panel state: the job Cancel means, what Generate will do, preview -> apply / discard, history."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

import pytest

from tests.protocol.fake_host import FakeCanvas
from tests.protocol.test_controller import WELCOME, ScriptedClient, planned, result_event, scripted
from underpaint_protocol.controller import Controller, HistoryItem, Job, Request
from underpaint_protocol.panel import (
    SEED_MAX,
    elapsed_text,
    ignored_fields,
    ignored_summary,
    model_label,
    parse_seed,
    steps_label,
    strength_fraction,
    strength_percent,
    thumbnail,
)
from underpaint_protocol.session import ImageData

CLASSICAL = {
    "id": "classical",
    "engine": "classical",
    "family": "classical",
    "modes": ["inpaint", "outpaint"],
    "description": "Content-aware fill from the surroundings (OpenCV); no weights, instant",
    "default_steps": 1,
}
DIFFUSION = {
    "id": "tiny-random",
    "engine": "diffusion",
    "modes": ["txt2img", "img2img", "inpaint"],
    "default_steps": 20,
}


def test_units_names_and_seeds() -> None:
    assert [strength_percent(v) for v in (0, 0.355, 1, 1.7)] == [0, 36, 100, 100]
    assert strength_fraction(45) == 0.45 and strength_fraction(250) == 1.0
    assert parse_seed(" Random ") is None and parse_seed("") is None
    assert parse_seed(str(SEED_MAX)) == 4294967295 and parse_seed("2147483648") == 2**31
    for bad in ("-1", str(SEED_MAX + 1), "1.5"):
        with pytest.raises(ValueError, match="between 0 and 4294967295"):
            parse_seed(bad)
    assert model_label(CLASSICAL) == "classical" and model_label(DIFFUSION) == "tiny-random (diffusion)"
    assert steps_label(None, DIFFUSION) == "model default (20)" and steps_label(8, DIFFUSION) == "8"
    assert [elapsed_text(s) for s in (7.9, 65, 3723)] == ["7 s", "1:05", "1:02:03"]


def test_the_classical_model_ignores_every_generative_field_and_says_why() -> None:
    ignored = ignored_fields(CLASSICAL)
    assert set(ignored) >= {"prompt", "strength", "steps", "guidance", "seed"}
    assert "Content-aware fill from the surroundings" in ignored["prompt"]
    assert ignored_fields(DIFFUSION) == {} and ignored_fields(None) == {}
    assert ignored_summary(CLASSICAL) == (
        "classical does not use prompt, strength, steps or seed: Content-aware fill from the surroundings (OpenCV); "
        "no weights, instant."
    )
    assert ignored_summary(DIFFUSION) == ""


def test_thumbnails_are_downscaled_client_side_keeping_the_format() -> None:
    pixels = bytes(range(256)) * (400 * 200 * 4 // 256)
    small = thumbnail(ImageData("bgra8", 400, 200, pixels), 96)
    assert (small.format, small.width, small.height, len(small.data)) == ("bgra8", 96, 48, 96 * 48 * 4)
    assert small.data[:4] == pixels[:4]
    tiny = ImageData("rgba8", 10, 10, bytes(400))
    assert thumbnail(tiny, 96) is tiny


def test_a_thumbnail_reads_every_kind_of_buffer_a_result_arrives_in() -> None:
    """bytes, bytearray, a flat memoryview (a frame's payload) and an image-shaped one (a numpy array's)."""
    import numpy as np

    array = np.arange(300 * 150 * 4, dtype=np.uint32).astype(np.uint8).reshape(150, 300, 4)
    expected = thumbnail(ImageData("rgba8", 300, 150, array.tobytes()), 96)
    for data in (bytearray(array.tobytes()), memoryview(array.tobytes()), memoryview(array)):
        assert thumbnail(ImageData("rgba8", 300, 150, data), 96) == expected


# ------------------------------------------------------------------------------------------ controller


def running_job(controller: Controller, client: ScriptedClient, index: int, job_id: str, **request: Any) -> Job:
    job = controller.generate(Request(**request))
    assert job is not None
    planned(client, index, 0, 0, 30, 30)
    client.submits[index][4].set_result({"type": "accepted", "job_id": job_id, "seed": 3_000_000_000 + index})
    return job


def test_cancel_current_targets_the_running_job_and_a_late_result_pastes_nothing() -> None:
    canvas = FakeCanvas.photo()
    canvas.select(10, 10, 10, 10)
    controller, client, _ = scripted(canvas)
    done = running_job(controller, client, 0, "j1")
    client.event(*result_event("j1", 0, 10, 10, 2, 2, 1))
    client.event({"type": "finished", "job_id": "j1", "results": 1})
    running = running_job(controller, client, 1, "j2")
    waiting = running_job(controller, client, 2, "j3")
    client.event({"type": "progress", "job_id": "j2", "step": 4, "total": 10})
    assert controller.current is running and controller.last_seed == 3_000_000_002 > 2**31
    assert controller.cancel_current() is running
    assert client.cancels == ["j2"] and not waiting.cancel_requested and done.state == "finished"
    client.event(*result_event("j2", 0, 10, 10, 2, 2, 5))  # arrives after the cancel
    client.event({"type": "finished", "job_id": "j2", "results": 1})
    assert running.state == "cancelled" and running.pasted == [] and len(canvas.layers) == 2
    assert controller.current is waiting, "the next Cancel goes to the job still waiting"


def test_progress_says_steps_image_k_of_n_elapsed_and_done() -> None:
    canvas = FakeCanvas.photo()
    canvas.select(10, 10, 10, 10)
    controller, client, _ = scripted(canvas)
    job = running_job(controller, client, 0, "j1", batch=3)
    client.event({"type": "started", "job_id": "j1"})
    client.event(*result_event("j1", 0, 10, 10, 2, 2, 1))
    client.event({"type": "progress", "job_id": "j1", "step": 2, "total": 8})
    assert controller.progress_text(job.started + 5) == "step 2 of 8, image 2 of 3, 5 s"
    for index in (1, 2):
        client.event(*result_event("j1", index, 10, 10, 2, 2, 1 + index))
    client.event({"type": "finished", "job_id": "j1", "results": 3})
    assert controller.progress_fraction == 1.0 and controller.progress_text().startswith("done in ")


def test_an_old_error_is_cleared_when_the_state_moves_on() -> None:
    canvas = FakeCanvas.photo()
    canvas.select(10, 10, 10, 10)
    controller, client, _ = scripted(canvas)
    running_job(controller, client, 0, "j1")
    client.event({"type": "failed", "job_id": "j1", "code": "engine_failed", "message": "boom"})
    assert controller.error
    controller.error = "stale"
    client.event({"type": "started", "job_id": "j1"})  # a finished job's events change nothing
    assert controller.error == "stale"
    running_job(controller, client, 1, "j2")
    client.event({"type": "started", "job_id": "j2"})
    assert controller.error == ""


def test_the_plan_says_what_generate_will_do_and_refuses_up_front() -> None:
    canvas = FakeCanvas.photo()
    controller, client, _ = scripted(canvas)
    refused = controller.plan(Request(model="classical"))
    assert (
        refused.refusal
        == "The classical model cannot paint a new image: select an area to fill, or pick a diffusion model."
    )
    assert controller.generate(Request(model="classical")) is None and client.plans == []
    assert controller.plan(Request(model="paced", strength=0.5)).sentence == "Generate will refine the whole image."
    assert controller.plan(Request(model="paced")).sentence == "Generate will paint a new image."
    canvas.select(10, 10, 10, 10)
    assert controller.plan(Request()).sentence == "Generate will inpaint the selection."
    expand = controller.plan(Request(extend=(64, 0, 0, 32), mode="outpaint"))
    assert expand.refusal is None and expand.mode == "outpaint"
    assert expand.sentence == (
        "Generate will expand by 64, 0, 0, 32 px (left, top, right, bottom); the selection is ignored "
        "(only the new border is filled)."
    )
    job = controller.generate(Request(extend=(64, 0, 0, 32), mode="outpaint"))
    assert job is not None and "selection" not in job.spec, "expand never re-fills the selection"
    assert controller.plan(Request(seed=2**32)).refusal == "Seed must be between 0 and 4294967295, or random."


def staged_controller() -> tuple[Controller, ScriptedClient, FakeCanvas, Job]:
    canvas = FakeCanvas.photo()
    canvas.select(10, 10, 10, 10)
    controller, client, _ = scripted(canvas)
    controller.land_directly = False
    job = running_job(controller, client, 0, "j1", batch=3, prompt="cup")
    for index in range(3):
        client.event(*result_event("j1", index, 10, 10, 2, 2, 100 + index))
    client.event({"type": "finished", "job_id": "j1", "results": 3})
    return controller, client, canvas, job


def test_results_go_to_one_preview_layer_stepped_through_then_applied_as_one_undo_step() -> None:
    controller, _, canvas, job = staged_controller()
    assert controller.staged is not None and canvas.undo_steps == [] and len(canvas.layers) == 2
    assert canvas.layers[0].name == "[preview 1/3] p [seed 100]"
    controller.preview_step(1)
    controller.preview_step(1)
    controller.preview_step(1)
    controller.preview_step(-1)
    assert len(canvas.layers) == 2 and canvas.layers[0].name == "[preview 3/3] p [seed 102]"
    controller.apply()
    assert canvas.undo_steps == ["apply"] and canvas.layers[0].name == "p [seed 102]"
    assert controller.staged is None and [layer.name for layer in job.pasted] == ["p [seed 102]"]


def test_apply_all_lands_the_whole_batch_as_one_group_like_a_direct_landing() -> None:
    controller, _, canvas, job = staged_controller()
    controller.preview_step(1)
    controller.apply_all()
    assert controller.staged is None and [layer.name for layer in canvas.layers] == [
        "cup [seeds 100-102]",
        "Background",
    ]
    group = canvas.layers[0]
    assert group.children is not None
    assert [(layer.name, layer.x, layer.y, layer.visible) for layer in group.children] == [
        ("p [seed 100]", 10, 10, True),
        ("p [seed 101]", 10, 10, False),
        ("p [seed 102]", 10, 10, False),
    ]
    # the preview's removal, then the batch as one paste: undoing once takes the whole group away
    assert canvas.undo_steps == ["discard", "paste"] and len(job.pasted) == 3
    controller.apply_all()  # nothing staged any more: nothing happens
    assert canvas.undo_steps == ["discard", "paste"]


def test_discard_removes_the_preview_as_one_undo_step() -> None:
    controller, _, canvas, job = staged_controller()
    controller.discard()
    assert canvas.undo_steps == ["discard"] and [layer.name for layer in canvas.layers] == ["Background"]
    assert controller.staged is None and job.note == "discarded" and job.pasted == []


class HistoryClient(ScriptedClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.listed: Future[list[dict[str, Any]]] = Future()
        self.fetches: list[str] = []

    def list_jobs(self) -> Future[list[dict[str, Any]]]:
        return self.listed

    def fetch(self, job_id: str, replay: bool = False) -> None:
        self.fetches.append(job_id)


def test_history_lists_fetches_thumbnails_reapplies_and_reuses() -> None:
    from tests.protocol.fake_host import FakeHost
    from underpaint_protocol.controller import WorkQueue

    host = FakeHost(FakeCanvas.photo())
    clients: list[HistoryClient] = []
    work = WorkQueue()
    controller = Controller(
        host,
        work.post,
        client_name="t",
        client_id="kept-id-0123456789",
        client_factory=lambda *a, **k: clients.append(HistoryClient(*a, **k)) or clients[-1],  # type: ignore[arg-type, func-returns-value]
    )
    controller.connect("ws://127.0.0.1:1")
    assert work.run_until(lambda: controller.connected, 5)
    controller.post = lambda fn: fn()
    client = clients[0]
    assert controller.client_id == WELCOME["client_id"], "the daemon's id is the one to remember"
    controller.refresh_history()
    client.listed.set_result(
        [
            {
                "job_id": "old",
                "state": "finished",
                "mode": "inpaint",
                "model": "m",
                "prompt": "a",
                "created": 1,
                "results": 1,
            },
            {
                "job_id": "new",
                "state": "finished",
                "mode": "inpaint",
                "model": "m",
                "prompt": "b",
                "created": 2,
                "results": 1,
            },
            {
                "job_id": "gone",
                "state": "cancelled",
                "mode": "inpaint",
                "model": "m",
                "prompt": "c",
                "created": 3,
                "results": 0,
            },
        ]
    )
    assert [item.job_id for item in controller.history] == ["new", "old"]
    item: HistoryItem = controller.history[0]
    controller.fetch_history(item)
    controller.fetch_history(item)
    assert client.fetches == ["new"]
    message, image = result_event("new", 0, 20, 30, 200, 100, 3_500_000_000)
    message["params"] = {
        "seed": 3_500_000_000,
        "prompt": "b",
        "model": "paced",
        "strength": 0.4,
        "steps": 12,
        "mode": "inpaint",
    }
    client.event(message, image)
    client.event({"type": "finished", "job_id": "new", "results": 1})
    assert not item.fetching and item.thumbnails[0].width == 96 and "seed 3500000000" in item.label()
    controller.reapply(item)
    canvas = host.active
    assert canvas is not None and canvas.layers[0].name == "p [seed 3500000000]" and canvas.undo_steps == ["paste"]
    assert (canvas.layers[0].x, canvas.layers[0].y) == (20, 30)
    reused = controller.reuse(item.results[0])
    assert (reused.seed, reused.prompt, reused.model, reused.strength, reused.steps) == (
        3_500_000_000,
        "b",
        "paced",
        0.4,
        12,
    )


def test_discarding_an_outpaint_preview_shrinks_the_canvas_back() -> None:
    canvas = FakeCanvas.photo()
    controller, client, _ = scripted(canvas)
    controller.land_directly = False
    job = running_job(controller, client, 0, "j1", extend=(8, 4, 0, 0), mode="outpaint")
    client.event(*result_event("j1", 0, -8, -4, 168, 124, 1, canvas=(-8, -4, 168, 124)))
    client.event({"type": "finished", "job_id": "j1", "results": 1})
    assert canvas.size() == (168, 124) and canvas.layers[1].x == 8 and canvas.layers[0].name.startswith("[preview")
    controller.discard()
    assert canvas.size() == (160, 120) and [(layer.name, layer.x, layer.y) for layer in canvas.layers] == [
        ("Background", 0, 0)
    ]
    assert canvas.undo_steps == ["grow", "discard", "grow"] and job.note == "discarded"
