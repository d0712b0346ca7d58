"""Krita's side of upscaling on tests/krita/fake_krita.py: the document scaled as one undo step, a
result that comes as tiles pasted into ONE layer at their places (one undo step)."""

from __future__ import annotations

import pytest
from underpaint_krita.glue import SCALE_FILTER, KritaGlue

from tests.krita.fake_krita import FakeDocument, FakeKrita
from underpaint_protocol.controller import NewLayer, UserError
from underpaint_protocol.session import ImageData


def photo(width: int, height: int) -> tuple[FakeKrita, FakeDocument]:
    app = FakeKrita()
    doc = app.open(FakeDocument(width, height))
    base = doc.add_layer("Background", bytes([0, 0, 0, 255]))
    for y in range(height):
        for x in range(width):
            base.pixels[(x, y)] = bytes([x % 256, y % 256, 128, 255])
    return app, doc


def tile(x: int, y: int, w: int, h: int, value: int) -> NewLayer:
    """An rgba8 tile (as GIMP and Figma ask for it; Krita swaps to BGRA) of one colour."""
    return NewLayer("tile", ImageData("rgba8", w, h, bytes([value, 0, 255 - value, 255]) * (w * h)), x, y)


def test_scaling_the_document_is_one_undo_step_of_every_layer() -> None:
    app, doc = photo(6, 4)
    top = doc.add_layer("Top", bytes([1, 2, 3, 255]))
    canvas = KritaGlue(app).active_canvas()
    canvas.scale(12, 8)
    assert canvas.size() == (12, 8)
    assert doc.undo_steps == [("scale", (12, 8, SCALE_FILTER))]
    base = doc.root.children[0]
    assert base.pixels[(11, 7)] == bytes([5, 3, 128, 255])  # every layer resampled, not only the active one
    assert len(top.pixels) == 12 * 8


def test_tiles_land_in_one_layer_at_their_places_in_one_undo_step() -> None:
    app, doc = photo(8, 6)
    canvas = KritaGlue(app, to_qbytes=bytearray).active_canvas()
    tiles = [tile(2, 1, 3, 2, 10), tile(5, 1, 3, 2, 20), tile(2, 3, 6, 3, 30)]
    node = canvas.paste_tiles("upscale x2", tiles)
    assert [n.name() for n in doc.root.children] == ["Background", "upscale x2"]
    assert doc.undo_steps == [("add", node)]
    assert node.writes == 3  # one write per tile, no assembled copy of the whole result
    bounds = node.bounds()
    assert (bounds.x(), bounds.y(), bounds.width(), bounds.height()) == (2, 1, 6, 5)
    assert node.pixelData(2, 1, 1, 1) == bytes([245, 0, 10, 255])  # BGRA of the first tile's colour
    assert node.pixelData(7, 2, 1, 1) == bytes([235, 0, 20, 255])
    assert node.pixelData(4, 5, 1, 1) == bytes([225, 0, 30, 255])
    assert node.pixelData(1, 1, 1, 1) == bytes(4)  # outside every tile: transparent


def test_no_tiles_is_refused_and_pastes_nothing() -> None:
    app, doc = photo(4, 4)
    with pytest.raises(UserError, match="no tiles"):
        KritaGlue(app).active_canvas().paste_tiles("empty", [])
    assert [n.name() for n in doc.root.children] == ["Background"] and doc.undo_steps == []
