"""Krita's adapter against tests/krita/fake_krita.py: the glue (reading, pasting, undo, refusal of other
colour depths) and the docker model on the shared controller, driving a real in-process daemon. The
controller itself is tested once, in tests/protocol/test_controller.py."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from underpaint_krita.glue import KritaGlue, bgra_from
from underpaint_krita.model import DockerModel, Settings

from tests.daemon.engines import PACED_MODEL, PacedEngine
from tests.krita.fake_krita import FakeDocument, FakeKrita
from underpaint.daemon.config import DaemonConfig
from underpaint.daemon.server import Daemon, DaemonThread
from underpaint.engines.classical import ClassicalEngine
from underpaint_protocol.controller import NewLayer, UserError
from underpaint_protocol.jobs import Bounds
from underpaint_protocol.session import ImageData

RED = bytes([0, 0, 255, 255])  # BGRA
BLUE = bytes([255, 0, 0, 255])


def photo(width: int = 48, height: int = 32) -> tuple[FakeKrita, FakeDocument]:
    app = FakeKrita()
    doc = app.open(FakeDocument(width, height))
    base = doc.add_layer("Background", BLUE)
    for y in range(height):  # some structure for the classical fill
        for x in range(width):
            base.pixels[(x, y)] = bytes([(x * 5) % 256, (y * 7) % 256, 128, 255])
    return app, doc


def test_the_active_document_is_refused_in_other_colour_depths_clearly() -> None:
    app = FakeKrita()
    app.open(FakeDocument(10, 10, "RGBA", "U16"))
    with pytest.raises(UserError, match=r"8-bit RGBA.*RGBA/U16.*Convert Image Color Space"):
        KritaGlue(app).active_canvas()
    app.open(FakeDocument(10, 10, "CMYKA", "U8"))
    with pytest.raises(UserError, match="CMYKA/U8"):
        KritaGlue(app).active_canvas()
    with pytest.raises(UserError, match="Open an image first"):
        KritaGlue(FakeKrita()).active_canvas()


def test_reading_the_region_in_bgra_and_the_soft_mask() -> None:
    app, doc = photo(12, 8)
    top = doc.add_layer("top", bytes([10, 20, 30, 255]))
    top.pixels = {(x, y): bytes([10, 20, 30, 255]) for x in range(4, 6) for y in range(2, 4)}
    doc.select_rect(3, 2, 4, 3, 128)
    canvas = KritaGlue(app).active_canvas()
    assert canvas.size() == (12, 8) and canvas.is_open()
    assert canvas.selection() == Bounds(3, 2, 4, 3)
    image = canvas.read_image(Bounds(4, 2, 2, 2))
    assert image.format == "bgra8" and bytes(image.data) == bytes([10, 20, 30, 255]) * 4
    mask = canvas.read_mask(Bounds(2, 2, 2, 1))
    assert mask.format == "gray8" and bytes(mask.data) == bytes([0, 128])


def test_rgba_results_are_swapped_to_bgra() -> None:
    assert bgra_from(ImageData("rgba8", 1, 1, bytes([1, 2, 3, 4]))) == bytes([3, 2, 1, 4])
    assert bgra_from(ImageData("bgra8", 1, 1, bytes([1, 2, 3, 4]))) == bytes([1, 2, 3, 4])


def layer(name: str, x: int, y: int, w: int, h: int, visible: bool = True) -> NewLayer:
    return NewLayer(name, ImageData("bgra8", w, h, RED * (w * h)), x, y, visible)


def test_one_result_is_one_layer_right_above_the_active_layer_in_one_undo_step() -> None:
    app, doc = photo(20, 10)
    base = doc.root.children[0]
    top = doc.add_layer("Top", RED)
    doc.active = base
    before = dict(base.pixels), dict(top.pixels)
    canvas = KritaGlue(app, to_qbytes=bytearray).active_canvas()
    canvas.paste([layer("p [seed 9]", 3, 2, 4, 2)], None)
    assert [n.name() for n in doc.root.children] == ["Background", "p [seed 9]", "Top"]
    b = doc.root.children[1].bounds()
    assert (b.x(), b.y(), b.width(), b.height()) == (3, 2, 4, 2)
    assert len(doc.undo_steps) == 1
    assert (dict(base.pixels), dict(top.pixels)) == before and base.writes == top.writes == 0


def test_active_mask_pastes_above_its_layer_and_no_active_goes_on_top() -> None:
    app, doc = photo(8, 8)
    base = doc.root.children[0]
    mask = doc.createNode("Transparency Mask", "transparencymask")
    base.children.append(mask)
    mask.parent = base
    doc.active = mask
    canvas = KritaGlue(app).active_canvas()
    canvas.paste([layer("p [seed 1]", 0, 0, 1, 1)], None)
    assert [n.name() for n in doc.root.children] == ["Background", "p [seed 1]"]
    doc.active = None
    canvas.paste([layer("p [seed 2]", 0, 0, 1, 1)], None)
    assert [n.name() for n in doc.root.children][-1] == "p [seed 2]"


def test_a_batch_is_one_group_first_item_visible_on_top_one_undo_step() -> None:
    app, doc = photo(10, 10)
    canvas = KritaGlue(app).active_canvas()
    canvas.paste([layer(f"p [seed {s}]", 1, 1, 2, 2, s == 5) for s in (5, 6, 7)], "p [seeds 5-7]")
    group = doc.root.children[-1]
    assert group.type() == "grouplayer" and group.name() == "p [seeds 5-7]"
    top_down = list(reversed(group.children))
    assert [n.name() for n in top_down] == ["p [seed 5]", "p [seed 6]", "p [seed 7]"]
    assert [n.visible() for n in top_down] == [True, False, False]
    assert doc.undo_steps == [("add", group)]


def test_growing_moves_the_old_canvas_untouched() -> None:
    app, doc = photo(10, 6)
    base = doc.root.children[0]
    original = base.pixelData(0, 0, 10, 6)
    canvas = KritaGlue(app).active_canvas()
    canvas.grow(14, 6, 4, 0)
    canvas.paste([layer("p", 0, 0, 4, 6)], None)
    assert (doc.width(), doc.height()) == (14, 6)
    assert [kind for kind, _ in doc.undo_steps] == ["resize", "add"]
    assert base.pixelData(4, 0, 10, 6) == original


def test_a_closed_document_is_told_apart() -> None:
    app, doc = photo(10, 6)
    canvas = KritaGlue(app).active_canvas()
    app.close(doc)
    assert not canvas.is_open()
    with pytest.raises(UserError, match="closed"):
        canvas.paste([layer("p", 0, 0, 1, 1)], None)


# ------------------------------------------------------------------------------------------ model + daemon


class UiLoop:
    """Stands in for Krita's UI thread: ``post`` queues, ``run_until`` executes on the test's thread."""

    def __init__(self) -> None:
        self.queue: queue.Queue[Callable[[], None]] = queue.Queue()
        self.thread = threading.current_thread()

    def post(self, function: Callable[[], None]) -> None:
        self.queue.put(function)

    def run_until(self, predicate: Callable[[], bool], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError("timed out")
            try:
                function = self.queue.get(timeout=0.05)
            except queue.Empty:
                continue
            function()


PACED = PacedEngine(step_seconds=0.05, steps=10)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[DaemonThread]:
    config = DaemonConfig(host="127.0.0.1", port=0, token_file=tmp_path / "token", outputs=tmp_path / "outputs")
    thread = DaemonThread(Daemon(config, [ClassicalEngine(), PACED], "classical")).start()
    yield thread
    thread.stop()


def make_model(app: FakeKrita, url: str, token: str = "", direct: bool = True) -> tuple[DockerModel, UiLoop]:
    ui = UiLoop()
    if direct:
        app.writeSetting("underpaint", "land_directly", "1")
    settings = Settings(
        lambda k, d: app.readSetting("underpaint", k, d), lambda k, v: app.writeSetting("underpaint", k, v)
    )
    model = DockerModel(KritaGlue(app), ui.post, settings, host=("krita", "test"), connect_timeout=2)
    model.url, model.token = url, token
    return model, ui


def connected(app: FakeKrita, daemon: DaemonThread, direct: bool = True) -> tuple[DockerModel, UiLoop]:
    model, ui = make_model(app, daemon.url, daemon.daemon.token, direct)
    model.connect()
    ui.run_until(lambda: model.connection == "connected")
    return model, ui


def test_generate_inpaints_reads_only_the_planned_region_and_pastes_one_layer(daemon: DaemonThread) -> None:
    app, doc = photo(240, 160)
    doc.select_rect(100, 70, 12, 10)
    model, ui = connected(app, daemon)
    assert [m["id"] for m in model.models] == ["classical", PACED_MODEL] and model.model_id == "classical"
    assert app.settings[("underpaint", "url")] == daemon.url  # remembered
    model.prompt, model.seed_random, model.seed = "wood", False, 42
    entry = model.generate()
    assert entry is not None and entry.mode == "inpaint"
    ui.run_until(lambda: entry.state == "finished" and entry.applied == len(entry.results) == 1)
    assert entry.upload is not None
    up = entry.upload
    assert doc.pixel_reads == [(up.x, up.y, up.width, up.height)]  # once, as planned
    x, y, w, h = doc.pixel_reads[0]
    assert w * h < 240 * 160 and x <= 100 and y <= 70 and x + w >= 112 and y + h >= 80
    assert entry.seed == 42 and len(entry.pasted) == 1
    layer = doc.root.children[-1]
    message = entry.results[0].message
    assert layer.name() == message["layer"]["name"] == "wood [seed 42]"
    b = layer.bounds()
    lay = message["layer"]
    assert (b.x(), b.y(), b.width(), b.height()) == (lay["x"], lay["y"], lay["width"], lay["height"])
    assert doc.root.children[0].writes == 0
    assert model.error == "" and not model.busy
    model.close()


def test_events_run_re_entrantly_during_a_paste_paste_once(daemon: DaemonThread) -> None:
    """Krita's waitForDone() may deliver queued signals in the middle of a paste (seen in Krita 6)."""
    app, doc = photo(40, 30)
    doc.select_rect(8, 8, 6, 6)
    model, ui = connected(app, daemon)
    observed: list[tuple[bool, int]] = []

    def pump() -> None:  # inside glue.apply: run what is queued, like a nested Qt event loop
        while not ui.queue.empty():
            ui.queue.get()()
        entry = model.jobs[-1]
        observed.append((entry.settled, len(entry.pasted)))

    doc.on_wait = pump
    model.extend = (0, 0, 6, 0)
    entry = model.generate(expand=True)  # outpaint: resize + waitForDone inside the paste
    assert entry is not None
    ui.run_until(lambda: entry.settled)
    assert len(entry.pasted) == 1 and len([n for n in doc.root.children if n.name() != "Background"]) == 1
    assert observed and not any(settled for settled, _ in observed)  # never "done" mid-paste
    model.close()


