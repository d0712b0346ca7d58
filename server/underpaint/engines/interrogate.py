"""A prompt from an image, the CLIP interrogator's way: a BLIP caption, then CLIP ranks shipped lists
of mediums, styles and flavours against the image and the best terms follow the caption.

Both models load through ``transformers`` from a Hugging Face id or a folder, safetensors only
(``use_safetensors=True``: a pickle is never opened). ``tiny-random`` builds both with random weights
in code and loads them from a folder like any other (tests, machines without weights): its captions
are nonsense, its ranking is real arithmetic on random embeddings.
"""

from __future__ import annotations

import tempfile
import threading
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from underpaint.errors import JobError

DEFAULT_CAPTIONER = "Salesforce/blip-image-captioning-base"
DEFAULT_RANKER = "openai/clip-vit-base-patch32"
TINY = "tiny-random"
LISTS = ("mediums", "styles", "flavours")
MAX_SIDE = 1024
"""Larger crops are scaled down before the models see them (both work at a few hundred pixels)."""


@cache
def terms(kind: str) -> tuple[str, ...]:
    """A shipped term list (package data, one term a line)."""
    text = resources.files("underpaint.engines").joinpath("terms").joinpath(f"{kind}.txt").read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def rank(image_embedding: np.ndarray, term_embeddings: np.ndarray, count: int) -> list[int]:
    """Indices of the ``count`` terms whose embeddings are most like the image's (cosine), best first."""
    image = image_embedding / np.linalg.norm(image_embedding)
    texts = term_embeddings / np.linalg.norm(term_embeddings, axis=1, keepdims=True)
    scores = texts @ image
    return [int(index) for index in np.argsort(-scores, kind="stable")[:count]]


