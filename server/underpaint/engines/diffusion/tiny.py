"""Tiny random-weight Stable Diffusion models, built in code with no download.

They exist so that the whole stack (tests, plugins, the ``tiny-random`` built-in model) can run on any
machine without weights. They draw noise. Shapes and costs behave like the real families: the VAE has
four blocks, so its scale factor is 8 as in SD1.5/SDXL.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from diffusers import (
    AutoencoderKL,
    EulerDiscreteScheduler,
    StableDiffusionInpaintPipeline,
    StableDiffusionXLInpaintPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

TOKENIZER_MAX_LENGTH = 77


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable character table (the base alphabet of the vocab)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs), strict=True))


def write_tokenizer(folder: Path) -> Path:
    """Write a byte-level CLIP tokenizer (no merges) that loads offline; returns ``folder``.

    Without ``model_max_length`` the pipeline would pad to ~1e30 tokens, so it is always written.
    Specials come last so that ``<|endoftext|>`` has the highest id, as in real CLIP.
    """
    folder.mkdir(parents=True, exist_ok=True)
    chars = list(_bytes_to_unicode().values())
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    config = {
        "model_max_length": TOKENIZER_MAX_LENGTH,
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "tokenizer_class": "CLIPTokenizer",
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return folder


def _text_config(vocab_size: int, hidden_size: int = 32, **extra: Any) -> CLIPTextConfig:
    # bos/eos/pad ids match write_tokenizer(): 512 byte chars, 256 with </w>... then the two specials.
    return CLIPTextConfig(
        bos_token_id=512,
        eos_token_id=513,
        pad_token_id=513,
        hidden_size=hidden_size,
        intermediate_size=37,
        layer_norm_eps=1e-5,
        num_attention_heads=4,
        num_hidden_layers=5,
        vocab_size=vocab_size,
        max_position_embeddings=TOKENIZER_MAX_LENGTH,
        **extra,
    )


def _vae() -> AutoencoderKL:
    return AutoencoderKL(
        block_out_channels=[8, 16, 32, 32],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4,
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=8,
        sample_size=128,
    )


def _scheduler() -> EulerDiscreteScheduler:
    return EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1)


def _unet(in_channels: int, **family: Any) -> UNet2DConditionModel:
    """The tiny two-block UNet both families share; ``family`` adds what SD1.5 or SDXL needs."""
    return UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=2,
        sample_size=64,
        in_channels=in_channels,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        **family,
    )


def build_sd15(tokenizer_dir: Path, in_channels: int = 4, seed: int = 0) -> StableDiffusionInpaintPipeline:
    """An SD1.5-shaped pipeline with random weights; ``in_channels=9`` makes a dedicated inpaint UNet."""
    torch.manual_seed(seed)
    unet = _unet(in_channels, cross_attention_dim=32)
    vae = _vae()
    text_encoder = CLIPTextModel(_text_config(1000))
    tokenizer = CLIPTokenizer.from_pretrained(str(tokenizer_dir), model_max_length=TOKENIZER_MAX_LENGTH)
    return StableDiffusionInpaintPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def build_sdxl(tokenizer_dir: Path, in_channels: int = 4, seed: int = 0) -> StableDiffusionXLInpaintPipeline:
    """An SDXL-shaped pipeline (two text encoders, text_time embedding) with random weights."""
    torch.manual_seed(seed)
    unet = _unet(
        in_channels,
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 2),
        projection_class_embeddings_input_dim=80,  # 6 * 8 time ids + 32 pooled text
        cross_attention_dim=80,  # 32 + 48: both encoders' hidden states side by side
    )
    vae = _vae()
    text_encoder = CLIPTextModel(_text_config(1000))
    # The second encoder must be wider than the first, as in real SDXL (768 vs 1280): diffusers'
    # single-file loader tells the two apart by their width.
    text_encoder_2 = CLIPTextModelWithProjection(_text_config(1000, hidden_size=48, projection_dim=32))
    tokenizer = CLIPTokenizer.from_pretrained(str(tokenizer_dir), model_max_length=TOKENIZER_MAX_LENGTH)
    tokenizer_2 = CLIPTokenizer.from_pretrained(str(tokenizer_dir), model_max_length=TOKENIZER_MAX_LENGTH)
    return StableDiffusionXLInpaintPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        unet=unet,
        scheduler=_scheduler(),
        requires_aesthetics_score=False,
        force_zeros_for_empty_prompt=True,
    )


def save_config_folder(pipe: Any, folder: Path) -> Path:
    """Save only the configs and tokenizer of ``pipe`` (no weights): what ``from_single_file(config=)`` reads."""
    pipe.save_config(str(folder))
    for name in pipe.components:
        component = getattr(pipe, name)
        if component is None:
            continue
        sub = folder / name
        sub.mkdir(parents=True, exist_ok=True)
        if hasattr(component, "save_vocabulary"):
            component.save_pretrained(str(sub))
        elif hasattr(component, "save_config"):
            component.save_config(str(sub))
        elif hasattr(component, "config") and hasattr(component.config, "to_json_file"):
            component.config.to_json_file(str(sub / "config.json"))
    return folder


# --- control layers and references (issue 18): tiny ControlNet, IP-Adapter and depth model ----------------


def build_controlnet(unet: Any, seed: int = 0) -> Any:
    """A ControlNet made from ``unet``'s config, every weight random.

    A fresh ControlNet's zero convolutions make it a no-op until trained; random ones make it act, so
    tests can see that a control changes the result.
    """
    from diffusers import ControlNetModel

    torch.manual_seed(seed)
    controlnet = ControlNetModel.from_unet(
        unet, conditioning_embedding_out_channels=(8, 8, 16, 16), load_weights_from_unet=False
    )
    with torch.no_grad():
        for module in [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block]:
            torch.nn.init.normal_(module.weight, std=0.5)
        torch.nn.init.normal_(controlnet.controlnet_cond_embedding.conv_out.weight, std=0.5)
    return controlnet


IMAGE_EMBED_DIM = 32


def build_image_encoder(seed: int = 0) -> Any:
    """A tiny CLIP vision tower with projection, as IP-Adapter's ``image_encoder`` folder holds."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    config = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=37,
        projection_dim=IMAGE_EMBED_DIM,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=32,
        patch_size=8,
    )
    return CLIPVisionModelWithProjection(config)