def test_unsupported_document_is_refused_before_anything_is_sent(daemon: DaemonThread) -> None:
    app = FakeKrita()
    app.open(FakeDocument(16, 16, "RGBA", "F32"))
    model, _ui = connected(app, daemon)
    assert model.generate() is None and "8-bit RGBA" in model.error and not model.jobs
    model.close()


def test_document_closed_mid_job_drops_the_result_with_a_message(daemon: DaemonThread) -> None:
    app, doc = photo(32, 24)
    doc.select_rect(4, 4, 8, 8)
    model, ui = connected(app, daemon)
    entry = model.generate()
    assert entry is not None
    ui.run_until(lambda: entry.state in ("queued", "running", "finished") or entry.results != [])
    app.close(doc)
    ui.run_until(lambda: entry.state == "finished")
    assert entry.pasted == [] and entry.note == "image closed"
    assert "closed" in model.error and "saved in" in model.error  # where the daemon kept the PNG
    model.close()


def test_expand_outpaints_and_grows_the_canvas(daemon: DaemonThread) -> None:
    app, doc = photo(40, 24)
    model, ui = connected(app, daemon)
    model.extend = (0, 0, 8, 4)
    assert model.generate(expand=True) is not None
    entry = model.jobs[-1]
    assert entry.mode == "outpaint"
    ui.run_until(lambda: entry.state == "finished" and entry.applied == 1)
    assert (doc.width(), doc.height()) == (48, 28)
    model.extend = (0, 0, 0, 0)
    assert model.generate(expand=True) is None and "at least one side" in model.error
    model.close()


