"""Krita's control layers and references against tests/krita/fake_krita.py: the layers the docker
offers, one layer's own pixels over the planned rectangle (hidden or not), a reference over its own
bounds, and the docker model's request carrying the rows. The real docker in the real Krita runs a
control job in tests/krita/test_e2e.py."""

from __future__ import annotations

import pytest
from underpaint_krita.glue import KritaGlue, node_key
from underpaint_krita.model import DockerModel, Settings

from tests.krita.fake_krita import FakeDocument, FakeKrita
from tests.protocol.test_guides_panel import tiny_png
from underpaint_protocol.controller import UserError
from underpaint_protocol.guides import LayerCanvas
from underpaint_protocol.guides_panel import FileReference, layer_choices
from underpaint_protocol.jobs import Bounds

WHITE = bytes([255, 255, 255, 255])


def sketched() -> tuple[FakeKrita, FakeDocument]:
    app = FakeKrita()
    doc = app.open(FakeDocument(16, 12))
    doc.add_layer("Background", bytes([40, 80, 120, 255]))
    group = doc.createGroupLayer("Guides")
    doc.root.addChildNode(group, None)
    sketch = doc.createNode("sketch", "paintlayer")
    sketch.pixels = {(x, 5): WHITE for x in range(3, 13)}  # a horizontal stroke
    sketch.setVisible(False)  # kept hidden, as sketches often are
    group.addChildNode(sketch, None)
    mask = doc.createNode("Transparency Mask", "transparencymask")
    sketch.children.append(mask)
    mask.parent = sketch
    return app, doc


def test_the_layers_offered_are_every_layer_with_pixels_named_with_their_groups() -> None:
    app, _ = sketched()
    canvas = KritaGlue(app).active_canvas()
    assert isinstance(canvas, LayerCanvas)
    names = [layer.name for layer in layer_choices(canvas.layers())]
    assert names == ["Guides", "Guides / sketch", "Background"]  # top first; the mask is not offered


def test_a_hidden_layer_is_read_over_the_rectangle_as_its_own_pixels() -> None:
    app, doc = sketched()
    canvas = KritaGlue(app).active_canvas()
    key = next(layer.handle for layer in canvas.layers() if layer.name.endswith("sketch"))
    image = canvas.read_layer_region(key, Bounds(2, 4, 4, 3))
    assert (image.format, image.width, image.height) == ("bgra8", 4, 3)
    rows = [image.data[row * 16 : (row + 1) * 16] for row in range(3)]
    assert rows[0] == rows[2] == bytes(16), "transparent where the layer has nothing (not the background)"
    assert rows[1] == bytes(4) + WHITE * 3
    reference = canvas.read_layer(key)
    assert (reference.width, reference.height) == (10, 1) and reference.data == WHITE * 10
    png = tiny_png(3, 2)
    assert canvas.read_layer(FileReference("mood.png", png)).data == png
    doc.root.children[-1].children[0].remove()
    with pytest.raises(UserError, match="deleted"):
        canvas.read_layer_region(key, Bounds(0, 0, 2, 2))


def test_an_empty_reference_layer_is_refused_with_what_to_do() -> None:
    app, doc = sketched()
    empty = doc.createNode("empty", "paintlayer")
    doc.root.addChildNode(empty, None)
    with pytest.raises(UserError, match="empty"):
        KritaGlue(app).active_canvas().read_layer(node_key(empty))


def test_the_docker_request_carries_the_rows() -> None:
    app, _ = sketched()
    model = DockerModel(KritaGlue(app), lambda fn: fn(), Settings(lambda k, d: d, lambda k, v: None))
    layers = layer_choices(model.canvas().layers())  # type: ignore[attr-defined]
    info = {"id": "tiny", "control_kinds": ["canny", "scribble"], "reference_modes": ["both"]}
    model.guides.add_control(layers[1], info)
    model.guides.add_reference(layers[2], info)
    request = model.request()
    assert [c.job_item()["kind"] for c in request.controls] == ["scribble"]
    assert [r.layer for r in request.references] == [layers[2].handle]
    assert model.request(expand=True).controls == request.controls
