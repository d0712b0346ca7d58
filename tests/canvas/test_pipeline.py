"""prepare_job -> engine -> finish_job: placement, masks and the layer invariants."""

from __future__ import annotations

import numpy as np
import pytest

from tests.canvas.helpers import (
    CLASSICAL,
    PHOTOS,
    SD15,
    SDXL,
    check_invariants,
    classical_engine,
    photo,
    rect_mask,
    run_job,
    shifted_engine,
    upload_of,
    work_original,
)
from underpaint.canvas import (
    BlendSettings,
    Box,
    Extents,
    composite_over,
    finish_job,
    finish_job_with_composite,
    plan_job,
    prepare_job,
)
from underpaint.errors import JobError
from underpaint.modes import Mode


def synthetic(w: int, h: int, seed: int = 0) -> np.ndarray:
    """A smooth gradient with noise: cheap, textured, opaque."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 / max(w, 1), yy * 255 / max(h, 1), (xx + yy) % 256], axis=2)
    img = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    return np.dstack([img, np.full((h, w), 255, np.uint8)])


@pytest.mark.parametrize("name", PHOTOS)
@pytest.mark.parametrize("engine", [classical_engine, shifted_engine])
@pytest.mark.parametrize(("res", "strength"), [(SD15, 1.0), (SDXL, 0.6), (CLASSICAL, 1.0)])
def test_inpaint_photo_invariants(name, engine, res, strength):
    canvas = photo(name)
    h, w = canvas.shape[:2]
    sel = Box(w // 3 + 1, h // 4 + 3, w // 4 + 1, h // 5 + 2)  # odd sizes, offsets not multiples of 8
    plan = plan_job(Mode.INPAINT, w, h, sel, None, strength, res, BlendSettings())
    prepared, layer, composite = run_job(canvas, plan, engine=engine)
    assert prepared.image.shape == (plan.model_height, plan.model_width, 3)
    assert prepared.denoise_mask.shape == (plan.model_height, plan.model_width)
    check_invariants(canvas, plan, layer, composite, rect_mask(composite.shape[:2], sel, plan.work))
    assert layer.rect.contains(sel)


@pytest.mark.parametrize(
    "sel",
    [
        Box(0, 0, 1, 1),
        Box(36, 40, 1, 1),
        Box(72, 0, 1, 1),
        Box(0, 50, 1, 1),
        Box(72, 50, 1, 1),
        Box(0, 0, 73, 51),  # touches every edge
        Box(0, 13, 5, 7),  # left edge
        Box(13, 0, 7, 5),  # top edge
        Box(60, 20, 13, 9),  # right edge
        Box(20, 44, 9, 7),  # bottom edge
        Box(3, 5, 67, 41),
    ],
)
@pytest.mark.parametrize("res", [SD15, CLASSICAL])
def test_edge_and_tiny_selections(sel, res):
    canvas = synthetic(73, 51)
    plan = plan_job(Mode.INPAINT, 73, 51, sel, None, 1.0, res, BlendSettings())
    _, layer, composite = run_job(canvas, plan, engine=shifted_engine)
    check_invariants(canvas, plan, layer, composite, rect_mask(composite.shape[:2], sel, plan.work))
    assert layer.rect.contains(sel)


def test_one_pixel_selection_is_exact():
    canvas = synthetic(301, 199)
    sel = Box(151, 97, 1, 1)
    plan = plan_job(Mode.INPAINT, 301, 199, sel, None, 1.0, SD15, BlendSettings(blend=0))
    _, layer, composite = run_job(canvas, plan, engine=shifted_engine)
    # With no blend band the layer is exactly the selected pixel.
    assert layer.rect == sel
    assert layer.pixels[0, 0, 3] == 255
    check_invariants(canvas, plan, layer, composite, rect_mask(composite.shape[:2], sel, plan.work))


def test_disjoint_soft_multi_part_selection():
    canvas = photo("coffee")
    h, w = canvas.shape[:2]
    sel = Box(101, 57, 301, 203)
    plan = plan_job(Mode.INPAINT, w, h, sel, None, 1.0, SD15, BlendSettings())
    mask = np.zeros((plan.upload.height, plan.upload.width), np.uint8)
    part_a = Box(101, 57, 40, 30).slices(plan.upload)
    part_b = Box(361, 229, 41, 31).slices(plan.upload)
    mask[part_a] = 255
    mask[part_b] = 255
    soft = Box(250, 150, 20, 20).slices(plan.upload)
    mask[soft] = 100  # partially selected
    mask[Box(0, 0, 20, 20).slices(plan.upload)] = 255  # outside the selection rect: ignored
    _, layer, composite = run_job(canvas, plan, mask=mask, engine=shifted_engine)
    full = np.zeros(composite.shape[:2], bool)
    full[plan.upload.slices(plan.work)] = mask == 255
    full &= rect_mask(full.shape, sel, plan.work)
    check_invariants(canvas, plan, layer, composite, full)
    alpha = np.zeros(composite.shape[:2], np.uint8)
    alpha[layer.rect.slices(plan.work)] = layer.pixels[..., 3]
    # Partly selected pixels keep at least their selection as alpha; far from every part alpha is 0.
    soft_alpha = alpha[plan.upload.slices(plan.work)][soft]
    assert (soft_alpha >= 100).all()
    middle = Box(200, 100, 10, 10).intersect(plan.work)
    assert (alpha[middle.slices(plan.work)] == 0).all()
    assert not rect_mask(alpha.shape, Box(0, 0, 20, 20), plan.work)[alpha > 0].any()


def test_soft_selection_and_explicit_settings():
    canvas = photo("chelsea")
    h, w = canvas.shape[:2]
    sel = Box(200, 100, 100, 80)
    settings = BlendSettings(grow=6, feather=10, blend=5, colour_match=False, prefill="edge", prefill_noise=0.3)
    plan = plan_job(Mode.INPAINT, w, h, sel, None, 1.0, SD15, settings)
    assert (plan.grow, plan.feather, plan.blend) == (6, 10, 5)
    yy, xx = np.mgrid[0 : plan.upload.height, 0 : plan.upload.width]
    mask = np.clip(255 - np.hypot(xx - 150 + plan.upload.x - 100, yy - 140 + plan.upload.y) * 4, 0, 255)
    mask = mask.astype(np.uint8)
    _, layer, composite = run_job(canvas, plan, mask=mask, settings=settings, engine=shifted_engine)
    full = np.zeros(composite.shape[:2], bool)
    full[plan.upload.slices(plan.work)] = mask == 255
    check_invariants(canvas, plan, layer, composite, full & rect_mask(full.shape, sel, plan.work))


def test_empty_mask_and_wrong_shapes():
    canvas = synthetic(120, 90)
    plan = plan_job(Mode.INPAINT, 120, 90, Box(30, 30, 20, 20), None, 1.0, SD15, BlendSettings())
    up = upload_of(canvas, plan)
    zeros = np.zeros(up.shape[:2], np.uint8)
    with pytest.raises(JobError) as info:
        prepare_job(plan, up, zeros, BlendSettings())
    assert (info.value.code, info.value.field) == ("empty_selection", "mask")
    with pytest.raises(JobError) as info:
        prepare_job(plan, up[1:], None, BlendSettings())
    assert (info.value.code, info.value.field) == ("size_mismatch", "image")
    with pytest.raises(JobError) as info:
        prepare_job(plan, up, zeros[:, 1:], BlendSettings())
    assert (info.value.code, info.value.field) == ("size_mismatch", "mask")
    with pytest.raises(JobError) as info:
        prepare_job(plan, None, None, BlendSettings())
    assert info.value.field == "image"
    prepared = prepare_job(plan, up, None, BlendSettings())
    with pytest.raises(JobError) as info:
        finish_job(prepared, prepared.image[:, 1:])
    assert (info.value.code, info.value.field) == ("size_mismatch", "image")


def test_masks_at_model_size():
    canvas = synthetic(640, 480)
    sel = Box(301, 203, 77, 55)
    plan = plan_job(Mode.INPAINT, 640, 480, sel, None, 1.0, SD15, BlendSettings())
    prepared = prepare_job(plan, upload_of(canvas, plan), None, BlendSettings())
    d = prepared.denoise_mask
    sx, sy = plan.scale_x, plan.scale_y
    inside = d[
        int((sel.y - plan.work.y) * sy) : int((sel.bottom - plan.work.y) * sy),
        int((sel.x - plan.work.x) * sx) : int((sel.right - plan.work.x) * sx),
    ]
    assert (inside == 255).all()
    assert d[0, 0] == 0 and d[-1, -1] == 0
    # Grown and feathered: a soft ramp exists.
    assert ((d > 0) & (d < 255)).any()
    whole = plan_job(Mode.IMG2IMG, 640, 480, None, None, 0.5, SD15, BlendSettings())
    prepared = prepare_job(whole, canvas, None, BlendSettings())
    assert (prepared.denoise_mask == 255).all()


def test_full_strength_inpaint_prefills_the_selection():
    canvas = synthetic(400, 300)
    canvas[..., 0] //= 3  # nothing red but the object
    sel = Box(150, 100, 60, 50)
    canvas[sel.slices(Box(0, 0, 400, 300))] = (255, 0, 0, 255)  # object to remove
    plan = plan_job(Mode.INPAINT, 400, 300, sel, None, 1.0, SD15, BlendSettings())
    for method in ("auto", "telea", "navier_stokes", "edge", "blur"):
        prepared = prepare_job(plan, upload_of(canvas, plan), None, BlendSettings(prefill=method))
        img = prepared.image.astype(int)
        redness = (img[..., 0] - img[..., 1:].mean(axis=2)) > 150
        assert redness.sum() == 0, method
    kept = plan_job(Mode.INPAINT, 400, 300, sel, None, 0.5, SD15, BlendSettings())
    prepared = prepare_job(kept, upload_of(canvas, kept), None, BlendSettings())
    img = prepared.image.astype(int)
    assert ((img[..., 0] - img[..., 1:].mean(axis=2)) > 150).sum() > 100  # refine keeps the pixels


def test_prefill_noise_is_seeded():
    canvas = synthetic(200, 200)
    plan = plan_job(Mode.INPAINT, 200, 200, Box(50, 50, 60, 60), None, 1.0, SD15, BlendSettings())
    s = BlendSettings(prefill_noise=0.5)
    a = prepare_job(plan, upload_of(canvas, plan), None, s, seed=3).image
    b = prepare_job(plan, upload_of(canvas, plan), None, s, seed=3).image
    c = prepare_job(plan, upload_of(canvas, plan), None, s, seed=4).image
    assert np.array_equal(a, b) and not np.array_equal(a, c)


@pytest.mark.parametrize(
    ("extend", "sel"),
    [
        (Extents(left=150), None),
        (Extents(top=33), None),
        (Extents(right=77), None),
        (Extents(bottom=101), None),
        (Extents(left=13, top=29, right=41, bottom=5), None),
        (None, Box(520, -37, 120, 90)),
        (Extents(left=20), Box(-50, 300, 90, 150)),
    ],
)
def test_outpaint(extend, sel):
    canvas = photo("coffee")
    h, w = canvas.shape[:2]
    plan = plan_job(Mode.OUTPAINT, w, h, sel, extend, 1.0, SD15, BlendSettings())
    e = extend or Extents()
    grown = Box(0, 0, w, h).pad(e.left, e.top, e.right, e.bottom)
    if sel is not None:
        grown = grown.union(sel)
    assert plan.new_canvas == grown
    prepared, layer, composite = run_job(canvas, plan, engine=shifted_engine)
    assert prepared.image.std() > 5  # the new area is pre-filled, not flat
    selected = np.zeros(composite.shape[:2], bool)
    if sel is not None:
        selected = rect_mask(selected.shape, sel, plan.work)
    check_invariants(canvas, plan, layer, composite, selected)
    # Every new pixel is covered, opaque, and offsets are negative where the canvas grew.
    new_area = plan.new_canvas.area - plan.canvas.area
    covered = layer.rect.intersect(plan.new_canvas)
    inside = layer.rect.intersect(plan.canvas)
    assert covered.area - inside.area >= new_area
    if plan.new_canvas.x < 0:
        assert layer.x == plan.new_canvas.x
    if plan.new_canvas.y < 0:
        assert layer.y == plan.new_canvas.y
    # Over the grown canvas (transparent outside the old one) the result is fully opaque.
    region = plan.new_canvas
    base = np.zeros((region.height, region.width, 4), np.uint8)
    base[plan.canvas.slices(region)] = canvas
    result = composite_over(base, layer, region)
    assert (result[..., 3] == 255).all()


def test_whole_canvas_img2img_and_txt2img_are_exact():
    canvas = synthetic(333, 517)
    plan = plan_job(Mode.IMG2IMG, 333, 517, None, None, 0.5, SD15, BlendSettings())
    prepared, layer, composite = run_job(canvas, plan, engine=shifted_engine)
    assert layer.rect == Box(0, 0, 333, 517)
    assert (layer.pixels[..., 3] == 255).all()
    check_invariants(canvas, plan, layer, composite, np.ones((517, 333), bool))
    sel = Box(17, 29, 131, 77)
    tplan = plan_job(Mode.TXT2IMG, 333, 517, sel, None, 1.0, SD15, BlendSettings())
    prepared = prepare_job(tplan, None, None, BlendSettings())
    generated = np.random.default_rng(0).integers(0, 256, prepared.image.shape, dtype=np.uint8)
    layer = finish_job(prepared, generated)
    assert layer.rect == sel and (layer.pixels[..., 3] == 255).all()


def test_colour_match_removes_vae_shift():
    canvas = photo("astronaut")
    sel = Box(200, 220, 90, 70)
    plan = plan_job(Mode.INPAINT, 512, 512, sel, None, 1.0, SD15, BlendSettings())
    errors = {}
    for match in (True, False):
        _, layer, composite = run_job(canvas, plan, settings=BlendSettings(colour_match=match), engine=shifted_engine)
        original = work_original(canvas, plan)
        alpha = np.zeros(composite.shape[:2], np.uint8)
        alpha[layer.rect.slices(plan.work)] = layer.pixels[..., 3]
        band = (alpha > 0) & ~rect_mask(alpha.shape, sel, plan.work)
        # The colour bias (not the engine's noise) in the blend band around the selection.
        bias = (composite[band][:, :3].astype(float) - original[band][:, :3]).mean(axis=0)
        errors[match] = np.abs(bias).sum()
    assert errors[False] > 3
    assert errors[True] < 0.4 * errors[False]


def test_16k_canvas_without_allocating_it():
    side = 16384
    for sel in (Box(16384 - 301, 16384 - 257, 301, 257), Box(8191, 5, 1, 1), Box(0, 16000, 16384, 384)):
        plan = plan_job(Mode.INPAINT, side, side, sel, None, 1.0, SDXL, BlendSettings())
        assert plan.upload.area < 40_000_000
        upload = synthetic(plan.upload.width, plan.upload.height)  # only what the host would send
        prepared = prepare_job(plan, upload, None, BlendSettings())
        layer, composite = finish_job_with_composite(prepared, shifted_engine(prepared))
        assert layer.rect.contains(sel)
        assert plan.canvas.contains(layer.rect)
        placed = composite_over(upload, layer, plan.upload)
        assert np.array_equal(placed, composite)
    out = plan_job(Mode.OUTPAINT, side, side, None, Extents(left=64, bottom=40), 1.0, SDXL, BlendSettings())
    assert out.new_canvas == Box(-64, 0, side + 64, side + 40)