def test_krita_api_is_only_touched_on_the_ui_thread(daemon: DaemonThread) -> None:
    app, doc = photo(32, 24)
    doc.select_rect(4, 4, 8, 8)
    seen: set[str] = set()
    original = doc.pixelData

    def pixel_data(*args: int) -> bytes:
        seen.add(threading.current_thread().name)
        return original(*args)

    doc.pixelData = pixel_data  # type: ignore[method-assign]
    model, ui = connected(app, daemon)
    entry = model.generate()
    assert entry is not None
    ui.run_until(lambda: entry.state == "finished" and entry.applied == 1)
    assert seen == {threading.current_thread().name}
    model.close()


def test_progress_preview_and_cancel_while_a_finished_row_is_selected(daemon: DaemonThread) -> None:
    app, doc = photo(64, 48)
    doc.select_rect(10, 10, 12, 12)
    model, ui = connected(app, daemon)
    done = model.generate()
    assert done is not None
    ui.run_until(lambda: done.settled)
    model.set_model(PACED_MODEL)
    entry = model.generate()
    assert entry is not None
    ui.run_until(lambda: entry.step >= 2)
    assert model.progress[1] == 10 and model.preview is not None and model.preview.format == "bgra8"
    assert entry.state == "running" and model.busy
    model.cancel()  # whatever row is highlighted: Cancel stops what runs
    ui.run_until(lambda: entry.state == "cancelled")
    assert entry.pasted == [] and not model.busy and model.preview is None
    assert [n.name() for n in doc.root.children] == ["Background", done.pasted[0].name]
    model.close()


