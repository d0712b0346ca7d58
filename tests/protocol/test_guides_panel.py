"""The panels' shared control-layer rows (``guides_panel``): which layers are offered, the kind and
preprocess a new row starts with, edits, dropped layers, and what the request carries."""

from __future__ import annotations

import struct
import zlib
from typing import get_args

import pytest

from underpaint_protocol import messages
from underpaint_protocol.guides_panel import (
    KIND_LABELS,
    TAKE_LABELS,
    FileReference,
    GuideFields,
    HostLayer,
    availability,
    default_kind,
    fraction,
    layer_choices,
    model_kinds,
    model_takes,
    percent,
    png_size,
    row_options,
)

MODEL = {"id": "sd15", "control_kinds": ["scribble", "depth", "canny"], "reference_modes": ["style", "both"]}


def tiny_png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    rows = b"".join(b"\0" + bytes(width * 4) for _ in range(height))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def test_every_kind_and_take_has_a_label() -> None:
    assert set(KIND_LABELS) == set(get_args(messages.ControlKind))
    assert set(TAKE_LABELS) == set(get_args(messages.ReferenceMode))


def test_a_rows_picker_keeps_the_rows_own_choice_when_the_model_no_longer_offers_it() -> None:
    kinds, takes = model_kinds(MODEL), model_takes(MODEL)
    assert row_options(kinds, "depth") == ["scribble", "canny", "depth"]
    assert row_options(kinds, "pose") == ["scribble", "canny", "depth", "pose"]
    assert row_options(takes, "composition") == ["style", "both", "composition"]
    assert row_options([], "both") == ["both"]  # a model without an IP-Adapter: the row still shows its take


def test_offered_layers_hold_pixels_and_are_not_the_preview() -> None:
    layers = [
        HostLayer("a", "sketch"),
        HostLayer("b", "Transparency Mask", pixels=False),
        HostLayer("c", "[preview 1/2] noise [seed 3]"),
        HostLayer("d", "Group / photo"),
    ]
    assert [layer.handle for layer in layer_choices(layers)] == ["a", "d"]


def test_a_new_row_starts_with_the_kind_its_layer_name_says_when_the_model_takes_it() -> None:
    kinds = model_kinds(MODEL)
    assert kinds == ["scribble", "canny", "depth"]  # the protocol's order
    assert default_kind("Pose sketch", kinds) == "scribble"
    assert default_kind("depth map", kinds) == "depth"
    assert default_kind("Line art", kinds) == "scribble", "the model has no line art: its first kind"
    assert default_kind("anything", []) == "scribble"
    assert model_takes(MODEL) == ["style", "both"] and model_takes(None) == []


def test_availability_says_what_the_model_takes_or_how_to_get_it() -> None:
    assert availability(MODEL) == "sd15 takes control layers: scribble, canny edges, depth; references."
    assert "--control KIND=SOURCE" in availability({"id": "plain"})
    assert availability({"id": "x", "control_kinds": ["canny"]}).endswith("no references.")


def test_rows_edit_in_place_and_the_request_carries_them_in_order() -> None:
    fields = GuideFields()
    sketch = fields.add_control(HostLayer("k1", "sketch"), MODEL)
    photo = fields.add_control(HostLayer("k2", "photo depth"), MODEL)
    assert (sketch.kind, sketch.preprocess, photo.kind, photo.preprocess) == ("scribble", False, "depth", True)
    assert (sketch.strength, sketch.start, sketch.end) == (1.0, 0.0, 1.0)
    fields.set_control(0, strength=fraction(150, 200), end=fraction(80))
    assert fields.set_control(1, kind="scribble").preprocess is False, "a kind brings its usual preprocess"
    assert fields.set_control(1, kind="canny", preprocess=False).preprocess is False, "unless set with it"
    reference = fields.add_reference(HostLayer("k3", "mood"), MODEL)
    assert (reference.take, reference.weight) == ("both", 0.6)
    fields.set_reference(0, take="style", weight=fraction(90, 200))
    controls, references = fields.guides()
    assert [c.job_item() for c in controls] == [
        {"kind": "scribble", "strength": 1.5, "start": 0.0, "end": 0.8, "preprocess": False},
        {"kind": "canny", "strength": 1.0, "start": 0.0, "end": 1.0, "preprocess": False},
    ]
    assert [r.job_item() for r in references] == [{"take": "style", "weight": 0.9}]
    assert [fields.name(row) for row in (*controls, *references)] == ["sketch", "photo depth", "mood"]
    assert (percent(1.5), percent(0.8), fraction(250, 200), fraction(-3)) == (150, 80, 2.0, 0.0)


def test_rows_of_deleted_layers_go_and_file_references_stay() -> None:
    fields = GuideFields()
    fields.add_control(HostLayer("k1", "sketch"), MODEL)
    fields.add_control(HostLayer("k2", "lines"), MODEL)
    fields.add_reference(FileReference("mood.png", tiny_png(5, 3)), MODEL)
    assert not fields.keep([HostLayer("k1", "sketch"), HostLayer("k2", "lines")])
    assert fields.keep([HostLayer("k2", "lines")])
    assert [fields.name(row) for row in fields.controls] == ["lines"] and len(fields.references) == 1
    fields.remove_control(0)
    fields.remove_reference(0)
    assert fields.guides() == ((), ())


def test_a_file_reference_is_sent_as_the_png_it_is() -> None:
    png = tiny_png(7, 4)
    image = FileReference("mood.png", png).image()
    assert (image.format, image.width, image.height, image.data) == ("png", 7, 4, png)
    assert png_size(png) == (7, 4)
    with pytest.raises(ValueError, match="not a PNG"):
        FileReference("x.jpg", b"\xff\xd8\xff\xe0 jpeg").image()
