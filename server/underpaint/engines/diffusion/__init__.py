"""Stable Diffusion 1.x/2.x/SDXL on Hugging Face diffusers.

``DiffusionEngine`` is what the daemon runs; ``list_local_models`` is what ``underpaint models`` prints.

Models: a source is a Hugging Face repo id, a diffusers folder, a single ``.safetensors`` checkpoint or
``tiny-random`` (registry.parse_source). Only safetensors are loaded; pickles (checkpoints and LoRAs)
are listed as refused. ``#lora=<file, folder or repo>`` fuses a LoRA on load (needs ``peft``) and makes
the id ``<model>+<lora name>``. Few-step models (SD/SDXL-Turbo, LCM, SDXL-Lightning, Hyper-SD, as
full models or LoRAs) get their scheduler, guidance and step limits automatically; what decides is, in
order: ``#few_step=lcm|turbo|lightning|hyper|none`` in the source, the LoRA's safetensors metadata then
its name, the model's own description (an LCM scheduler in a diffusers folder; ``modelspec.*`` /
``ss_*`` keys in a single file's ``__metadata__``), then the model's name.

Memory: device.decide_offload and device.decide_vae_tiling are pure functions of free memory, weight
size and output size; the engine feeds them the CUDA driver's free memory (unknown elsewhere, so the
CPU never offloads and tiles only by size).
"""

from underpaint.engines.diffusion.engine import DiffusionEngine, RunParams
from underpaint.engines.diffusion.registry import TINY_ID, list_local_models

__all__ = ["TINY_ID", "DiffusionEngine", "RunParams", "list_local_models"]
