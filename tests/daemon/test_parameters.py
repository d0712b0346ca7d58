"""Parameters that travel: every saved PNG carries A1111's `parameters` text and our JSON, and
`underpaint generate --from` rebuilds a job from ours, A1111's or ComfyUI's PNGs."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from tests.daemon.conftest import layer_array, submit_job, wait_until
from underpaint.daemon.server import DaemonThread
from underpaint_protocol import pnginfo

A1111_SAMPLE = (
    "masterpiece, a lighthouse on a cliff, <lora:film:0.7>\n"
    "golden hour\n"
    "Negative prompt: blurry, lowres\n"
    "watermark\n"
    "Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 1234567890, Size: 832x1216, "
    'Model hash: 31e35c80fc, Model: sd_xl_base_1.0, Denoising strength: 0.45, Lora hashes: "film: 3a2b, x: 9", '
    "Version: v1.10.1"
)

COMFY_GRAPH = {
    "3": {
        "class_type": "KSampler",
        "inputs": {
            "seed": 42,
            "steps": 20,
            "cfg": 7.5,
            "sampler_name": "euler_ancestral",
            "scheduler": "normal",
            "denoise": 1.0,
            "model": ["4", 0],
            "positive": ["6", 0],
            "negative": ["7", 0],
            "latent_image": ["5", 0],
        },
    },
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "dreamshaper_8.safetensors"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 640, "height": 448, "batch_size": 1}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": ["10", 0], "clip": ["4", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "ugly, text", "clip": ["4", 1]}},
    "10": {"class_type": "PrimitiveString", "inputs": {"value": "a red fox in snow"}},
}


def png_with(texts: dict[str, str], zip_text: bool = False) -> bytes:
    info = PngImagePlugin.PngInfo()
    for key, value in texts.items():
        info.add_text(key, value, zip=zip_text)
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 20, 30)).save(buffer, "PNG", pnginfo=info)
    return buffer.getvalue()


# ---------------------------------------------------------------- the format, without a daemon


@pytest.mark.parametrize("zip_text", [False, True])
def test_our_chunk_reader_reads_what_pillow_writes(zip_text: bool) -> None:
    texts = {"parameters": "a café ☕\nSteps: 3, Seed: 1, CFG scale: 2", "plain": "latin-1 only"}
    assert pnginfo.read_text(png_with(texts, zip_text)) == texts


def test_pillow_reads_the_chunks_we_write() -> None:
    buffer = io.BytesIO()
    Image.new("RGBA", (5, 4), (1, 2, 3, 4)).save(buffer, "PNG")
    texts = {"parameters": "über ☕ prompt", "underpaint": json.dumps({"seed": 5})}
    with Image.open(io.BytesIO(pnginfo.with_text(buffer.getvalue(), texts))) as image:
        image.load()
        assert image.text == texts
        assert np.array_equal(np.asarray(image), np.full((4, 5, 4), (1, 2, 3, 4), np.uint8))


def test_a1111_text_parses_into_prompt_negative_and_settings() -> None:
    parsed = pnginfo.parse_a1111(A1111_SAMPLE)
    assert parsed["prompt"] == "masterpiece, a lighthouse on a cliff, <lora:film:0.7>\ngolden hour"
    assert parsed["negative_prompt"] == "blurry, lowres\nwatermark"
    settings = parsed["settings"]
    assert settings["Steps"] == "28" and settings["Sampler"] == "DPM++ 2M" and settings["CFG scale"] == "6.5"
    assert settings["Lora hashes"] == "film: 3a2b, x: 9"  # a quoted value keeps its commas
    found = pnginfo.read_parameters(png_with({"parameters": A1111_SAMPLE}))
    assert found is not None and found["source"] == "a1111"
    assert (found["seed"], found["steps"], found["guidance"], found["strength"]) == (1234567890, 28, 6.5, 0.45)
    assert (found["width"], found["height"], found["model"]) == (832, 1216, "sd_xl_base_1.0")


def test_a_prompt_without_settings_is_all_prompt() -> None:
    parsed = pnginfo.parse_a1111("just a prompt, with: a colon")
    assert parsed == {"prompt": "just a prompt, with: a colon", "negative_prompt": "", "settings": {}}


def test_comfyui_graph_gives_prompt_negative_and_sampler_settings() -> None:
    png = png_with({"prompt": json.dumps(COMFY_GRAPH), "workflow": "{}"})
    found = pnginfo.read_parameters(png)
    assert found is not None and found["source"] == "comfyui"
    assert found["prompt"] == "a red fox in snow"  # through a wired string primitive
    assert found["negative_prompt"] == "ugly, text"
    assert (found["seed"], found["steps"], found["guidance"], found["sampler"]) == (42, 20, 7.5, "euler_ancestral")
    assert (found["width"], found["height"], found["strength"]) == (640, 448, None)
    assert found["model"] == "dreamshaper_8.safetensors"


def test_a_png_without_parameters_and_a_non_png() -> None:
    assert pnginfo.read_parameters(png_with({"Software": "GIMP"})) is None
    with pytest.raises(pnginfo.PngInfoError):
        pnginfo.read_text(b"GIF89a....")


def test_a_deflate_bomb_is_not_inflated() -> None:
    import zlib

    bomb = zlib.compress(b"a" * (pnginfo.MAX_TEXT_BYTES + 10), 9)
    chunk = pnginfo._chunk(b"zTXt", b"parameters\0\0" + bomb)  # a hand-made hostile chunk
    buffer = io.BytesIO()
    Image.new("RGB", (2, 2)).save(buffer, "PNG")
    png = buffer.getvalue()
    assert pnginfo.read_text(png[:33] + chunk + png[33:]) == {}


# ---------------------------------------------------------------- through a real daemon


def saved_png(output: str) -> Path:
    path = Path(output)
    wait_until(lambda: path.is_file(), 30, lambda: f"{path} was never written")
    return path


def test_saved_png_carries_a1111_parameters_and_our_json(diffusion_client) -> None:
    connected, events = diffusion_client
    job = {
        "mode": "txt2img",
        "prompt": "a café at dusk ☕",
        "negative_prompt": "blurry, text",
        "steps": 3,
        "guidance": 4.5,
        "seed": 31,
        "canvas": {"width": 64, "height": 48},
    }
    accepted = submit_job(connected, job, None)
    assert events.wait_outcome(accepted["job_id"], timeout=120).type == "finished"
    (result,) = events.of(accepted["job_id"], "result")
    path = saved_png(result.message["output"])
    with Image.open(path) as image:
        image.load()
        text = image.text
        assert np.array_equal(np.asarray(image.convert("RGBA")), layer_array(result))
    parsed = pnginfo.parse_a1111(text["parameters"])
    assert parsed["prompt"] == "a café at dusk ☕" and parsed["negative_prompt"] == "blurry, text"
    settings = parsed["settings"]
    engine = result.message["params"]["engine_params"]
    assert settings["Steps"] == "3" and settings["CFG scale"] == "4.5" and settings["Seed"] == "31"
    assert settings["Size"] == f"{engine['width']}x{engine['height']}"
    assert settings["Model"] == "tiny-random"
    assert settings["Sampler"] == pnginfo.SAMPLER_NAMES.get(engine["scheduler"], engine["scheduler"])
    assert "Denoising strength" not in settings  # txt2img has none
    assert json.loads(text["underpaint"]) == result.message["params"]
    found = pnginfo.read_parameters(path.read_bytes())
    assert found is not None and found["source"] == "underpaint" and found["seed"] == 31


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "underpaint", *args], capture_output=True, text=True, timeout=300, check=False
    )


def test_generate_from_our_png_makes_the_same_image(
    diffusion_client, diffusion_daemon: DaemonThread, tmp_path: Path
) -> None:
    connected, events = diffusion_client
    job = {"mode": "txt2img", "prompt": "round trip", "steps": 2, "seed": 7, "canvas": {"width": 64, "height": 64}}
    accepted = submit_job(connected, job, None)
    assert events.wait_outcome(accepted["job_id"], timeout=120).type == "finished"
    (result,) = events.of(accepted["job_id"], "result")
    source = saved_png(result.message["output"])
    out = tmp_path / "again.png"
    run = run_cli("generate", "--from", str(source), "--server", diffusion_daemon.url, "--out", str(out))
    assert run.returncode == 0, run.stderr
    with Image.open(out) as again:
        assert np.array_equal(np.asarray(again.convert("RGBA")), layer_array(result))
    # an override wins over the PNG: another seed, another image
    other = tmp_path / "other.png"
    run = run_cli(
        "generate", "--from", str(source), "--seed", "8", "--server", diffusion_daemon.url, "--out", str(other)
    )
    assert run.returncode == 0, run.stderr
    with Image.open(other) as changed:
        assert not np.array_equal(np.asarray(changed.convert("RGBA")), layer_array(result))


def test_generate_from_an_a1111_png_uses_its_settings(diffusion_daemon: DaemonThread, tmp_path: Path) -> None:
    text = (
        "a small boat\nNegative prompt: fog\nSteps: 2, Sampler: Euler a, CFG scale: 3, Seed: 5, Size: 64x40, Model: x"
    )
    source = tmp_path / "a1111.png"
    source.write_bytes(png_with({"parameters": text}))
    out = tmp_path / "out.png"
    run = run_cli("generate", "--from", str(source), "--server", diffusion_daemon.url, "--out", str(out))
    assert run.returncode == 0, run.stderr
    assert "no model 'x'" in run.stderr  # an A1111 model name this daemon lacks: its default is used, said so
    with Image.open(out) as made:
        assert made.size == (64, 40)
    outputs = diffusion_daemon.daemon.config.outputs
    assert outputs is not None
    sidecars = [json.loads(path.read_text()) for path in outputs.glob("*/*.json")]
    (made_by,) = [s["params"] for s in sidecars if s["params"]["prompt"] == "a small boat"]
    assert made_by["negative_prompt"] == "fog" and made_by["seed"] == 5
    assert (made_by["steps"], made_by["guidance"], made_by["mode"]) == (2, 3.0, "txt2img")


def test_generate_from_a_png_without_parameters_says_so(tmp_path: Path) -> None:
    source = tmp_path / "plain.png"
    source.write_bytes(png_with({}))
    run = run_cli("generate", "--from", str(source), "--out", str(tmp_path / "x.png"))
    assert run.returncode == 1
    assert "carries no generation parameters" in run.stderr
