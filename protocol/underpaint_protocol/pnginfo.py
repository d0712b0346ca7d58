"""Generation parameters inside PNG files: written the way the A1111 ecosystem reads them, read back
from ours, A1111's and ComfyUI's.

A PNG is a signature and a list of chunks (length, type, data, CRC-32); text lives in ``tEXt``
(Latin-1), ``zTXt`` (Latin-1, deflated) and ``iTXt`` (UTF-8, optionally deflated) chunks keyed by a
Latin-1 keyword. A1111 stores one ``parameters`` text:

    <prompt lines>
    Negative prompt: <negative lines>
    Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x512, Model: name, Denoising strength: 0.6

(the last line is ``key: value`` pairs; a value holding a comma is JSON-quoted). ComfyUI stores its
graph as JSON in ``prompt`` (node id -> ``{"class_type", "inputs"}``, an input wired to another node
is ``[node_id, output_index]``) and ``workflow``. underpaint writes ``parameters`` and its own JSON
(``underpaint``: every reproduction parameter). Standard library only: the plugins use it too.
"""

from __future__ import annotations

import contextlib
import json
import re
import struct
import zlib
from typing import Any

SIGNATURE = b"\x89PNG\r\n\x1a\n"
OUR_KEY = "underpaint"
A1111_KEY = "parameters"
MAX_TEXT_BYTES = 16 * 1024 * 1024
"""A text chunk larger than this (inflated) is ignored rather than read: a PNG is untrusted input."""

SAMPLER_NAMES = {
    "EulerAncestralDiscreteScheduler": "Euler a",
    "EulerDiscreteScheduler": "Euler",
    "DPMSolverMultistepScheduler": "DPM++ 2M",
    "DPMSolverSinglestepScheduler": "DPM++ 2S",
    "DDIMScheduler": "DDIM",
    "PNDMScheduler": "PLMS",
    "LMSDiscreteScheduler": "LMS",
    "HeunDiscreteScheduler": "Heun",
    "KDPM2DiscreteScheduler": "DPM2",
    "KDPM2AncestralDiscreteScheduler": "DPM2 a",
    "UniPCMultistepScheduler": "UniPC",
    "LCMScheduler": "LCM",
    "TCDScheduler": "TCD",
}
"""diffusers scheduler classes -> the sampler names A1111 users know (others keep the class name)."""

# A1111's own pattern for the last line: `key: value` pairs, a value either JSON-quoted or up to a comma.
_PAIR = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_SIZE = re.compile(r"^(\d+)x(\d+)$")


class PngInfoError(ValueError):
    """The file is not a PNG, or a chunk is damaged."""


# ---------------------------------------------------------------- chunks


def _chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    if not png.startswith(SIGNATURE):
        raise PngInfoError("not a PNG file")
    found: list[tuple[bytes, bytes]] = []
    offset = len(SIGNATURE)
    while offset + 8 <= len(png):
        (length,) = struct.unpack(">I", png[offset : offset + 4])
        kind = png[offset + 4 : offset + 8]
        data = png[offset + 8 : offset + 8 + length]
        if len(data) != length:
            raise PngInfoError(f"the {kind.decode('latin-1')} chunk is cut short")
        found.append((kind, data))
        offset += 12 + length
        if kind == b"IEND":
            break
    return found


def _inflate(data: bytes) -> str | None:
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, MAX_TEXT_BYTES)
    except zlib.error:
        return None
    return None if inflater.unconsumed_tail else out.decode("utf-8", "replace")


def read_text(png: bytes) -> dict[str, str]:
    """Every text chunk of a PNG by keyword (``tEXt``, ``zTXt``, ``iTXt``); damaged ones are skipped."""
    texts: dict[str, str] = {}
    for kind, data in _chunks(png):
        key, sep, rest = data.partition(b"\0")
        if not sep:
            continue
        keyword = key.decode("latin-1")
        value: str | None = None
        if kind == b"tEXt":
            value = rest.decode("latin-1")
        elif kind == b"zTXt" and rest[:1] == b"\0":
            value = _inflate(rest[1:])
        elif kind == b"iTXt" and len(rest) >= 2:
            compressed, method, rest = rest[0], rest[1], rest[2:]
            _language, _, rest = rest.partition(b"\0")
            _translated, _, text = rest.partition(b"\0")
            if not compressed:
                value = text.decode("utf-8", "replace")
            elif method == 0:
                value = _inflate(text)
        if value is not None:
            texts[keyword] = value
    return texts


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def text_chunk(keyword: str, text: str) -> bytes:
    """A ``tEXt`` chunk when the text is Latin-1, else an ``iTXt`` (UTF-8), as Pillow writes them."""
    key = keyword.encode("latin-1")
    try:
        return _chunk(b"tEXt", key + b"\0" + text.encode("latin-1"))
    except UnicodeEncodeError:
        return _chunk(b"iTXt", key + b"\0\0\0\0\0" + text.encode("utf-8"))


