"""Tiny random-weight segment models, built in code with no download: ``tiny-random-sam``,
``tiny-random-sam2``, ``tiny-random-clipseg`` (and pairs like ``tiny-random-clipseg+tiny-random-sam``).

They are saved as safetensors folders and loaded back through the same loader as a user's model, so
tests and the plugins run the whole path on any machine. They select noise. SAM keeps its real input
size (1024), so preprocessing, prompt scaling and the embedding cache work as with a real model; its
encoder is far cheaper than a real one's, so what a cached click saves is smaller here than there.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from transformers import (
    CLIPSegConfig,
    CLIPSegForImageSegmentation,
    CLIPSegProcessor,
    CLIPTokenizer,
    Sam2Config,
    Sam2ImageProcessor,
    Sam2Model,
    Sam2Processor,
    SamConfig,
    SamImageProcessor,
    SamModel,
    SamProcessor,
    ViTImageProcessor,
)

from underpaint.engines.diffusion.tiny import TOKENIZER_MAX_LENGTH, write_tokenizer

TINY_SAM = "tiny-random-sam"
TINY_SAM2 = "tiny-random-sam2"
TINY_CLIPSEG = "tiny-random-clipseg"
TINY_IDS = (TINY_SAM, TINY_SAM2, TINY_CLIPSEG)

_FOLDERS: dict[str, Path] = {}


def tiny_folder(name: str) -> Path:
    """The saved folder of a tiny model, built once per process."""
    if name not in _FOLDERS:
        folder = Path(tempfile.mkdtemp(prefix=f"underpaint-{name}-"))
        {TINY_SAM: _save_sam, TINY_SAM2: _save_sam2, TINY_CLIPSEG: _save_clipseg}[name](folder)
        _FOLDERS[name] = folder
    return _FOLDERS[name]


def _save_sam(folder: Path) -> None:
    torch.manual_seed(0)
    config = SamConfig(
        vision_config={
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "mlp_dim": 64,
            "output_channels": 32,
            "global_attn_indexes": [1],
            "window_size": 4,
            "num_pos_feats": 16,
        },
        prompt_encoder_config={"hidden_size": 32, "mask_input_channels": 4},
        mask_decoder_config={
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "mlp_dim": 64,
            "iou_head_hidden_dim": 32,
        },
    )
    SamModel(config).save_pretrained(str(folder))
    SamProcessor(SamImageProcessor()).save_pretrained(str(folder))


def _save_sam2(folder: Path) -> None:
    """SAM 2's Hiera backbone shrunk to four stages of one or two blocks (a global one inside a stage)."""
    torch.manual_seed(0)
    backbone = {
        "model_type": "sam2_hiera_det_model",
        "hidden_size": 8,
        "blocks_per_stage": [1, 1, 2, 1],
        "embed_dim_per_stage": [8, 16, 32, 64],
        "num_attention_heads_per_stage": [1, 1, 2, 2],
        "window_size_per_stage": [8, 4, 4, 2],
        "global_attention_blocks": [3],
        "window_positional_embedding_background_size": [4, 4],
    }
    config = Sam2Config(
        vision_config={"backbone_config": backbone, "backbone_channel_list": [64, 32, 16, 8], "fpn_hidden_size": 32},
        prompt_encoder_config={"hidden_size": 32, "mask_input_channels": 4},
        mask_decoder_config={"hidden_size": 32, "mlp_dim": 64, "num_attention_heads": 2, "iou_head_hidden_dim": 32},
    )
    Sam2Model(config).save_pretrained(str(folder))
    Sam2Processor(Sam2ImageProcessor()).save_pretrained(str(folder))


def _save_clipseg(folder: Path) -> None:
    torch.manual_seed(0)
    text = {
        "bos_token_id": 512,
        "eos_token_id": 513,
        "pad_token_id": 513,
        "hidden_size": 32,
        "intermediate_size": 37,
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "vocab_size": 1000,
        "max_position_embeddings": TOKENIZER_MAX_LENGTH,
    }
    vision = {
        "hidden_size": 32,
        "intermediate_size": 37,
        "num_attention_heads": 4,
        "num_hidden_layers": 3,
        "image_size": 64,
        "patch_size": 8,
    }
    config = CLIPSegConfig(
        text_config=text,
        vision_config=vision,
        projection_dim=16,
        extract_layers=[1, 2],
        reduce_dim=16,
        decoder_num_attention_heads=2,
        decoder_intermediate_size=32,
    )
    CLIPSegForImageSegmentation(config).save_pretrained(str(folder))
    tokenizer = CLIPTokenizer.from_pretrained(str(write_tokenizer(folder / "tokenizer")))
    images = ViTImageProcessor(size={"height": 64, "width": 64}, do_resize=True, do_normalize=True)
    CLIPSegProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(str(folder))
