"""plan_job: bounds only, no pixels."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.canvas.helpers import CLASSICAL, SD15, SDXL
from underpaint.canvas import BlendSettings, Box, Extents, ModelResolution, model_size, plan_job
from underpaint.errors import JobError
from underpaint.modes import Mode

DEFAULT = BlendSettings()


def plan(mode, w, h, sel=None, extend=None, strength=1.0, res=SD15, blend=DEFAULT):
    return plan_job(mode, w, h, sel, extend, strength, res, blend)


@pytest.mark.parametrize(
    ("kwargs", "code", "field"),
    [
        ({"mode": Mode.INPAINT, "w": 100, "h": 100}, "empty_selection", "job.selection"),
        ({"mode": Mode.INPAINT, "w": 100, "h": 100, "sel": Box(10, 10, 0, 5)}, "empty_selection", "job.selection"),
        ({"mode": Mode.IMG2IMG, "w": 100, "h": 100, "sel": Box(10, 10, 5, 0)}, "empty_selection", "job.selection"),
        ({"mode": Mode.INPAINT, "w": 100, "h": 100, "sel": Box(200, 10, 5, 5)}, "empty_selection", "job.selection"),
        ({"mode": Mode.OUTPAINT, "w": 100, "h": 100}, "nothing_to_outpaint", "job.extend"),
        ({"mode": Mode.OUTPAINT, "w": 100, "h": 100, "extend": Extents()}, "nothing_to_outpaint", "job.extend"),
        ({"mode": Mode.OUTPAINT, "w": 100, "h": 100, "sel": Box(10, 10, 50, 50)}, "nothing_to_outpaint", "job.extend"),
        ({"mode": Mode.INPAINT, "w": 0, "h": 100, "sel": Box(0, 0, 1, 1)}, "invalid_value", "job.canvas.width"),
        ({"mode": Mode.INPAINT, "w": 100, "h": -3, "sel": Box(0, 0, 1, 1)}, "invalid_value", "job.canvas.height"),
        ({"mode": Mode.IMG2IMG, "w": 70000, "h": 100}, "invalid_value", "job.canvas.width"),
        ({"mode": Mode.INPAINT, "w": 100, "h": 100, "sel": Box(0, 0, -4, 5)}, "invalid_value", "job.selection.width"),
        ({"mode": Mode.IMG2IMG, "w": 100, "h": 100, "strength": 1.5}, "invalid_value", "job.strength"),
        ({"mode": Mode.IMG2IMG, "w": 100, "h": 100, "strength": float("nan")}, "invalid_value", "job.strength"),
        ({"mode": Mode.IMG2IMG, "w": 100, "h": 100, "extend": Extents(left=4)}, "invalid_value", "job.extend"),
        ({"mode": Mode.OUTPAINT, "w": 100, "h": 100, "extend": Extents(left=-4)}, "invalid_value", "job.extend.left"),
        ({"mode": Mode.OUTPAINT, "w": 65000, "h": 100, "extend": Extents(right=1000)}, "invalid_value", "job.extend"),
        ({"mode": "sketch", "w": 100, "h": 100}, "invalid_value", "job.mode"),
        ({"mode": Mode.IMG2IMG, "w": 100, "h": 100, "res": ModelResolution(0)}, "invalid_value", "resolution"),
        ({"mode": Mode.IMG2IMG, "w": 100, "h": 100, "blend": BlendSettings(grow=-1)}, "invalid_value", "settings.grow"),
    ],
)
def test_errors_are_clear(kwargs, code, field):
    with pytest.raises(JobError) as info:
        plan(**kwargs)
    assert info.value.code == code
    assert info.value.field == field
    assert info.value.message


def test_whole_canvas_modes():
    p = plan(Mode.IMG2IMG, 333, 517, strength=0.4)
    assert p.work == p.upload == p.canvas == p.new_canvas == Box(0, 0, 333, 517)
    assert p.selection is None
    t = plan(Mode.TXT2IMG, 333, 517)
    assert t.work == Box(0, 0, 333, 517) and t.upload.is_empty
    r = plan(Mode.TXT2IMG, 1000, 800, sel=Box(101, 33, 257, 129))
    assert r.work == Box(101, 33, 257, 129) and r.upload.is_empty


def test_context_grows_with_strength_and_stays_in_canvas():
    sel = Box(1000, 1000, 200, 100)
    low = plan(Mode.INPAINT, 4000, 4000, sel, strength=0.3)
    high = plan(Mode.INPAINT, 4000, 4000, sel, strength=1.0)
    assert low.work.contains(sel) and high.work.contains(sel)
    assert high.work.area > low.work.area
    # The denoise ramp (grow + feather) fits inside the crop.
    for p in (low, high):
        margin = p.grow + p.feather
        assert p.work.contains(sel.pad(margin, margin, margin, margin))
    edge = plan(Mode.INPAINT, 4000, 4000, Box(0, 3990, 4000, 10))
    assert edge.canvas.contains(edge.work) and edge.upload == edge.work


def test_cost_follows_selection_not_canvas():
    sel_small = Box(128, 128, 256, 256)
    small = plan(Mode.INPAINT, 512, 512, sel_small)
    big = plan(Mode.INPAINT, 8192, 8192, Box(5000, 3000, 256, 256))
    huge = plan(Mode.INPAINT, 16384, 16384, Box(16000, 16000, 256, 256))
    assert big.work.width * big.work.height <= 1.2 * small.work.area
    assert (big.model_width, big.model_height) == (small.model_width, small.model_height)
    assert huge.upload.area <= big.upload.area
    assert huge.canvas.contains(huge.work)


def test_outpaint_extents_per_side():
    p = plan(Mode.OUTPAINT, 600, 400, extend=Extents(left=150, top=7, right=0, bottom=33))
    assert p.new_canvas == Box(-150, -7, 750, 440)
    assert p.upload == p.work.intersect(p.canvas)
    assert p.work.x == -150 and p.work.y == -7
    assert p.new_canvas.contains(p.work)
    right = plan(Mode.OUTPAINT, 600, 400, extend=Extents(right=101))
    assert right.new_canvas == Box(0, 0, 701, 400)
    assert right.work.right == 701 and right.work.x > 0  # only context near the new strip is uploaded


def test_outpaint_by_selection_leaving_canvas():
    p = plan(Mode.OUTPAINT, 600, 400, sel=Box(550, -30, 100, 100))
    assert p.new_canvas == Box(0, -30, 650, 430)
    assert p.selected == Box(550, -30, 100, 100)
    assert p.work.contains(Box(550, -30, 100, 100))


@settings(max_examples=300, deadline=None)
@given(
    w=st.integers(1, 30000),
    h=st.integers(1, 30000),
    budget=st.sampled_from([256 * 256, 512 * 512, 768 * 768, 1024 * 1024]),
    multiple=st.sampled_from([1, 8, 16, 64]),
    upscale=st.booleans(),
)
def test_model_size_rules(w, h, budget, multiple, upscale):
    res = ModelResolution(budget, multiple=multiple, min_side=64, max_side=2048, upscale_small=upscale)
    mw, mh = model_size(w, h, res)
    assert mw % multiple == 0 and mh % multiple == 0
    assert 64 <= mw <= 2048 and 64 <= mh <= 2048
    # Within budget once each side's rounding up to the multiple (at most half a multiple) is undone.
    assert (mw - multiple / 2) * (mh - multiple / 2) <= budget * 1.05 or min(mw, mh) == 64
    if not upscale and w >= 64 and h >= 64 and w * h <= budget and max(w, h) <= 2048:
        assert abs(mw - w) <= multiple and abs(mh - h) <= multiple  # kept ~1:1
    if 1 / 4 <= w / h <= 4 and (upscale or w * h >= budget):
        # Aspect kept up to the rounding of each side to the multiple.
        assert abs((mw / mh) / (w / h) - 1) < multiple / min(mw, mh) + 0.02


@settings(max_examples=200, deadline=None)
@given(
    cw=st.integers(1, 16384),
    ch=st.integers(1, 16384),
    x=st.integers(-50, 16400),
    y=st.integers(-50, 16400),
    sw=st.integers(1, 3000),
    sh=st.integers(1, 3000),
    strength=st.floats(0, 1),
    mode=st.sampled_from([Mode.INPAINT, Mode.IMG2IMG, Mode.OUTPAINT, Mode.TXT2IMG]),
    res=st.sampled_from([SD15, SDXL, CLASSICAL]),
)
def test_plan_geometry(cw, ch, x, y, sw, sh, strength, mode, res):
    sel = Box(x, y, sw, sh)
    try:
        p = plan(mode, cw, ch, sel, None, strength, res)
    except JobError as error:
        assert error.code in ("empty_selection", "nothing_to_outpaint")
        return
    assert p.new_canvas.contains(p.work) and p.new_canvas.contains(p.canvas)
    assert p.new_canvas.x <= 0 and p.new_canvas.y <= 0
    if mode is Mode.TXT2IMG:
        assert p.upload.is_empty
    else:
        assert p.upload == p.work.intersect(p.canvas)
    if mode is not Mode.OUTPAINT:
        assert p.canvas.contains(p.work)
        assert p.work.contains(sel.intersect(p.canvas))
    else:
        assert p.work.contains(sel)
    assert p.model_width % res.multiple == 0 and p.model_height % res.multiple == 0
    assert res.min_side <= p.model_width <= res.max_side
