"""The shared host-independent job logic: mode choice and result placement."""

from __future__ import annotations

import pytest

from underpaint_protocol.jobs import Bounds, build_job, choose_mode, placement


@pytest.mark.parametrize(
    ("selection", "strength", "extend", "mode"),
    [
        (Bounds(10, 10, 20, 20), 1.0, None, "inpaint"),
        (Bounds(0, 0, 100, 80), 0.5, None, "inpaint"),
        (Bounds(-10, 10, 20, 20), 1.0, None, "outpaint"),
        (Bounds(90, 70, 20, 20), 1.0, None, "outpaint"),
        (None, 0.6, None, "img2img"),
        (None, 1.0, None, "txt2img"),
        (Bounds(5, 5, 0, 0), 1.0, None, "txt2img"),
        (None, 1.0, (0, 0, 64, 0), "outpaint"),
        (Bounds(10, 10, 20, 20), 1.0, (0, 0, 0, 0), "inpaint"),
    ],
)
def test_mode_follows_what_the_user_did(selection, strength, extend, mode) -> None:
    assert choose_mode(100, 80, selection, strength, extend) == mode


def test_build_job_is_a_valid_protocol_job() -> None:
    from underpaint_protocol.messages import JobSpec

    job = build_job(100, 80, Bounds(90, 70, 20, 20), prompt="sea", seed=3, batch=2, model="classical")
    spec = JobSpec.model_validate(job)
    assert spec.mode == "outpaint" and spec.selection is not None and spec.seed == 3
    extended = JobSpec.model_validate(build_job(100, 80, None, extend=(0, 0, 30, 0)))
    assert extended.extend is not None and extended.extend.right == 30 and extended.selection is None


def test_placement_of_an_outpaint_result() -> None:
    result = {
        "canvas": {"x": -30, "y": 0, "width": 150, "height": 110},
        "layer": {"x": -30, "y": 40, "width": 60, "height": 70},
    }
    where = placement(result, 120, 90)
    assert where.grows and (where.new_width, where.new_height) == (150, 110)
    assert (where.offset_x, where.offset_y) == (30, 0)
    assert (where.x, where.y, where.width, where.height) == (0, 40, 60, 70)


def test_placement_of_an_inpaint_result() -> None:
    result = {
        "canvas": {"x": 0, "y": 0, "width": 120, "height": 90},
        "layer": {"x": 7, "y": 9, "width": 5, "height": 3},
    }
    where = placement(result, 120, 90)
    assert not where.grows and (where.x, where.y) == (7, 9)
