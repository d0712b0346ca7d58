"""The canvas pipeline: selection -> masks -> context crop -> model size -> pre-fill -> layer.

Every engine and every host goes through here, so placement, seams and "nothing outside the
selection changes" are solved once. Pure numpy / OpenCV; no torch.
"""

from underpaint.canvas.composite import PixelLayer, composite_over, over
from underpaint.canvas.fill import content_aware_fill
from underpaint.canvas.geometry import Box, Extents
from underpaint.canvas.pipeline import PreparedJob, finish_job, finish_job_with_composite, prepare_job
from underpaint.canvas.plan import BlendSettings, JobPlan, ModelResolution, model_size, plan_job

__all__ = [
    "BlendSettings",
    "Box",
    "Extents",
    "JobPlan",
    "ModelResolution",
    "PixelLayer",
    "PreparedJob",
    "composite_over",
    "content_aware_fill",
    "finish_job",
    "finish_job_with_composite",
    "model_size",
    "over",
    "plan_job",
    "prepare_job",
]
