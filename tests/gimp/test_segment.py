"""The GIMP plug-in's segment request (procedure arguments, paths as click points) and a procedure
call run to its end against a real daemon with the classical refine engine, on the in-memory canvas."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from underpaint_gimp.model import ImageHost, make_controller, run_to_end
from underpaint_gimp.segment import ADD_PATH, REMOVE_PATH, parse_box, parse_points, request_for

from tests.daemon.conftest import RunningDaemon, start_daemon
from tests.protocol.fake_host import FakeCanvas
from underpaint.engines.classical import ClassicalEngine
from underpaint.engines.segment.classical import RefineEngine
from underpaint_protocol.controller import UserError, WorkQueue
from underpaint_protocol.jobs import Bounds


@dataclass
class PathsCanvas(FakeCanvas):
    """The fake canvas plus GIMP's paths: name -> anchors."""

    paths: dict[str, list[tuple[int, int]]] = field(default_factory=dict)

    def points(self, name: str) -> list[tuple[int, int]]:
        return list(self.paths.get(name, []))


def disc() -> PathsCanvas:
    yy, xx = np.mgrid[0:96, 0:128]
    inside = (xx - 64) ** 2 + (yy - 48) ** 2 <= 18**2
    grey = np.where(inside, 225, 30 + (xx * 7 + yy * 3) % 20).astype(np.uint8)
    rgba = np.stack([grey, grey, grey, np.full_like(grey, 255)], -1)
    return PathsCanvas(128, 96, rgba)


def test_arguments_parse_with_errors_naming_the_argument() -> None:
    assert parse_points(" 1,2; 30,4 ;", "points") == ((1, 2), (30, 4))
    assert parse_points("", "points") == ()
    with pytest.raises(UserError, match="negative-points: write points as x,y;x,y"):
        parse_points("1,2,3", "negative-points")
    assert parse_box("10, 20, 30, 40") == Bounds(10, 20, 30, 40) and parse_box(" ") is None
    with pytest.raises(UserError, match="box: write it as x,y,width,height"):
        parse_box("10,20")


def test_refine_takes_the_selection_as_box_and_shape_and_the_paths_as_points() -> None:
    canvas = disc()
    canvas.select(40, 24, 48, 48)
    canvas.paths = {ADD_PATH: [(64, 48)], REMOVE_PATH: [(42, 26), (85, 70)]}
    request = request_for(canvas, combine="add", model="refine", refine_selection=True)
    assert request.box == Bounds(40, 24, 48, 48) and request.refine_selection
    assert request.points == ((64, 48),) and request.negative_points == ((42, 26), (85, 70))
    assert (request.combine, request.model) == ("add", "refine")
    explicit = request_for(canvas, combine="replace", model=None, box=Bounds(1, 2, 3, 4), points=(), text="cup")
    assert explicit.box == Bounds(1, 2, 3, 4) and not explicit.refine_selection and explicit.points == ()
    assert explicit.text == "cup" and explicit.model is None
    canvas.mask = None  # nothing selected: nothing to refine
    assert not request_for(canvas, combine="replace", model=None, refine_selection=True).refine_selection


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[RunningDaemon]:
    running = start_daemon(tmp_path, engines=[ClassicalEngine(), RefineEngine()])
    yield running
    running.thread.stop()


def test_a_segment_procedure_call_makes_the_object_the_selection(daemon: RunningDaemon) -> None:
    canvas = disc()
    canvas.select(40, 24, 48, 48)  # the drawn box
    work = WorkQueue()
    controller = make_controller(ImageHost(canvas), work.post, "test")
    request = request_for(canvas, combine="replace", model="refine", refine_selection=True)
    job = run_to_end(controller, work, daemon.url, daemon.token, request, 60)
    assert job.state == "finished" and len(canvas.selections) == 1
    mask = canvas.selections[0]
    assert canvas.mask is not None and canvas.mask[48, 64] > 200 and canvas.mask[26, 42] < 60, "the disc, not the box"
    placed = np.zeros((96, 128), np.uint8)
    placed[mask.y : mask.y + mask.height, mask.x : mask.x + mask.width] = np.frombuffer(mask.data, np.uint8).reshape(
        mask.height, mask.width
    )
    assert np.array_equal(canvas.mask, placed)
    controller.close()


def test_a_segment_call_that_cannot_start_says_why(daemon: RunningDaemon) -> None:
    canvas = disc()
    work = WorkQueue()
    controller = make_controller(ImageHost(canvas), work.post, "test")
    request = request_for(canvas, combine="replace", model="refine", text="the disc")
    with pytest.raises(UserError, match="cannot select by words"):
        run_to_end(controller, work, daemon.url, daemon.token, request, 30)
    controller.close()
