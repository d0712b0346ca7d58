"""Control layers at model resolution: the same crop and scale as the job's own image.

A control layer is read by the host over ``control_region(plan)`` (the work area inside the canvas),
so it lines up with the canvas pixel for pixel; here it is placed in the work crop (transparent where
an outpaint reaches past the canvas) and scaled exactly like the image the model sees.
"""

from __future__ import annotations

import numpy as np

from underpaint.canvas.geometry import Box
from underpaint.canvas.plan import JobPlan
from underpaint.canvas.resize import resize_exact


def control_region(plan: JobPlan) -> Box:
    """Where a control layer is read: ``plan.work`` clipped to the original canvas."""
    return plan.work.intersect(plan.canvas)


def control_at_model_size(plan: JobPlan, rgba: np.ndarray) -> np.ndarray:
    """The control layer (RGBA uint8 of ``control_region(plan)``) as RGBA at model size."""
    region = control_region(plan)
    if region == plan.work:
        crop = rgba
    else:
        crop = np.zeros((plan.work.height, plan.work.width, 4), np.uint8)
        crop[region.slices(plan.work)] = rgba
    return resize_exact(crop, plan.model_width, plan.model_height)