def crop_to_selection(rgb: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """The selection's bounding box (the whole image without a mask or with an empty one)."""
    if mask is None:
        return rgb
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return rgb
    return rgb[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


@dataclass(frozen=True)
class Interrogation:
    prompt: str
    caption: str
    terms: dict[str, list[str]]


def build_tiny(folder: Path) -> tuple[Path, Path]:
    """Random-weight BLIP and CLIP with their processors, saved as safetensors folders under ``folder``."""
    import torch
    from transformers import (  # type: ignore[attr-defined]
        BertTokenizerFast,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        CLIPProcessor,
        CLIPTokenizer,
    )

    from underpaint.engines.diffusion import tiny

    torch.manual_seed(0)
    words = sorted({word for kind in LISTS for term in terms(kind) for word in term.lower().replace("-", " ").split()})
    vocab = folder / "bert-vocab.txt"
    folder.mkdir(parents=True, exist_ok=True)
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n", encoding="utf-8")
    bert = BertTokenizerFast(vocab_file=str(vocab), do_lower_case=True)
    size = {"height": 32, "width": 32}
    vision = {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2, "num_attention_heads": 4}
    vision.update(image_size=32, patch_size=8)
    text = {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2, "num_attention_heads": 4}
    blip_text = {**text, "vocab_size": len(bert), "max_position_embeddings": 64, "encoder_hidden_size": 32}
    blip_text.update(bos_token_id=bert.cls_token_id, sep_token_id=bert.sep_token_id, pad_token_id=bert.pad_token_id)
    blip = BlipForConditionalGeneration(BlipConfig(text_config=blip_text, vision_config=vision, projection_dim=32))
    captioner = folder / "blip"
    blip.save_pretrained(captioner, safe_serialization=True)
    BlipProcessor(BlipImageProcessor(size=size), bert).save_pretrained(captioner)
    clip_tokenizer = CLIPTokenizer.from_pretrained(str(tiny.write_tokenizer(folder / "clip-tokenizer")))
    clip_text = {**text, "vocab_size": len(clip_tokenizer), "max_position_embeddings": 77}
    clip_text.update(bos_token_id=clip_tokenizer.bos_token_id, eos_token_id=clip_tokenizer.eos_token_id)
    clip = CLIPModel(CLIPConfig(text_config=clip_text, vision_config=vision, projection_dim=16))
    ranker = folder / "clip"
    clip.save_pretrained(ranker, safe_serialization=True)
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size=size)
    CLIPProcessor(image_processor=image_processor, tokenizer=clip_tokenizer).save_pretrained(ranker)
    return captioner, ranker


class Interrogator:
    """Loads its two models on first use and keeps them; one interrogation at a time."""

    def __init__(self, captioner: str = DEFAULT_CAPTIONER, ranker: str = DEFAULT_RANKER, device: str = "auto") -> None:
        """``device``: auto (cuda, then mps, then cpu), cuda, mps or cpu."""
        self.captioner_source = captioner
        self.ranker_source = ranker
        self.device = device
        self._lock = threading.Lock()
        self._models: dict[str, Any] | None = None
        self._term_embeddings: dict[str, np.ndarray] = {}

    @classmethod
    def from_option(cls, option: str, device: str = "auto") -> Interrogator:
        """``tiny-random``, ``default``, or ``CAPTIONER,RANKER`` (HF ids or folders)."""
        if option == TINY:
            folders = build_tiny(Path(tempfile.mkdtemp(prefix="underpaint-interrogator-")))
            return cls(str(folders[0]), str(folders[1]), device)
        if option in ("", "default"):
            return cls(device=device)
        captioner, sep, ranker = option.partition(",")
        if not sep or not captioner.strip() or not ranker.strip():
            raise ValueError("--interrogator takes tiny-random, default, or CAPTIONER,RANKER")
        return cls(captioner.strip(), ranker.strip(), device)

    def _load(self) -> dict[str, Any]:
        if self._models is None:
            import os

            from transformers import (
                AutoProcessor,
                BlipForConditionalGeneration,
                CLIPModel,
            )

            offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
            common: dict[str, Any] = {"use_safetensors": True, "local_files_only": offline}
            try:
                self._models = {
                    "blip": BlipForConditionalGeneration.from_pretrained(self.captioner_source, **common),
                    "blip_processor": AutoProcessor.from_pretrained(self.captioner_source, local_files_only=offline),
                    "clip": CLIPModel.from_pretrained(self.ranker_source, **common),
                    "clip_processor": AutoProcessor.from_pretrained(self.ranker_source, local_files_only=offline),
                }
            except (OSError, ValueError) as error:
                raise JobError("model_load_failed", f"the interrogator's models could not be loaded: {error}") from None
            if self.device == "auto":
                import torch

                mps = getattr(torch.backends, "mps", None)
                self.device = "cuda" if torch.cuda.is_available() else "mps" if mps and mps.is_available() else "cpu"
            for key in ("blip", "clip"):
                self._models[key].to(self.device).eval()
        return self._models

    def interrogate(self, rgb: np.ndarray, flavours: int = 3) -> Interrogation:
        """A caption plus the best medium, style and ``flavours`` flavour terms for an RGB uint8 image."""
        import torch
        from PIL import Image

        with self._lock, torch.inference_mode():
            models = self._load()
            image = Image.fromarray(rgb)
            if max(image.size) > MAX_SIDE:
                image.thumbnail((MAX_SIDE, MAX_SIDE))
            inputs = models["blip_processor"](images=image, return_tensors="pt").to(self.device)
            tokens = models["blip"].generate(**inputs, max_new_tokens=30, num_beams=1, do_sample=False)
            caption = models["blip_processor"].decode(tokens[0], skip_special_tokens=True).strip()
            pixels = models["clip_processor"](images=image, return_tensors="pt")["pixel_values"].to(self.device)
            image_embedding = _features(models["clip"].get_image_features(pixel_values=pixels))[0]
            chosen: dict[str, list[str]] = {}
            for kind, count in (("mediums", 1), ("styles", 1), ("flavours", flavours)):
                embeddings = self._embeddings(models, kind)
                chosen[kind] = [terms(kind)[index] for index in rank(image_embedding, embeddings, count)]
        parts = [caption, *chosen["mediums"], *chosen["styles"], *chosen["flavours"]]
        return Interrogation(", ".join(part for part in parts if part), caption, chosen)

    def _embeddings(self, models: dict[str, Any], kind: str) -> np.ndarray:
        """CLIP text embeddings of a term list, computed once."""
        if kind not in self._term_embeddings:
            tokens = models["clip_processor"](text=list(terms(kind)), return_tensors="pt", padding=True).to(self.device)
            features = models["clip"].get_text_features(
                input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]
            )
            self._term_embeddings[kind] = _features(features)
        return self._term_embeddings[kind]


def _features(output: Any) -> np.ndarray:
    """Embeddings as float arrays (transformers 5 may wrap them in an output object)."""
    tensor = output if hasattr(output, "float") else output.pooler_output
    return tensor.float().cpu().numpy()