def ip_adapter_state_dict(unet: Any, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random IP-Adapter weights for ``unet`` in the flat safetensors layout of h94/IP-Adapter
    (``image_proj.*`` and ``ip_adapter.<n>.to_k_ip.weight``, n = 1, 3, 5... per cross-attention)."""
    generator = torch.Generator().manual_seed(seed)
    cross = unet.config.cross_attention_dim
    channels = list(unet.config.block_out_channels)
    weights = {
        "image_proj.proj.weight": torch.randn(cross * 4, IMAGE_EMBED_DIM, generator=generator) * 0.2,
        "image_proj.proj.bias": torch.zeros(cross * 4),
        "image_proj.norm.weight": torch.ones(cross),
        "image_proj.norm.bias": torch.zeros(cross),
    }
    key_id = 1
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        if name.startswith("mid_block"):
            hidden = channels[-1]
        elif name.startswith("up_blocks"):
            hidden = list(reversed(channels))[int(name[len("up_blocks.")])]
        else:
            hidden = channels[int(name[len("down_blocks.")])]
        for which in ("to_k_ip", "to_v_ip"):
            weights[f"ip_adapter.{key_id}.{which}.weight"] = torch.randn(hidden, cross, generator=generator) * 0.5
        key_id += 2
    return weights


def save_ip_adapter(unet: Any, folder: Path, weight_name: str, seed: int = 0) -> Path:
    """Write a tiny IP-Adapter as h94/IP-Adapter lays one out: ``folder/<weight_name>`` beside
    ``folder/image_encoder/``; returns the weights file."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / weight_name
    save_file({k: v.contiguous() for k, v in ip_adapter_state_dict(unet, seed).items()}, str(path))
    build_image_encoder(seed).save_pretrained(str(folder / "image_encoder"), safe_serialization=True)
    return path


def build_depth_model(seed: int = 0) -> tuple[Any, Any]:
    """A tiny Depth Anything (DINOv2 backbone) with its image processor, random weights."""
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config, DPTImageProcessor

    torch.manual_seed(seed)
    backbone_options: dict[str, Any] = dict(
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=37,
        image_size=56,
        patch_size=14,
        out_indices=[1, 2, 3, 4],
        apply_layernorm=True,
        reshape_hidden_states=False,
    )
    backbone = Dinov2Config(**backbone_options)
    config = DepthAnythingConfig(
        backbone_config=backbone,
        reassemble_hidden_size=32,
        patch_size=14,
        neck_hidden_sizes=[8, 16, 32, 32],
        fusion_hidden_size=16,
        head_hidden_size=8,
    )
    model = DepthAnythingForDepthEstimation(config)
    processor = DPTImageProcessor(
        do_resize=True,
        size={"height": 56, "width": 56},
        keep_aspect_ratio=True,
        ensure_multiple_of=14,
        do_normalize=True,
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
    )
    return model, processor


def build_live_decoder(seed: int = 0) -> Any:
    """A tiny random ``AutoencoderTiny`` (TAESD's shape, tiny-random's 4 latent channels, scale factor 8):
    the ``tiny-random`` fast live decoder."""
    from diffusers import AutoencoderTiny

    torch.manual_seed(seed)
    return AutoencoderTiny(
        encoder_block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8),
        num_encoder_blocks=(1, 1, 1, 1),
        num_decoder_blocks=(1, 1, 1, 1),
        latent_channels=4,
    )
