"""GPU benchmark: bare diffusers vs the underpaint engine, SD1.5 512x512 and SDXL 1024x1024 inpaint.

Prints it/s, end-to-end seconds, time to first preview and peak GPU memory for each. With no model
given it builds the full-size SD1.5 / SDXL architectures with random weights from the configs the
package ships (speed does not depend on the weights' values; no download is possible there).

    python bench/gpu.py                       # cuda, random full-size models, 20 steps
    python bench/gpu.py --sd15 DIR_OR_FILE --sdxl DIR_OR_FILE
    python bench/gpu.py --device cpu --tiny   # smoke test of this script with tiny models
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch

from underpaint.engines.base import GenerationInput, StepProgress
from underpaint.engines.diffusion import DiffusionEngine, tiny
from underpaint.engines.diffusion.registry import CONFIGS_DIR
from underpaint.modes import Mode


def build_random(family: str, dtype: torch.dtype, device: str, tiny_size: bool) -> Any:
    """A random-weight inpaint pipeline: tiny (smoke test) or full-size from the shipped configs."""
    from diffusers import (
        AutoencoderKL,
        StableDiffusionInpaintPipeline,
        StableDiffusionXLInpaintPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    tok_dir = tiny.write_tokenizer(Path(tempfile.mkdtemp()) / "tokenizer")
    if tiny_size:
        small: Any = tiny.build_sdxl(tok_dir) if family == "sdxl" else tiny.build_sd15(tok_dir)
        return small.to(device, dtype)
    folder = CONFIGS_DIR / family
    torch.manual_seed(0)
    with torch.device(device):  # initialise on the GPU: CPU init of 2.6 B parameters takes minutes
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(folder / "unet")).to(dtype)
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(folder / "vae")).to(dtype)
        text: Any = CLIPTextModel(CLIPTextConfig.from_pretrained(folder / "text_encoder"))
        text.to(dtype=dtype)
        tokenizer = CLIPTokenizer.from_pretrained(str(tok_dir), model_max_length=77)
        if family == "sdxl":
            text2: Any = CLIPTextModelWithProjection(CLIPTextConfig.from_pretrained(folder / "text_encoder_2"))
            text2.to(dtype=dtype)
            return StableDiffusionXLInpaintPipeline(
                vae=vae,
                text_encoder=text,
                text_encoder_2=text2,
                tokenizer=tokenizer,
                tokenizer_2=tokenizer,
                unet=unet,
                scheduler=tiny._scheduler(),
                requires_aesthetics_score=False,
            )
        return StableDiffusionInpaintPipeline(
            vae=vae,
            text_encoder=text,
            tokenizer=tokenizer,
            unet=unet,
            scheduler=tiny._scheduler(),
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def reset_peak(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()


def peak_gib(device: str) -> float:
    return torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else float("nan")


def inputs(size: int) -> tuple[np.ndarray, np.ndarray]:
    image = np.random.default_rng(0).integers(0, 255, (size, size, 3), dtype=np.uint8)
    mask = np.zeros((size, size), np.uint8)
    mask[size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 255
    return image, mask


def run_bare(pipe: Any, size: int, steps: int, device: str) -> dict[str, float]:
    """A plain diffusers call with default settings (PIL in, PIL out)."""
    from PIL import Image

    image, mask = inputs(size)
    stamps: list[float] = []

    def on_step(p: Any, i: int, t: Any, kw: dict) -> dict:
        sync(device)
        stamps.append(time.perf_counter())
        return {}

    reset_peak(device)
    sync(device)
    start = time.perf_counter()
    pipe(
        prompt="a red barn in a field",
        image=Image.fromarray(image),
        mask_image=Image.fromarray(mask),
        width=size,
        height=size,
        num_inference_steps=steps,
        strength=1.0,
        generator=torch.Generator("cpu").manual_seed(1),
        callback_on_step_end=on_step,
    )
    sync(device)
    end = time.perf_counter()
    return {
        "it/s": (len(stamps) - 1) / (stamps[-1] - stamps[0]),
        "e2e_s": end - start,
        "first_step_s": stamps[0] - start,
        "peak_gib": peak_gib(device),
    }


def run_engine(engine: DiffusionEngine, model: str, size: int, steps: int, device: str) -> dict[str, float]:
    """The same job through DiffusionEngine.generate, previews on."""
    image, mask = inputs(size)
    job = GenerationInput(
        mode=Mode.INPAINT,
        model=model,
        prompt="a red barn in a field",
        negative_prompt="",
        seed=1,
        steps=steps,
        guidance=7.0,
        strength=1.0,
        width=size,
        height=size,
        image=image,
        mask=mask,
        previews=True,
    )
    stamps: list[float] = []
    first_preview: list[float] = []

    def on_progress(event: StepProgress) -> None:
        sync(device)
        stamps.append(time.perf_counter())
        if event.preview is not None and not first_preview:
            first_preview.append(stamps[-1])

    reset_peak(device)
    sync(device)
    start = time.perf_counter()
    list(engine.generate(job, 1, on_progress, threading.Event()))
    sync(device)
    end = time.perf_counter()
    return {
        "it/s": (len(stamps) - 1) / (stamps[-1] - stamps[0]),
        "e2e_s": end - start,
        "first_preview_s": first_preview[0] - start if first_preview else float("nan"),
        "step_s": (stamps[-1] - stamps[0]) / max(1, len(stamps) - 1),
        "peak_gib": peak_gib(device),
    }


def bench_family(args: argparse.Namespace, family: str, source: str | None, size: int) -> None:
    # Random full-size weights can overflow fp16 (the engine would rightly refuse NaN latents), so they
    # run in bf16, which has fp32's range at fp16's speed; real models run in fp16 as users get them.
    dtype_name = "fp32" if args.device == "cpu" else ("fp16" if source else "bf16")
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype_name]
    engine = DiffusionEngine(
        [source] if source else [], [], device=args.device, offload="none", previews=args.previews, dtype=dtype_name
    )
    start = time.perf_counter()
    if source:
        model = engine.models()[0].id
        run_engine(engine, model, size, 2, args.device)  # loads it
        assert engine.loaded is not None
        pipe = engine.loaded.base
    else:
        model = f"random-{family}"
        pipe = build_random(family, dtype, args.device, args.tiny)
        engine.adopt_pipeline(model, pipe, "sdxl" if family == "sdxl" else "sd1")
    if args.channels_last:
        pipe.unet.to(memory_format=torch.channels_last)
    if args.compile:
        pipe.unet = torch.compile(pipe.unet)
    print(
        f"\n== {family} inpaint {size}x{size}, {args.steps} steps, {args.device} {dtype} "
        f"(setup {time.perf_counter() - start:.1f} s, source {source or 'random weights'})"
    )
    for _ in range(args.warmup):
        run_bare(pipe, size, min(args.steps, 4), args.device)
        run_engine(engine, model, size, min(args.steps, 4), args.device)
    bare = run_bare(pipe, size, args.steps, args.device)
    eng = run_engine(engine, model, size, args.steps, args.device)
    print(
        f"bare diffusers: {bare['it/s']:.2f} it/s, end to end {bare['e2e_s']:.2f} s, "
        f"first step done {bare['first_step_s'] * 1000:.0f} ms, peak {bare['peak_gib']:.2f} GiB"
    )
    print(
        f"engine:         {eng['it/s']:.2f} it/s, end to end {eng['e2e_s']:.2f} s, "
        f"first preview {eng['first_preview_s'] * 1000:.0f} ms (one step = {eng['step_s'] * 1000:.0f} ms), "
        f"peak {eng['peak_gib']:.2f} GiB"
    )
    print(f"engine / bare end-to-end ratio: {eng['e2e_s'] / bare['e2e_s']:.3f}")
    # Mode switch on the loaded model: a fresh from_pipe, then a cached one.
    assert engine.loaded is not None
    engine.loaded.pipes.pop("img2img", None)
    t0 = time.perf_counter()
    engine.loaded.pipeline_for("img2img")
    t1 = time.perf_counter()
    engine.loaded.pipeline_for("inpaint")
    t2 = time.perf_counter()
    print(f"mode switch: first from_pipe {(t1 - t0) * 1000:.1f} ms, cached {(t2 - t1) * 1000:.2f} ms")
    engine.close()
    del pipe
    if args.device.startswith("cuda"):
        torch.cuda.empty_cache()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N, mps or cpu")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--sd15", help="SD1.5 model (diffusers folder or .safetensors); default: random weights")
    parser.add_argument("--sdxl", help="SDXL model (diffusers folder or .safetensors); default: random weights")
    parser.add_argument("--skip-sdxl", action="store_true")
    parser.add_argument("--tiny", action="store_true", help="tiny random models at 128 px, 4 steps (smoke test)")
    parser.add_argument("--previews", default="linear", help="engine preview setting (linear, taesd, none...)")
    parser.add_argument("--channels-last", action="store_true", help="UNet in channels_last (both paths)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the UNet (both paths)")
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args()
    if args.tiny:
        args.steps = min(args.steps, 4)
    if args.device.startswith("cuda"):
        print(f"GPU: {torch.cuda.get_device_name()} torch {torch.__version__}")
    bench_family(args, "sd15", args.sd15, 128 if args.tiny else 512)
    if not args.skip_sdxl:
        bench_family(args, "sdxl", args.sdxl, 128 if args.tiny else 1024)


if __name__ == "__main__":
    main()
