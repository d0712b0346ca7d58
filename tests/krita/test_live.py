"""Krita's live-painting glue against tests/krita/fake_krita.py: ONE live layer on top refilled in place
(the active layer stays active), the image read without it, the change fingerprint, removal."""

from __future__ import annotations

from underpaint_krita.glue import KritaGlue

from tests.krita.fake_krita import FakeDocument, FakeKrita
from underpaint_protocol.controller import NewLayer
from underpaint_protocol.jobs import Bounds
from underpaint_protocol.session import ImageData

BLUE = bytes([255, 0, 0, 255])  # BGRA
RED = bytes([0, 0, 255, 255])
GREEN = bytes([0, 255, 0, 255])


def live_layer(colour: bytes, x: int = 4, y: int = 2, w: int = 8, h: int = 6) -> NewLayer:
    return NewLayer("Live: test", ImageData("bgra8", w, h, colour * (w * h)), x, y)


def setup() -> tuple[FakeDocument, object, object]:
    app = FakeKrita()
    doc = app.open(FakeDocument(24, 16))
    doc.add_layer("Background", BLUE)
    strokes = doc.add_layer("Strokes", b"\0\0\0\0")
    return doc, strokes, KritaGlue(app, to_qbytes=bytearray).active_canvas()


def test_one_live_layer_on_top_refilled_in_place_and_the_active_layer_stays_active() -> None:
    doc, strokes, canvas = setup()
    steps = len(doc.undo_steps)
    handle = canvas.show_live(live_layer(RED), None)
    assert [n.name() for n in doc.rootNode().childNodes()] == ["Background", "Strokes", "Live: test"]
    assert doc.activeNode() is strokes
    assert len(doc.undo_steps) == steps + 1  # adding it; refills are no steps
    again = canvas.show_live(live_layer(GREEN), handle)
    assert again is handle and len(doc.undo_steps) == steps + 1
    assert [n.name() for n in doc.rootNode().childNodes()] == ["Background", "Strokes", "Live: test"]
    assert handle.pixelData(4, 2, 1, 1) == GREEN


def test_the_image_is_read_without_the_live_layer_which_stays_shown() -> None:
    doc, strokes, canvas = setup()
    handle = canvas.show_live(live_layer(RED, 0, 0, 24, 16), None)
    strokes.setPixelData(GREEN * 4, 1, 1, 2, 2)
    assert doc.pixelData(1, 1, 1, 1) == RED  # what the artist sees: the live picture on top
    read = canvas.read_live(Bounds(0, 0, 4, 4))
    assert read.format == "bgra8" and (read.width, read.height) == (4, 4)
    assert read.data[(1 * 4 + 1) * 4 : (1 * 4 + 1) * 4 + 4] == GREEN and read.data[:4] == BLUE
    assert handle.visible()


def test_the_fingerprint_moves_with_the_artist_s_layers_not_with_the_live_layer() -> None:
    doc, strokes, canvas = setup()
    region = Bounds(2, 2, 10, 8)
    handle = canvas.show_live(live_layer(RED), None)
    before = canvas.live_probe(region)
    canvas.show_live(live_layer(GREEN), handle)
    assert canvas.live_probe(region) == before, "a new live result is not a change of the painting"
    strokes.setPixelData(RED, 3, 3, 1, 1)
    painted = canvas.live_probe(region)
    assert painted != before
    strokes.setPixelData(RED, 20, 14, 1, 1)  # outside the region
    assert canvas.live_probe(region) == painted
    doc.rootNode().childNodes()[0].setVisible(False)
    assert canvas.live_probe(region) != painted


def test_live_off_removes_the_layer() -> None:
    doc, strokes, canvas = setup()
    handle = canvas.show_live(live_layer(RED), None)
    canvas.remove_live(handle)
    assert [n.name() for n in doc.rootNode().childNodes()] == ["Background", "Strokes"]
    assert canvas.live_node is None and doc.activeNode() is strokes
    assert canvas.read_live(Bounds(4, 2, 1, 1)).data == BLUE


def test_a_result_shown_while_the_first_is_still_being_added_refills_the_same_layer() -> None:
    """Krita runs queued callbacks inside its waits: a second result can arrive before the controller
    holds the first one's handle; it must refill the one live layer, not make a second."""
    doc, _strokes, canvas = setup()
    first = canvas.show_live(live_layer(RED), None)
    second = canvas.show_live(live_layer(GREEN), None)
    assert second is first
    assert [n.name() for n in doc.rootNode().childNodes()] == ["Background", "Strokes", "Live: test"]


def test_krita_activating_the_live_layer_is_undone_and_apply_lands_under_it() -> None:
    """Krita makes a newly added layer active a moment later: the check gives the artist's layer
    back, and an Apply while the live layer is active still lands under it, over the painting."""
    doc, strokes, canvas = setup()
    handle = canvas.show_live(live_layer(RED), None)
    doc.setActiveNode(handle)  # what Krita does after the add
    assert len(canvas.paste([NewLayer("live [seed 1]", ImageData("bgra8", 1, 1, GREEN), 0, 0)], None)) == 1
    assert [n.name() for n in doc.rootNode().childNodes()] == ["Background", "Strokes", "live [seed 1]", "Live: test"]
    canvas.keep_painting_active()
    assert doc.activeNode() is strokes
