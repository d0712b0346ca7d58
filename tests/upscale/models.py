"""Tiny random-weight models spandrel detects, saved the way users have them (safetensors, .pth)."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from tests.pickles import Payload


def compact_x2(folder: Path, name: str = "tiny-compact-x2") -> Path:
    """Real-ESRGAN's SRVGGNetCompact, 2x, 8 features (cheap: the tests' workhorse)."""
    from spandrel.architectures.Compact import Compact

    torch.manual_seed(1)
    path = folder / f"{name}.safetensors"
    save_file(Compact(num_feat=8, num_conv=2, upscale=2).state_dict(), str(path))
    return path


def esrgan_x4(folder: Path, name: str = "tiny-esrgan-x4") -> Path:
    """ESRGAN's RRDBNet (the RealESRGAN_x4plus architecture), 4x, one block of 8 filters."""
    from spandrel.architectures.ESRGAN import ESRGAN

    torch.manual_seed(2)
    path = folder / f"{name}.safetensors"
    save_file(ESRGAN(num_filters=8, num_blocks=1, scale=4).state_dict(), str(path))
    return path


def swinir_x2(folder: Path, name: str = "tiny-swinir-x2") -> Path:
    """SwinIR, 2x, one stage of 12 channels."""
    from spandrel.architectures.SwinIR import SwinIR

    torch.manual_seed(3)
    path = folder / f"{name}.safetensors"
    model = SwinIR(
        img_size=16, embed_dim=12, depths=[1], num_heads=[2], window_size=4, upscale=2, upsampler="pixelshuffledirect"
    )
    save_file(model.state_dict(), str(path))
    return path


def restoreformer(folder: Path, name: str = "tiny-restoreformer") -> Path:
    """RestoreFormer (a face restoration architecture whose licence underpaint does not know as
    permissive, so it stands for the non-commercial ones): six levels of 32 channels."""
    from spandrel.architectures.RestoreFormer import RestoreFormer

    torch.manual_seed(4)
    path = folder / f"{name}.safetensors"
    model = RestoreFormer(
        n_embed=16,
        embed_dim=32,
        ch=32,
        out_ch=3,
        ch_mult=(1, 1, 1, 1, 1, 1),
        num_res_blocks=1,
        attn_resolutions=(16,),
        dropout=0.0,
        in_channels=3,
        resolution=512,
        z_channels=32,
        double_z=False,
        enable_mid=True,
        head_size=8,
    )
    save_file(model.state_dict(), str(path))
    return path


def gfpgan(folder: Path, name: str = "random-gfpgan") -> Path:
    """GFPGANv1Clean (GFPGAN 1.3/1.4, Apache-2.0) with random weights. spandrel detects it by two keys
    but builds it at its one full size (512 px, 87M parameters) whatever the file holds, so this is
    the real size, saved as float16 (170 MB instead of 350; spandrel casts it back when it loads)."""
    from spandrel.architectures.GFPGAN import GFPGAN

    torch.manual_seed(5)
    model = GFPGAN(
        out_size=512,
        num_style_feat=512,
        channel_multiplier=2,
        decoder_load_path=None,
        fix_decoder=False,
        num_mlp=8,
        input_is_latent=True,
        different_w=True,
        narrow=1,
        sft_half=True,
    )
    path = folder / f"{name}.safetensors"
    save_file({key: value.half().contiguous() for key, value in model.state_dict().items()}, str(path))
    return path


def malicious_pth(folder: Path, marker: Path, name: str = "RealESRGAN_x4plus", key: str = "conv_first.weight") -> Path:
    """A model-looking ``.pth`` (Real-ESRGAN by default) whose unpickling would run code (write ``marker``)."""
    path = folder / f"{name}.pth"
    torch.save({"params_ema": {key: Payload(marker)}}, path)
    return path
