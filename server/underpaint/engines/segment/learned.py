"""Learned segmentation through ``transformers``: Segment Anything (SAM, SAM 2) for boxes and clicks,
CLIPSeg for phrases, and the pair (``clipseg+sam``): the phrase finds the object, SAM draws its edge.

Models come from Hugging Face ids, local folders or the built-in tiny ones, always as safetensors
(``use_safetensors=True``: a folder holding only a pickle checkpoint is refused before anything is
read). SAM's image embedding -- nearly all of its cost -- is cached per region (model + pixels
hash), so each further click on the same picture runs only the prompt encoder and mask decoder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from underpaint.canvas.plan import ModelResolution
from underpaint.engines.base import (
    Engine,
    GenerationInput,
    JobCancelled,
    ModelInfo,
    ProgressCallback,
    SegmentPrompt,
    StepProgress,
)
from underpaint.engines.segment.edges import soft_mask
from underpaint.engines.segment.tiny import TINY_CLIPSEG, TINY_IDS, TINY_SAM2, tiny_folder
from underpaint.errors import JobError
from underpaint.modes import Mode

log = logging.getLogger("underpaint.segment")

PICKLES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
CACHED_EMBEDDINGS = 8
"""Regions whose SAM embedding is kept (a few MB each for the real models)."""
TEXT_THRESHOLD = 0.4
"""CLIPSeg's probability from which a pixel belongs to the phrase (its maps are rarely above 0.6)."""

INPUTS = {"sam": ("box", "points"), "sam2": ("box", "points"), "clipseg": ("text",), "pair": ("text", "box", "points")}


@dataclass(frozen=True)
class SegmentModel:
    """One configured model: ``kind`` sam, sam2, clipseg or pair (CLIPSeg ``text`` + SAM ``parts[1]``)."""

    id: str
    kind: str
    location: str
    """A folder or a Hugging Face id (for a pair: the CLIPSeg one)."""
    sam: SegmentModel | None = None


def parse_source(source: str) -> SegmentModel:
    """``tiny-random-sam``, ``facebook/sam-vit-base``, ``/path/to/folder``, or ``TEXT+SAM`` for the pair."""
    if "+" in source:
        text_source, sam_source = source.split("+", 1)
        text, sam = parse_source(text_source), parse_source(sam_source)
        if text.kind != "clipseg" or sam.kind not in ("sam", "sam2"):
            raise ValueError(f"{source}: a pair is CLIPSEG+SAM (a CLIPSeg model, then a SAM model)")
        return SegmentModel(source, "pair", text.location, sam)
    if source in TINY_IDS:
        kind = {TINY_CLIPSEG: "clipseg", TINY_SAM2: "sam2"}.get(source, "sam")
        return SegmentModel(source, kind, source)
    return SegmentModel(source, _kind(source), source)


def _kind(location: str) -> str:
    """The family from the model's config.json (local, or in the Hugging Face cache), else its name."""
    config_path: Path | None = None
    if Path(location).expanduser().is_dir():
        config_path = Path(location).expanduser() / "config.json"
    else:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(location, "config.json")
        config_path = Path(cached) if isinstance(cached, str) else None
    model_type = ""
    if config_path is not None and config_path.is_file():
        model_type = str(json.loads(config_path.read_text(encoding="utf-8")).get("model_type", ""))
    name = (model_type or Path(location).name).lower()
    if "clipseg" in name:
        return "clipseg"
    if "sam2" in name or "sam2" in location.lower():
        return "sam2"
    if "sam" in name:
        return "sam"
    raise ValueError(f"{location}: not a SAM, SAM 2 or CLIPSeg model (config model_type {model_type!r})")


def _where(location: str) -> str:
    """The folder ``from_pretrained`` reads: the tiny model's, a local folder, or the hub id."""
    if location in TINY_IDS:
        return str(tiny_folder(location))
    return str(Path(location).expanduser()) if Path(location).expanduser().is_dir() else location


def _refuse_pickles(location: str) -> None:
    folder = Path(location)
    if not folder.is_dir():
        return
    if not any(folder.rglob("*.safetensors")) and any(p.suffix in PICKLES for p in folder.rglob("*")):
        raise JobError(
            "unsafe_model_format",
            f"{folder} holds only a pickle checkpoint, which can run code when loaded; use its .safetensors",
            "job.model",
        )