def test_preview_steps_through_a_batch_then_apply_and_discard_are_one_undo_step_each(daemon: DaemonThread) -> None:
    app, doc = photo(64, 48)
    doc.select_rect(10, 10, 12, 12)
    model, ui = connected(app, daemon, direct=False)
    assert not model.land_directly and app.settings[("underpaint", "client_id")] == model.controller.client_id
    model.set_model(PACED_MODEL)
    model.batch, model.seed_random, model.seed, model.prompt = 2, False, 2**32 - 2, "pot"
    entry = model.generate()
    assert entry is not None
    ui.run_until(lambda: entry.settled and len(entry.results) == 2)
    assert entry.seed == 2**32 - 2 and model.last_seed == 2**32 - 2
    preview = doc.root.children[-1]
    assert preview.name().startswith("[preview 1/2]") and [k for k, _ in doc.undo_steps] == ["add"]
    model.controller.preview_step(1)
    assert doc.root.children[-1] is preview and preview.name().startswith("[preview 2/2]")
    assert [k for k, _ in doc.undo_steps] == ["add"], "stepping adds no undo step"
    model.controller.apply()
    assert preview.name() == entry.results[1].message["layer"]["name"] and model.staged is None
    assert [k for k, _ in doc.undo_steps] == ["add"], "apply: undoing the one step removes the result"
    again = model.generate()
    assert again is not None
    ui.run_until(lambda: again.settled and model.staged is not None)
    model.controller.discard()
    assert [n.name() for n in doc.root.children] == ["Background", preview.name()]
    assert [k for k, _ in doc.undo_steps] == ["add", "add", "remove"]
    model.close()


def test_fields_seed_lock_ignored_fields_and_plan_in_the_model(daemon: DaemonThread) -> None:
    app, doc = photo(64, 48)
    model, ui = connected(app, daemon)
    assert model.plan().refusal and "select an area to fill" in model.plan().sentence
    assert set(model.ignored()) >= {"prompt", "strength", "steps"} and "Content-aware" in model.ignored()["prompt"]
    doc.select_rect(10, 10, 12, 12)
    assert model.plan().sentence == "Generate will inpaint the selection."
    model.extend = (0, 0, 16, 0)
    assert "the selection is ignored" in model.plan(expand=True).sentence
    assert model.set_seed_text(str(2**32)) and model.seed_random
    assert model.set_seed_text("3000000000") == "" and (model.seed_random, model.seed) == (False, 3_000_000_000)
    assert model.request().seed == 3_000_000_000
    model.set_seed_text("random")
    assert model.request().seed is None
    entry = model.generate()
    assert entry is not None
    ui.run_until(lambda: entry.settled)
    model.lock_seed(True)
    assert (model.seed_random, model.seed) == (False, entry.seed)
    model.close()


def test_history_after_a_restart_reapply_and_reuse(daemon: DaemonThread) -> None:
    app, doc = photo(64, 48)
    doc.select_rect(10, 10, 12, 12)
    model, ui = connected(app, daemon)
    model.prompt, model.seed_random, model.seed = "wood", False, 2**31 + 9
    entry = model.generate()
    assert entry is not None
    ui.run_until(lambda: entry.settled)
    model.close()
    again, ui = connected(app, daemon)  # Krita restarted: the same remembered client id
    again.controller.refresh_history()
    ui.run_until(lambda: bool(again.history))
    item = again.history[0]
    assert item.job_id == entry.job_id
    again.controller.fetch_history(item)
    ui.run_until(lambda: bool(item.results) and not item.fetching)
    again.controller.reapply(item)
    assert doc.root.children[-1].name() == "wood [seed 2147483657]"
    again.seed_random, again.prompt = True, ""
    again.reuse(item)
    assert (again.prompt, again.seed_random, again.seed) == ("wood", False, 2**31 + 9)
    again.close()
