"""Stable Diffusion 1.x/2.x/SDXL on Hugging Face diffusers.

``DiffusionEngine`` is what the daemon runs; ``list_local_models`` is what ``underpaint models`` prints.
"""

from underpaint.engines.diffusion.engine import DiffusionEngine, RunParams
from underpaint.engines.diffusion.registry import TINY_ID, list_local_models

__all__ = ["TINY_ID", "DiffusionEngine", "RunParams", "list_local_models"]