class LearnedSegmentEngine(Engine):
    name = "segment"
    uses_canvas_pipeline = False

    def __init__(self, sources: list[str], device: str = "cpu") -> None:
        self.device = device
        self.specs = {spec.id: spec for spec in map(parse_source, sources)}
        self._loaded: dict[str, tuple[Any, Any]] = {}
        self._embeddings: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._reused: dict[int, bool] = {}
        self.encoder_runs = 0
        """Image embeddings computed (not taken from the cache): what ``underpaint`` reports per job."""

    def models(self) -> list[ModelInfo]:
        return [
            ModelInfo(
                id=spec.id,
                engine=self.name,
                family=spec.kind,
                modes=(Mode.SEGMENT,),
                description=_describe(spec),
                default_steps=1,
                default_guidance=0.0,
                loaded=spec.location in self._loaded,
                segment_inputs=INPUTS[spec.kind],
            )
            for spec in self.specs.values()
        ]

    def resolution(self, model: str) -> ModelResolution:
        return ModelResolution(pixel_budget=1024 * 1024, multiple=1, min_side=1, upscale_small=False)

    def generate(
        self, job: GenerationInput, batch_count: int, on_progress: ProgressCallback, cancel: threading.Event
    ) -> Iterator[np.ndarray]:
        if job.segment is None or job.image is None:
            raise JobError("unsupported_mode", f"{job.model} only selects objects (mode segment)", "job.mode")
        spec = self.specs[job.model]
        rgb = np.ascontiguousarray(job.image[..., :3])
        yield self.segment(spec, rgb, job.segment, cancel, key=id(job))
        on_progress(StepProgress(step=1, total=1))

    def reproduction_params(self, job: GenerationInput) -> dict[str, Any]:
        reused = self._reused.pop(id(job), None)
        return {} if reused is None else {"embedding": "cached" if reused else "computed", "device": self.device}

    def segment(
        self, spec: SegmentModel, rgb: np.ndarray, prompt: SegmentPrompt, cancel: threading.Event | None, key: int = 0
    ) -> np.ndarray:
        """The soft uint8 mask of ``rgb`` that ``prompt`` asks for (what a job runs, and the benchmark)."""
        import torch

        with torch.inference_mode():
            if spec.kind == "clipseg":
                probability, threshold = self._text(spec.location, rgb, _phrase(prompt)), TEXT_THRESHOLD
            elif spec.kind == "pair":
                assert spec.sam is not None
                found = self._text(spec.location, rgb, _phrase(prompt))
                if cancel is not None and cancel.is_set():
                    raise JobCancelled()
                prompt = _prompt_from_text(found, prompt)
                probability, threshold = self._sam(spec.sam, rgb, prompt, cancel, key), 0.5
            else:
                probability, threshold = self._sam(spec, rgb, prompt, cancel, key), 0.5
        if cancel is not None and cancel.is_set():
            raise JobCancelled()
        return soft_mask(rgb, probability, prompt.soften, threshold if prompt.threshold is None else prompt.threshold)

    # ------------------------------------------------------------ models

    def _load(self, kind: str, location: str) -> tuple[Any, Any]:
        if location in self._loaded:
            return self._loaded[location]
        import transformers

        where = _where(location)
        _refuse_pickles(where)
        names = {
            "sam": ("SamModel", "SamProcessor"),
            "sam2": ("Sam2Model", "Sam2Processor"),
            "clipseg": ("CLIPSegForImageSegmentation", "CLIPSegProcessor"),
        }[kind]
        try:
            model = getattr(transformers, names[0]).from_pretrained(where, use_safetensors=True)
            processor = getattr(transformers, names[1]).from_pretrained(where)
        except (OSError, ValueError) as error:
            if "safetensors" in str(error).lower():
                raise JobError(
                    "unsafe_model_format", f"{location} has no .safetensors weights; pickles are refused", "job.model"
                ) from None
            raise JobError("model_load_failed", f"could not load {location}: {error}", "job.model") from None
        model = model.to(self.device).eval()
        self._loaded[location] = (model, processor)
        log.info("loaded %s (%s) on %s", location, kind, self.device)
        return model, processor

    # ------------------------------------------------------------ SAM

    def _sam(
        self, spec: SegmentModel, rgb: np.ndarray, prompt: SegmentPrompt, cancel: threading.Event | None, key: int
    ) -> np.ndarray:
        """SAM's mask probability at ``rgb``'s size; the embedding comes from the cache when it can."""
        import torch

        model, processor = self._load(spec.kind, spec.location)
        cache_key = (spec.location, _digest(rgb))
        cached = self._embeddings.get(cache_key)
        self._reused[key] = cached is not None
        if cached is None:
            pixels = processor(images=rgb, return_tensors="pt")
            if cancel is not None and cancel.is_set():
                raise JobCancelled()
            embedding = model.get_image_embeddings(pixels["pixel_values"].to(self.device, model.dtype))
            self.encoder_runs += 1
            input_height, input_width = pixels["pixel_values"].shape[-2:]
            reshaped = pixels.get("reshaped_input_sizes")  # SAM pads the resized image; SAM 2 stretches it
            used = (1.0, 1.0) if reshaped is None else (reshaped[0][0] / input_height, reshaped[0][1] / input_width)
            cached = (embedding, (float(used[0]), float(used[1])))
            self._embeddings[cache_key] = cached
            while len(self._embeddings) > CACHED_EMBEDDINGS:
                self._embeddings.popitem(last=False)
        else:
            self._embeddings.move_to_end(cache_key)
        if cancel is not None and cancel.is_set():
            raise JobCancelled()
        embedding, used = cached
        scale = _input_scale(processor, rgb.shape[:2])
        points = [(x, y, 1) for x, y in prompt.points] + [(x, y, 0) for x, y in prompt.negative_points]
        inputs: dict[str, Any] = {}
        if points:
            inputs["input_points"] = torch.tensor(
                [[[[x * scale[0], y * scale[1]] for x, y, _ in points]]], dtype=torch.float32, device=self.device
            )
            inputs["input_labels"] = torch.tensor([[[label for *_, label in points]]], device=self.device)
        if prompt.box is not None:
            x, y, w, h = prompt.box
            corners = [x * scale[0], y * scale[1], (x + w) * scale[0], (y + h) * scale[1]]
            inputs["input_boxes"] = torch.tensor([[corners]], dtype=torch.float32, device=self.device)
        ambiguous = prompt.box is None and len(points) == 1
        outputs = model(image_embeddings=embedding, multimask_output=ambiguous, **inputs)
        best = int(outputs.iou_scores[0, 0].argmax()) if ambiguous else 0
        low = outputs.pred_masks[0, 0, best]  # low-resolution logits over the model's input
        rows, cols = math.ceil(low.shape[0] * used[0]), math.ceil(low.shape[1] * used[1])
        # The image's part of it, scaled to the region once (soft_mask), as the processor's
        # post_process_masks would in two steps.
        return torch.sigmoid(low[:rows, :cols].detach().float()).cpu().numpy()

    # ------------------------------------------------------------ CLIPSeg

    def _text(self, location: str, rgb: np.ndarray, phrase: str) -> np.ndarray:
        """CLIPSeg's probability that each pixel shows ``phrase``, at ``rgb``'s size."""
        import torch

        model, processor = self._load("clipseg", location)
        inputs = processor(text=[phrase], images=[rgb], padding="max_length", return_tensors="pt").to(self.device)
        logits = model(**inputs).logits
        probability = torch.sigmoid(logits.reshape(logits.shape[-2:]).float()).cpu().numpy()
        height, width = rgb.shape[:2]
        return cv2.resize(probability, (width, height), interpolation=cv2.INTER_LINEAR)

    def close(self) -> None:
        self._loaded.clear()
        self._embeddings.clear()