def with_text(png: bytes, texts: dict[str, str]) -> bytes:
    """The PNG with text chunks added right after its header (so readers that stop early see them)."""
    if not png.startswith(SIGNATURE):
        raise PngInfoError("not a PNG file")
    header_end = len(SIGNATURE) + 8 + struct.unpack(">I", png[8:12])[0] + 4
    added = b"".join(text_chunk(key, value) for key, value in texts.items())
    return png[:header_end] + added + png[header_end:]


# ---------------------------------------------------------------- A1111 text


def _format_value(value: Any) -> str:
    text = str(value)
    return json.dumps(text, ensure_ascii=False) if ("," in text or ":" in text or '"' in text) else text


def a1111_text(params: dict[str, Any]) -> str:
    """The ``parameters`` text for one result's reproduction params (ours: see runner.reproduction_params)."""
    engine = params.get("engine_params") or {}
    size = params.get("model_size") or {}
    width = engine.get("width") or size.get("width")
    height = engine.get("height") or size.get("height")
    scheduler = engine.get("scheduler")
    pairs: list[tuple[str, Any]] = [
        ("Steps", engine.get("steps", params.get("steps"))),
        ("Sampler", SAMPLER_NAMES.get(scheduler, scheduler) if scheduler else None),
        ("CFG scale", engine.get("guidance", params.get("guidance"))),
        ("Seed", params.get("seed")),
        ("Size", f"{width}x{height}" if width and height else None),
        ("Model", params.get("model")),
        ("Denoising strength", params.get("strength") if params.get("mode") != "txt2img" else None),
        ("Style", params.get("style")),
        ("Mode", params.get("mode")),
        ("Version", f"underpaint {params['underpaint']}" if params.get("underpaint") else None),
    ]
    tags = " ".join(f"<lora:{lora['name']}:{lora['weight']:g}>" for lora in params.get("loras") or ())
    lines = [" ".join(part for part in (str(params.get("prompt", "")), tags) if part)]
    if params.get("negative_prompt"):
        lines.append(f"Negative prompt: {params['negative_prompt']}")
    lines.append(", ".join(f"{key}: {_format_value(value)}" for key, value in pairs if value is not None))
    return "\n".join(lines)


def parse_a1111(text: str) -> dict[str, Any]:
    """A1111's ``parameters`` text -> ``{"prompt", "negative_prompt", "settings": {key: text}}``.

    The last line counts as settings only when it holds at least three ``key: value`` pairs, as A1111
    itself decides."""
    lines = text.strip().split("\n")
    settings: dict[str, str] = {}
    if lines and len(_PAIR.findall(lines[-1])) >= 3:
        for key, value in _PAIR.findall(lines.pop()):
            if value.startswith('"') and value.endswith('"'):
                with contextlib.suppress(ValueError):
                    value = json.loads(value)
            settings[key.strip()] = str(value).strip()
    prompt: list[str] = []
    negative: list[str] = []
    for line in lines:
        if line.startswith("Negative prompt:"):
            negative.append(line[len("Negative prompt:") :].strip())
        elif negative:
            negative.append(line)
        else:
            prompt.append(line)
    return {"prompt": "\n".join(prompt).strip(), "negative_prompt": "\n".join(negative).strip(), "settings": settings}


def _number(text: str | None, kind: type) -> Any:
    if text is None:
        return None
    try:
        return kind(text)
    except ValueError:
        return None


def _from_a1111(text: str) -> dict[str, Any]:
    parsed = parse_a1111(text)
    settings = parsed["settings"]
    size = _SIZE.match(settings.get("Size", ""))
    return {
        "prompt": parsed["prompt"],
        "negative_prompt": parsed["negative_prompt"],
        "seed": _number(settings.get("Seed"), int),
        "steps": _number(settings.get("Steps"), int),
        "guidance": _number(settings.get("CFG scale"), float),
        "strength": _number(settings.get("Denoising strength"), float),
        "sampler": settings.get("Sampler"),
        "model": settings.get("Model"),
        "width": int(size.group(1)) if size else None,
        "height": int(size.group(2)) if size else None,
    }


