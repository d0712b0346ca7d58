"""Krita's side of segmentation on the fake Krita: a soft mask at its placement becomes the selection
through Krita's own combine operations; the drawn box is the selection's bounds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from underpaint_krita.glue import KritaGlue
from underpaint_krita.segment import ADD_LAYER, REMOVE_LAYER, SegmentFields, ensure_points_layer, read_points

from tests.krita.fake_krita import FakeDocument, FakeKrita, FakeSelection, FakeShape
from tests.krita.test_model import make_model
from underpaint.daemon.config import DaemonConfig
from underpaint.daemon.server import Daemon, DaemonThread
from underpaint.engines.classical import ClassicalEngine
from underpaint.engines.segment.classical import RefineEngine
from underpaint_protocol.controller import UserError
from underpaint_protocol.jobs import Bounds
from underpaint_protocol.segment import SegmentMask, SelectionCanvas, segment_mask

SOFT = bytes([0, 64, 128, 255] * 3)  # a 4 x 3 soft mask


def canvas_with(selection: tuple[int, int, int, int] | None = (0, 0, 4, 6)) -> tuple[FakeDocument, KritaGlue]:
    app = FakeKrita()
    doc = app.open(FakeDocument(10, 8))
    doc.add_layer("Background", bytes([1, 2, 3, 255]))
    if selection is not None:
        doc.select_rect(*selection)
    return doc, KritaGlue(app, new_selection=FakeSelection)


def selected(doc: FakeDocument) -> list[list[int]]:
    sel = doc.selection()
    data = bytes(sel.pixelData(0, 0, 10, 8)) if sel is not None else bytes(80)
    return [list(data[row * 10 : row * 10 + 10]) for row in range(8)]


def expected(previous: tuple[int, int, int, int] | None, rule) -> list[list[int]]:
    out = []
    for y in range(8):
        row = []
        for x in range(10):
            inside = previous is not None and previous[0] <= x < previous[0] + previous[2]
            a = 255 if inside and previous[1] <= y < previous[1] + previous[3] else 0  # type: ignore[index]
            b = SOFT[(y - 4) * 4 + (x - 2)] if 2 <= x < 6 and 4 <= y < 7 else 0
            row.append(rule(a, b))
        out.append(row)
    return out


@pytest.mark.parametrize(
    ("combine", "rule"),
    [
        ("replace", lambda a, b: b),
        ("add", max),
        ("subtract", lambda a, b: max(0, a - b)),
        ("intersect", min),
    ],
)
def test_the_mask_at_its_placement_joins_the_selection_by_krita_s_own_combine(combine, rule) -> None:
    doc, glue = canvas_with((0, 0, 4, 6))
    canvas = glue.active_canvas()
    assert isinstance(canvas, SelectionCanvas)  # what Controller.segment asks of a host
    assert canvas.selection() == Bounds(0, 0, 4, 6)  # the drawn box
    canvas.apply_selection(SegmentMask(2, 4, 4, 3, SOFT, combine))
    assert selected(doc) == expected((0, 0, 4, 6), rule)
    assert doc.undo_steps == []  # Krita's Document.setSelection bypasses its undo history


def test_without_a_selection_add_selects_the_mask_and_subtract_or_intersect_select_nothing() -> None:
    for combine, empty in (("add", False), ("replace", False), ("subtract", True), ("intersect", True)):
        doc, glue = canvas_with(None)
        glue.active_canvas().apply_selection(SegmentMask(2, 4, 4, 3, SOFT, combine))
        if empty:
            assert doc.selection() is None, combine
        else:
            assert selected(doc) == expected(None, lambda a, b: b), combine


def test_a_mask_that_removes_everything_leaves_no_selection() -> None:
    doc, glue = canvas_with((2, 4, 4, 3))
    glue.active_canvas().apply_selection(SegmentMask(2, 4, 4, 3, bytes([255] * 12), "subtract"))
    assert doc.selection() is None


def test_bad_combine_or_mask_is_refused_naming_it() -> None:
    doc, glue = canvas_with()
    canvas = glue.active_canvas()
    with pytest.raises(UserError, match="combine must be one of replace, add, subtract, intersect"):
        canvas.apply_selection(SegmentMask(0, 0, 4, 3, SOFT, "xor"))
    with pytest.raises(UserError, match="a 4x3 mask, got 48 bytes"):
        canvas.apply_selection(SegmentMask(0, 0, 4, 3, SOFT * 4, "add"))
    assert selected(doc) == expected((0, 0, 4, 6), lambda a, b: a)


def test_click_points_are_the_centres_of_shapes_on_the_points_layers_in_pixels() -> None:
    doc, glue = canvas_with()
    doc.resolution = 144.0  # 2 pixels per point
    canvas = glue.active_canvas()
    assert read_points(canvas, ADD_LAYER) == []
    add = ensure_points_layer(canvas, ADD_LAYER)
    assert doc.activeNode() is add and add.type() == "vectorlayer" and doc.undo_steps == [("add", add)]
    assert ensure_points_layer(canvas, ADD_LAYER) is add and len(doc.undo_steps) == 1  # found, not made again
    add.shape_list = [FakeShape(1.0, 1.0, 2.0, 2.0), FakeShape(3.0, 0.5, 1.0, 1.0)]
    remove = ensure_points_layer(canvas, REMOVE_LAYER)
    remove.shape_list = [FakeShape(0.0, 2.5, 1.0, 1.0)]
    assert read_points(canvas, ADD_LAYER) == [(4, 4), (7, 2)]
    assert read_points(canvas, REMOVE_LAYER) == [(1, 6)]
    with pytest.raises(UserError, match="no points layer"):
        ensure_points_layer(canvas, "other")


@pytest.fixture
def segment_daemon(tmp_path: Path) -> Iterator[DaemonThread]:
    config = DaemonConfig(host="127.0.0.1", port=0, token_file=tmp_path / "token", outputs=tmp_path / "outputs")
    thread = DaemonThread(Daemon(config, [ClassicalEngine(), RefineEngine()], "classical")).start()
    yield thread
    thread.stop()


def disc_photo() -> tuple[FakeKrita, FakeDocument]:
    """A bright disc (radius 9 around (32, 24)) on a dark textured ground."""
    app = FakeKrita()
    doc = app.open(FakeDocument(64, 48))
    base = doc.add_layer("Background", bytes([0, 0, 0, 255]))
    for y in range(48):
        for x in range(64):
            inside = (x - 32) ** 2 + (y - 24) ** 2 <= 81
            v = 230 if inside else 30 + (x * 7 + y * 3) % 20
            base.pixels[(x, y)] = bytes([v, v - 10 if inside else v, v, 255])
    return app, doc


def test_refine_selection_from_the_docker_fields_makes_the_daemon_s_mask_the_selection(
    segment_daemon: DaemonThread,
) -> None:
    app, doc = disc_photo()
    doc.select_rect(18, 10, 28, 28)  # the drawn box
    model, ui = make_model(app, segment_daemon.url, segment_daemon.daemon.token)
    model.glue.new_selection = FakeSelection  # krita.Selection in Krita (docker.py)
    model.connect()
    ui.run_until(lambda: model.connection == "connected")
    fields = SegmentFields(model)
    assert [m["id"] for m in fields.models()] == ["refine"]
    fields.set_model("refine")
    fields.set_combine("intersect")
    assert app.settings[("underpaint", "segment_combine")] == "intersect"  # remembered
    canvas = model.glue.active_canvas()
    ensure_points_layer(canvas, ADD_LAYER).shape_list = [FakeShape(30.0, 22.0, 4.0, 4.0)]  # on the disc
    ensure_points_layer(canvas, REMOVE_LAYER).shape_list = [FakeShape(19.0, 11.0, 2.0, 2.0)]  # a corner
    job = fields.refine()
    assert job is not None, model.error
    assert job.spec["segment"] == {
        "box": {"x": 18, "y": 10, "width": 28, "height": 28},
        "points": [{"x": 32, "y": 24}],
        "negative_points": [{"x": 20, "y": 12}],
    }
    assert job.spec["selection"] == {"x": 18, "y": 10, "width": 28, "height": 28}  # its shape is refined too
    ui.run_until(lambda: job.settled, 60)
    assert job.state == "finished" and not model.error, (job.state, model.error)
    result = job.results[-1]
    mask = segment_mask(result.message, result.image, "intersect")
    got = selected_full(doc, 64, 48)
    for y in range(48):
        for x in range(64):
            box = 255 if 18 <= x < 46 and 10 <= y < 38 else 0
            mx, my = x - mask.x, y - mask.y
            inside = 0 <= mx < mask.width and 0 <= my < mask.height
            assert got[y * 64 + x] == min(box, mask.data[my * mask.width + mx] if inside else 0), (x, y)
    on_disc = got[24 * 64 + 32] > 200 and got[24 * 64 + 20] < 60  # the object, not the box
    assert on_disc, "the disc is selected, the ground inside the box is not"


def test_select_by_words_without_a_text_model_is_refused_before_sending(segment_daemon: DaemonThread) -> None:
    app, _ = disc_photo()
    model, ui = make_model(app, segment_daemon.url, segment_daemon.daemon.token)
    model.connect()
    ui.run_until(lambda: model.connection == "connected")
    fields = SegmentFields(model)
    fields.set_model("refine")
    fields.text = "the disc"
    assert fields.by_words() is None and "cannot select by words" in model.error
    fields.text = "  "
    assert fields.by_words() is None and "Type what to select" in model.error


def selected_full(doc: FakeDocument, width: int, height: int) -> bytes:
    selection = doc.selection()
    return bytes(selection.pixelData(0, 0, width, height)) if selection is not None else bytes(width * height)