def _describe(spec: SegmentModel) -> str:
    if spec.location in TINY_IDS and spec.kind != "pair":
        return "Random weights for testing: selects noise"
    if spec.kind == "pair":
        assert spec.sam is not None
        return f"Select by words: {spec.location} finds the object, {spec.sam.location} draws its edge"
    if spec.kind == "clipseg":
        return f"Select by words (CLIPSeg): {spec.location}"
    family = "Segment Anything 2" if spec.kind == "sam2" else "Segment Anything"
    return f"Select by box or clicks ({family}): {spec.location}"


def _phrase(prompt: SegmentPrompt) -> str:
    if prompt.text is None or not prompt.text.strip():
        raise JobError("invalid_value", "this model selects by words: give a phrase", "job.segment.text")
    return prompt.text.strip()


def _prompt_from_text(probability: np.ndarray, prompt: SegmentPrompt) -> SegmentPrompt:
    """SAM's prompt from CLIPSeg's map: the box of the strongest region and its peak as a click,
    unless the user gave a box or clicks of their own (theirs win)."""
    if prompt.box is not None or prompt.points:
        return prompt
    threshold = TEXT_THRESHOLD if prompt.threshold is None else prompt.threshold
    found = (probability >= threshold).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(found, connectivity=8)
    if count <= 1:
        raise JobError(
            "invalid_value",
            f"nothing in the image matches {prompt.text!r} (the best match is {probability.max():.2f}; "
            f"a threshold below {threshold} finds weaker ones)",
            "job.segment.text",
        )
    best = 1 + int(np.argmax([probability[labels == label].sum() for label in range(1, count)]))
    x, y, w, h = (int(v) for v in stats[best, :4])
    peak = np.where(labels == best, probability, -1.0)
    py, px = np.unravel_index(int(np.argmax(peak)), peak.shape)
    return SegmentPrompt(
        box=(x, y, w, h),
        points=((int(px), int(py)),),
        negative_points=prompt.negative_points,
        text=prompt.text,
        threshold=None,
        soften=prompt.soften,
    )


def _digest(rgb: np.ndarray) -> str:
    return hashlib.blake2b(np.ascontiguousarray(rgb).data, digest_size=16).hexdigest() + str(rgb.shape)


def _input_scale(processor: Any, size: tuple[int, int]) -> tuple[float, float]:
    """Region pixels -> the model's input pixels (SAM resizes the longer side to its input size)."""
    height, width = size
    target = processor.image_processor.size

    def side(name: str) -> Any:
        return target.get(name) if isinstance(target, dict) else getattr(target, name, None)

    longest = side("longest_edge")
    if longest:  # SAM: the longer side to its input size, the aspect kept
        return longest / max(height, width), longest / max(height, width)
    return side("width") / width, side("height") / height  # SAM 2: stretched to a square