# ---------------------------------------------------------------- ComfyUI graph


def _text_of(graph: dict[str, Any], link: Any, depth: int = 0) -> str | None:
    """The prompt text a conditioning input leads to: a CLIP text node's ``text`` (or ``text_g``),
    following wires through conditioning nodes and string primitives."""
    if isinstance(link, str):
        return link
    if depth > 16 or not (isinstance(link, list) and link and str(link[0]) in graph):
        return None
    node = graph[str(link[0])]
    inputs = node.get("inputs", {}) if isinstance(node, dict) else {}
    for key in ("text", "text_g", "string", "value"):
        if key in inputs:
            return _text_of(graph, inputs[key], depth + 1)
    for key in ("conditioning", "conditioning_1", "conditioning_to", "positive"):
        if key in inputs:
            return _text_of(graph, inputs[key], depth + 1)
    return None


def _literal(value: Any) -> Any:
    return None if isinstance(value, list) else value


def _from_comfyui(graph_text: str) -> dict[str, Any] | None:
    try:
        graph = json.loads(graph_text)
    except ValueError:
        return None
    if not isinstance(graph, dict):
        return None
    nodes = [node for node in graph.values() if isinstance(node, dict) and isinstance(node.get("inputs"), dict)]
    sampler = next((node for node in nodes if "KSampler" in str(node.get("class_type", ""))), None)
    if sampler is None:
        return None
    inputs = sampler["inputs"]
    loader = next((node for node in nodes if "CheckpointLoader" in str(node.get("class_type", ""))), None)
    latent = next((node for node in nodes if "EmptyLatentImage" in str(node.get("class_type", ""))), None)
    seed = _literal(inputs.get("seed", inputs.get("noise_seed")))
    denoise = _literal(inputs.get("denoise"))
    return {
        "prompt": _text_of(graph, inputs.get("positive")) or "",
        "negative_prompt": _text_of(graph, inputs.get("negative")) or "",
        "seed": int(seed) if isinstance(seed, int | float) else None,
        "steps": _literal(inputs.get("steps")),
        "guidance": _literal(inputs.get("cfg")),
        "strength": float(denoise) if isinstance(denoise, int | float) and denoise < 1 else None,
        "sampler": _literal(inputs.get("sampler_name")),
        "model": _literal(loader["inputs"].get("ckpt_name")) if loader else None,
        "width": _literal(latent["inputs"].get("width")) if latent else None,
        "height": _literal(latent["inputs"].get("height")) if latent else None,
    }


# ---------------------------------------------------------------- one entry point


def read_parameters(png: bytes) -> dict[str, Any] | None:
    """What made this image, from the richest source it carries: ours, then A1111's, then ComfyUI's.

    Returns ``prompt``, ``negative_prompt``, ``seed``, ``steps``, ``guidance``, ``strength``,
    ``sampler``, ``model``, ``width``, ``height`` (None where unknown) and ``source``; ours adds
    ``underpaint`` (every reproduction parameter). None when the PNG carries no parameters."""
    texts = read_text(png)
    if OUR_KEY in texts:
        try:
            ours = json.loads(texts[OUR_KEY])
        except ValueError:
            ours = None
        if isinstance(ours, dict):
            engine = ours.get("engine_params") or {}
            size = ours.get("model_size") or {}
            scheduler = engine.get("scheduler")
            return {
                "prompt": ours.get("prompt", ""),
                "negative_prompt": ours.get("negative_prompt", ""),
                "seed": ours.get("seed"),
                "steps": ours.get("steps"),
                "guidance": ours.get("guidance"),
                "strength": ours.get("strength"),
                "sampler": SAMPLER_NAMES.get(scheduler, scheduler) if scheduler else None,
                "model": ours.get("model"),
                "width": size.get("width"),
                "height": size.get("height"),
                "source": "underpaint",
                "underpaint": ours,
            }
    if A1111_KEY in texts:
        return {**_from_a1111(texts[A1111_KEY]), "source": "a1111"}
    if "prompt" in texts:
        comfy = _from_comfyui(texts["prompt"])
        if comfy is not None:
            return {**comfy, "source": "comfyui"}
    return None
