"""Krita's side of segmentation on the fake Krita: a soft mask at its placement becomes the selection
through Krita's own combine operations; the drawn box is the selection's bounds."""

from __future__ import annotations

import pytest
from underpaint_krita.glue import KritaGlue

from tests.krita.fake_krita import FakeDocument, FakeKrita, FakeSelection
from underpaint_protocol.controller import UserError
from underpaint_protocol.jobs import Bounds
from underpaint_protocol.session import ImageData

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
    assert canvas.selection() == Bounds(0, 0, 4, 6)  # the drawn box
    canvas.set_selection(ImageData("gray8", 4, 3, SOFT), 2, 4, combine)
    assert selected(doc) == expected((0, 0, 4, 6), rule)
    assert doc.undo_steps == []  # Krita's Document.setSelection bypasses its undo history


def test_without_a_selection_add_selects_the_mask_and_subtract_or_intersect_select_nothing() -> None:
    for combine, empty in (("add", False), ("replace", False), ("subtract", True), ("intersect", True)):
        doc, glue = canvas_with(None)
        glue.active_canvas().set_selection(ImageData("gray8", 4, 3, SOFT), 2, 4, combine)
        if empty:
            assert doc.selection() is None, combine
        else:
            assert selected(doc) == expected(None, lambda a, b: b), combine


def test_a_mask_that_removes_everything_leaves_no_selection() -> None:
    doc, glue = canvas_with((2, 4, 4, 3))
    glue.active_canvas().set_selection(ImageData("gray8", 4, 3, bytes([255] * 12)), 2, 4, "subtract")
    assert doc.selection() is None


def test_bad_combine_or_mask_is_refused_naming_it() -> None:
    doc, glue = canvas_with()
    canvas = glue.active_canvas()
    with pytest.raises(UserError, match="combine must be one of replace, add, subtract, intersect"):
        canvas.set_selection(ImageData("gray8", 4, 3, SOFT), 0, 0, "xor")
    with pytest.raises(UserError, match="gray8 mask of 4x3"):
        canvas.set_selection(ImageData("rgba8", 4, 3, SOFT * 4), 0, 0, "add")
    assert selected(doc) == expected((0, 0, 4, 6), lambda a, b: a)


def test_click_points_are_the_centres_of_shapes_on_the_points_layers_in_pixels() -> None:
    from underpaint_krita.segment import ADD_LAYER, REMOVE_LAYER, ensure_points_layer, read_points

    from tests.krita.fake_krita import FakeShape

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
