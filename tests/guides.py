"""Tiny random control models, reference adapters and a depth model, saved the ways users have them.

Built in code (``underpaint.engines.diffusion.tiny``) and written to disk, so tests load them through
the daemon's own paths: a diffusers folder, a single ``.safetensors`` with its ``.config`` sidecar, an
IP-Adapter file with ``image_encoder/`` beside it, a transformers depth model folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from safetensors.torch import save_file

from underpaint.engines.diffusion import tiny


@dataclass(frozen=True)
class TinyGuides:
    canny_folder: Path
    """An SD1.5-family ControlNet as a diffusers folder."""
    scribble_file: Path
    """An SD1.5-family ControlNet as one .safetensors (diffusers keys) with ``<stem>.config/`` beside it."""
    sdxl_folder: Path
    """An SDXL-family ControlNet folder (text_time embedding)."""
    adapter_sd15: Path
    adapter_sdxl: Path
    depth_folder: Path

    def control_sources(self) -> list[str]:
        return [
            f"canny={self.canny_folder}",
            f"scribble={self.scribble_file}",
            f"depth={self.canny_folder}",
            f"canny={self.sdxl_folder}",
            f"depth={self.sdxl_folder}",
        ]

    def adapter_sources(self) -> list[str]:
        return [str(self.adapter_sd15), f"{self.adapter_sdxl}#family=sdxl"]


def build_guides(root: Path) -> TinyGuides:
    """Write every tiny guide model under ``root`` (a few MB, a few seconds)."""
    tok = tiny.write_tokenizer(root / "tokenizer")
    sd15_unet = tiny.build_sd15(tok).unet
    sdxl_unet = tiny.build_sdxl(tok).unet
    canny = root / "controlnet-canny"
    tiny.build_controlnet(sd15_unet, seed=11).save_pretrained(str(canny), safe_serialization=True)
    scribble = tiny.build_controlnet(sd15_unet, seed=12)
    scribble_file = root / "files" / "control-scribble.safetensors"
    scribble.save_config(str(scribble_file.with_name("control-scribble.config")))
    save_file({k: v.contiguous() for k, v in scribble.state_dict().items()}, str(scribble_file))
    sdxl = root / "controlnet-sdxl"
    tiny.build_controlnet(sdxl_unet, seed=13).save_pretrained(str(sdxl), safe_serialization=True)
    adapter_sd15 = tiny.save_ip_adapter(sd15_unet, root / "ip-adapter" / "models", "ip-adapter_tiny.safetensors")
    adapter_sdxl = tiny.save_ip_adapter(sdxl_unet, root / "ip-adapter" / "sdxl", "ip-adapter_tiny_xl.safetensors")
    model, processor = tiny.build_depth_model()
    depth = root / "depth"
    model.save_pretrained(str(depth), safe_serialization=True)
    processor.save_pretrained(str(depth))
    return TinyGuides(canny, scribble_file, sdxl, adapter_sd15, adapter_sdxl, depth)
