"""diffusers -> original (LDM/"A1111") single-file key layout, the inverse of diffusers' own loader.

Test-only (it ships nowhere): writes test checkpoints that ``from_single_file`` must load exactly
like a downloaded ``.safetensors`` from Civitai. Mirrors ``diffusers/loaders/single_file_utils.py`` (0.42) key by key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

_RESNET = [
    ("norm1", "in_layers.0"),
    ("conv1", "in_layers.2"),
    ("norm2", "out_layers.0"),
    ("conv2", "out_layers.3"),
    ("time_emb_proj", "emb_layers.1"),
    ("conv_shortcut", "skip_connection"),
]
_UNET_FIXED = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
    "add_embedding.linear_1": "label_emb.0.0",
    "add_embedding.linear_2": "label_emb.0.2",
}


def _swap_prefix(key: str, old: str, new: str) -> str | None:
    return new + key[len(old) :] if key.startswith(old) else None


def unet_to_ldm(state: dict[str, torch.Tensor], config: Any) -> dict[str, torch.Tensor]:
    """UNet2DConditionModel state dict -> ``model.diffusion_model.*`` keys."""
    per_block = config.layers_per_block
    n_blocks = len(config.down_block_types)
    prefixes: list[tuple[str, str, bool]] = []  # (diffusers prefix, ldm prefix, is_resnet)
    for b in range(n_blocks):
        for j in range(per_block):
            i = 1 + b * (per_block + 1) + j
            prefixes.append((f"down_blocks.{b}.resnets.{j}.", f"input_blocks.{i}.0.", True))
            prefixes.append((f"down_blocks.{b}.attentions.{j}.", f"input_blocks.{i}.1.", False))
        if b < n_blocks - 1:
            i = 1 + b * (per_block + 1) + per_block
            prefixes.append((f"down_blocks.{b}.downsamplers.0.conv.", f"input_blocks.{i}.0.op.", False))
    prefixes += [
        ("mid_block.resnets.0.", "middle_block.0.", True),
        ("mid_block.attentions.0.", "middle_block.1.", False),
        ("mid_block.resnets.1.", "middle_block.2.", True),
    ]
    for b in range(n_blocks):
        has_attn = any(k.startswith(f"up_blocks.{b}.attentions.") for k in state)
        for j in range(per_block + 1):
            i = b * (per_block + 1) + j
            prefixes.append((f"up_blocks.{b}.resnets.{j}.", f"output_blocks.{i}.0.", True))
            prefixes.append((f"up_blocks.{b}.attentions.{j}.", f"output_blocks.{i}.1.", False))
        last = b * (per_block + 1) + per_block
        up = f"output_blocks.{last}.{2 if has_attn else 1}.conv."
        prefixes.append((f"up_blocks.{b}.upsamplers.0.conv.", up, False))
    prefixes += [(d + ".", ldm + ".", False) for d, ldm in _UNET_FIXED.items()]

    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        for old, new, is_resnet in prefixes:
            rest = _swap_prefix(key, old, "")
            if rest is None:
                continue
            if is_resnet:
                for d, ldm in _RESNET:
                    rest = rest.replace(d, ldm)
            out["model.diffusion_model." + new + rest] = value
            break
        else:
            raise KeyError(f"no LDM name for UNet key {key}")
    return out


def vae_to_ldm(state: dict[str, torch.Tensor], config: Any) -> dict[str, torch.Tensor]:
    """AutoencoderKL state dict -> ``first_stage_model.*`` keys."""
    n_up = len(config.up_block_types)
    prefixes: list[tuple[str, str]] = []
    for i in range(len(config.down_block_types)):
        prefixes.append((f"encoder.down_blocks.{i}.resnets.", f"encoder.down.{i}.block."))
        prefixes.append((f"encoder.down_blocks.{i}.downsamplers.0.conv.", f"encoder.down.{i}.downsample.conv."))
    for i in range(n_up):
        prefixes.append((f"decoder.up_blocks.{i}.resnets.", f"decoder.up.{n_up - 1 - i}.block."))
        prefixes.append((f"decoder.up_blocks.{i}.upsamplers.0.conv.", f"decoder.up.{n_up - 1 - i}.upsample.conv."))
    for part in ("encoder", "decoder"):
        prefixes += [
            (f"{part}.mid_block.resnets.0.", f"{part}.mid.block_1."),
            (f"{part}.mid_block.resnets.1.", f"{part}.mid.block_2."),
            (f"{part}.mid_block.attentions.0.", f"{part}.mid.attn_1."),
            (f"{part}.conv_norm_out.", f"{part}.norm_out."),
        ]
    attn = [("group_norm.", "norm."), ("to_q.", "q."), ("to_k.", "k."), ("to_v.", "v."), ("to_out.0.", "proj_out.")]
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        new_key = key
        for old, new in prefixes:
            swapped = _swap_prefix(key, old, new)
            if swapped is not None:
                new_key = swapped.replace("conv_shortcut", "nin_shortcut")
                if ".mid.attn_1." in new_key:
                    head, tail = new_key.split(".mid.attn_1.")
                    for d, ldm in attn:
                        tail = tail.replace(d, ldm)
                    new_key = f"{head}.mid.attn_1.{tail}"
                break
        out["first_stage_model." + new_key] = value
    return out


def clip_to_ldm(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """transformers CLIPTextModel -> ``<prefix>text_model.*`` (the HF layout the LDM checkpoints keep)."""
    out = {}
    for key, value in state.items():
        if key.endswith("position_ids"):
            continue
        name = key if key.startswith("text_model.") else "text_model." + key
        out[prefix + name] = value
    return out


def open_clip_to_ldm(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """CLIPTextModelWithProjection -> OpenCLIP layout (fused q/k/v ``in_proj``, transposed projection)."""
    state = {k if k.startswith(("text_model.", "text_projection")) else "text_model." + k: v for k, v in state.items()}
    out: dict[str, torch.Tensor] = {
        prefix + "positional_embedding": state["text_model.embeddings.position_embedding.weight"],
        prefix + "token_embedding.weight": state["text_model.embeddings.token_embedding.weight"],
        prefix + "ln_final.weight": state["text_model.final_layer_norm.weight"],
        prefix + "ln_final.bias": state["text_model.final_layer_norm.bias"],
        prefix + "text_projection": state["text_projection.weight"].T.contiguous(),
    }
    layer_ids = {int(k.split(".")[3]) for k in state if k.startswith("text_model.encoder.layers.")}
    for i in layer_ids:
        src = f"text_model.encoder.layers.{i}."
        dst = f"{prefix}transformer.resblocks.{i}."
        for kind in ("weight", "bias"):
            q, k, v = (state[f"{src}self_attn.{p}_proj.{kind}"] for p in "qkv")
            out[f"{dst}attn.in_proj_{kind}"] = torch.cat([q, k, v], dim=0)
            out[f"{dst}attn.out_proj.{kind}"] = state[f"{src}self_attn.out_proj.{kind}"]
            out[f"{dst}ln_1.{kind}"] = state[f"{src}layer_norm1.{kind}"]
            out[f"{dst}ln_2.{kind}"] = state[f"{src}layer_norm2.{kind}"]
            out[f"{dst}mlp.c_fc.{kind}"] = state[f"{src}mlp.fc1.{kind}"]
            out[f"{dst}mlp.c_proj.{kind}"] = state[f"{src}mlp.fc2.{kind}"]
    return out


def pipeline_to_ldm_state_dict(pipe: Any) -> dict[str, torch.Tensor]:
    """One flat state dict in the original SD1.x / SDXL single-file layout."""
    state = unet_to_ldm(pipe.unet.state_dict(), pipe.unet.config)
    state.update(vae_to_ldm(pipe.vae.state_dict(), pipe.vae.config))
    if getattr(pipe, "text_encoder_2", None) is not None:
        state.update(clip_to_ldm(pipe.text_encoder.state_dict(), "conditioner.embedders.0.transformer."))
        state.update(open_clip_to_ldm(pipe.text_encoder_2.state_dict(), "conditioner.embedders.1.model."))
    else:
        state.update(clip_to_ldm(pipe.text_encoder.state_dict(), "cond_stage_model.transformer."))
    return state


def save_single_file(pipe: Any, path: Path, metadata: dict[str, str] | None = None) -> Path:
    """Write ``pipe`` as one original-layout (LDM) .safetensors checkpoint, as A1111/Civitai ship them.

    ``metadata`` goes into the safetensors header (``__metadata__``), e.g. ``modelspec.title``.
    """
    from safetensors.torch import save_file

    state = {k: v.contiguous() for k, v in pipeline_to_ldm_state_dict(pipe).items()}
    save_file(state, str(path), metadata=metadata)
    return path
