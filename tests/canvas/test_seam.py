"""The seam metric on real photographs, with the classical engine (content_aware_fill) doing the work.

Threshold 1.10, reasoning: the metric (helpers.seam_ratio) is the gradient energy on the edit's
boundaries divided by what the untouched photo had on the same pixels. An invisible edit scores
about 1 (texture continues, nothing added); a seam is a step, which adds gradient energy on exactly
those pixels. Our pipeline measured 0.79-0.99 on these cases when this test was written; a hard paste of
colour-shifted pixels (what a pipeline without feathering and colour matching produces) measured
1.12-4.0 and must stay above the threshold, which proves the metric can fail. 1.10 therefore allows
at most 10% more edge energy than the photo had at the boundary, and sits between the two.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.canvas.helpers import (
    CLASSICAL,
    PHOTOS,
    SD15,
    classical_engine,
    photo,
    rect_mask,
    run_job,
    seam_ratio,
    shifted_engine,
    work_original,
)
from underpaint.canvas import BlendSettings, Box, plan_job
from underpaint.modes import Mode

THRESHOLD = 1.10


def selections(w: int, h: int) -> list[Box]:
    return [
        Box(w // 3 + 1, h // 4 + 3, w // 4 + 1, h // 5 + 2),
        Box(w // 8, h // 2, w // 3, h // 3),
        Box(0, 0, w // 5, h // 4),
    ]


def measure(name: str, sel: Box, res, engine, settings: BlendSettings) -> float:
    canvas = photo(name)
    h, w = canvas.shape[:2]
    plan = plan_job(Mode.INPAINT, w, h, sel, None, 1.0, res, settings)
    _, layer, composite = run_job(canvas, plan, settings=settings, engine=engine)
    alpha = np.zeros(composite.shape[:2], np.uint8)
    alpha[layer.rect.slices(plan.work)] = layer.pixels[..., 3]
    selected = rect_mask(alpha.shape, sel, plan.work)
    return seam_ratio(work_original(canvas, plan), composite, selected, alpha)


@pytest.mark.parametrize("name", PHOTOS)
@pytest.mark.parametrize("res", [CLASSICAL, SD15])
def test_classical_engine_leaves_no_seam(name, res):
    canvas = photo(name)
    h, w = canvas.shape[:2]
    for sel in selections(w, h):
        assert measure(name, sel, res, classical_engine, BlendSettings()) < THRESHOLD, sel


@pytest.mark.parametrize("name", PHOTOS)
def test_metric_catches_a_hard_paste(name):
    canvas = photo(name)
    h, w = canvas.shape[:2]
    hard = BlendSettings(grow=0, feather=0, blend=0, colour_match=False)
    for sel in selections(w, h):
        assert measure(name, sel, CLASSICAL, shifted_engine, hard) > THRESHOLD, sel
