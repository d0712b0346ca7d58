"""The shared client's control layers and references, without a daemon: job items, refusals before
sending, which rectangle is read, and the frames a submit sends in order."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.protocol.fake_host import FakeCanvas
from tests.protocol.test_controller import WELCOME, scripted
from underpaint_protocol.controller import Request
from underpaint_protocol.frames import decode_frame
from underpaint_protocol.guides import (
    ControlLayer,
    ReferenceImage,
    add_guides,
    guide_problem,
    read_guides,
)
from underpaint_protocol.jobs import Bounds
from underpaint_protocol.messages import Submit
from underpaint_protocol.session import ClientSession, ImageData

MODEL = {"id": "sd15", "control_kinds": ["canny", "scribble"], "reference_modes": ["style", "composition", "both"]}
LIMITS = {"max_controls": 2, "max_references": 1}


class Layers:
    """A LayerCanvas whose layers are names; it records what it was asked to read."""

    def __init__(self) -> None:
        self.reads: list[tuple[str, Any]] = []

    def read_layer_region(self, layer: str, rect: Bounds) -> ImageData:
        self.reads.append((layer, rect))
        return ImageData("rgba8", rect.width, rect.height, bytes(rect.width * rect.height * 4))

    def read_layer(self, layer: str) -> ImageData:
        self.reads.append((layer, None))
        return ImageData("rgba8", 3, 2, bytes(24))


def test_items_and_refusals() -> None:
    job: dict[str, Any] = {"mode": "txt2img", "canvas": {"width": 64, "height": 64}}
    controls = (ControlLayer("sketch", "scribble", 0.8, 0.0, 0.7), ControlLayer("photo", "canny", preprocess=True))
    references = (ReferenceImage("ref", "style", 0.9),)
    assert guide_problem(MODEL, controls, references, LIMITS) is None
    add_guides(job, controls, references)
    assert job["controls"][0] == {"kind": "scribble", "strength": 0.8, "start": 0.0, "end": 0.7, "preprocess": False}
    assert job["references"] == [{"take": "style", "weight": 0.9}]
    refusal = guide_problem(MODEL, (ControlLayer("x", "depth"),), (), LIMITS)
    assert refusal is not None and "depth" in refusal and "canny, scribble" in refusal
    assert "at most 2" in (guide_problem(MODEL, controls * 2, (), LIMITS) or "")
    assert "start before" in (guide_problem(MODEL, (ControlLayer("x", "canny", start=0.5, end=0.5),), (), LIMITS) or "")
    no_adapter = {**MODEL, "reference_modes": []}
    assert "reference" in (guide_problem(no_adapter, (), references, LIMITS) or "")


def test_controls_are_read_over_the_planned_control_region_and_sent_in_order() -> None:
    canvas = Layers()
    controls = (ControlLayer("sketch", "scribble"), ControlLayer("photo", "canny"))
    planned = {
        "upload": {"x": 0, "y": 0, "width": 0, "height": 0},
        "control": {"x": 4, "y": 2, "width": 8, "height": 6},
    }
    read, refs = read_guides(canvas, planned, controls, (ReferenceImage("ref"),))
    assert canvas.reads == [("sketch", Bounds(4, 2, 8, 6)), ("photo", Bounds(4, 2, 8, 6)), ("ref", None)]
    job: dict[str, Any] = {"mode": "txt2img", "canvas": {"width": 64, "height": 64}}
    add_guides(job, controls, (ReferenceImage("ref"),))
    request_id, frames = ClientSession().submit(job, None, None, None, read, refs)
    message = json.loads(frames[0])
    Submit.model_validate(message)  # the daemon's own definition accepts it
    assert [ref["id"] for ref in message["controls"]] == [f"{request_id}-control-0", f"{request_id}-control-1"]
    assert [decode_frame(b"".join(bytes(part) for part in frame))[0].id for frame in frames[1:]] == [
        f"{request_id}-control-0",
        f"{request_id}-control-1",
        f"{request_id}-reference-0",
    ]
    with pytest.raises(TypeError):
        read_guides(object(), planned, controls, ())


class LayeredCanvas(FakeCanvas):
    """The fake host canvas plus named layers: what a host adds to take control layers."""

    def read_layer_region(self, layer: str, rect: Bounds) -> ImageData:
        self.reads.append((f"layer:{layer}", rect))
        return ImageData("rgba8", rect.width, rect.height, bytes(rect.width * rect.height * 4))

    def read_layer(self, layer: str) -> ImageData:
        self.reads.append((f"whole:{layer}", Bounds(0, 0, 5, 4)))
        return ImageData("rgba8", 5, 4, bytes(80))


def test_the_controller_reads_control_layers_over_the_planned_region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(WELCOME["models"][1], "control_kinds", ["canny", "scribble"])
    monkeypatch.setitem(WELCOME["models"][1], "reference_modes", ["style", "composition", "both"])
    photo = FakeCanvas.photo()
    canvas = LayeredCanvas(photo.width, photo.height, photo.background)
    controller, client, _ = scripted(canvas)
    request = Request(
        model="paced", strength=0.5, controls=(ControlLayer("lines", "canny"),), references=(ReferenceImage("ref"),)
    )
    job = controller.generate(request)
    assert job is not None and job.spec["controls"][0]["kind"] == "canny"
    client.plans[0].set_result(
        {
            "type": "planned",
            "upload": {"x": 0, "y": 0, "width": 160, "height": 120},
            "control": {"x": 0, "y": 0, "width": 160, "height": 120},
        }
    )
    assert [kind for kind, _ in canvas.reads] == ["image", "layer:lines", "whole:ref"]
    ((controls, references),) = client.guides
    assert (controls[0].width, controls[0].height, references[0].width) == (160, 120, 5)
    refused = controller.generate(Request(model="paced", strength=0.5, controls=(ControlLayer("lines", "depth"),)))
    assert refused is None and "depth" in controller.error
    plain_host, _, _ = scripted(FakeCanvas.photo())
    assert plain_host.generate(Request(model="paced", strength=0.5, controls=(ControlLayer("x", "canny"),))) is None
    assert "cannot use layers" in plain_host.error


def test_the_stdlib_lists_match_the_protocol() -> None:
    """Plugins cannot import the pydantic definitions: their copies of the kinds must not drift."""
    from typing import get_args

    from underpaint_protocol import messages
    from underpaint_protocol.guides import CONTROL_KINDS, REFERENCE_TAKES

    assert get_args(messages.ControlKind) == CONTROL_KINDS
    assert get_args(messages.ReferenceMode) == REFERENCE_TAKES
