"""Turning a layer into what a ControlNet of its kind was trained on.

Canny and soft edges with OpenCV; depth with a Depth Anything model through ``transformers``; scribble
and line art as the layer is, made white-on-black (what those ControlNets expect) when drawn dark on a
light or transparent layer. Every function takes RGBA uint8 at model size and returns RGB uint8.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from underpaint.errors import JobError

PREPROCESSED = ("canny", "softedge", "depth", "scribble", "lineart", "tile")
"""Kinds the daemon can make from a photo or drawing (``preprocess: true``); pose needs a pose layer."""


def over_black(rgba: np.ndarray) -> np.ndarray:
    """The layer as it is: transparent pixels are no signal (black)."""
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    return np.rint(rgba[..., :3] * alpha).astype(np.uint8)


def over_white(rgba: np.ndarray) -> np.ndarray:
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    return np.rint(rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)


def canny(rgb: np.ndarray, low: int = 100, high: int = 200) -> np.ndarray:
    """Canny edges (the thresholds lllyasviel's canny ControlNet was trained with)."""
    edges = cv2.Canny(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), low, high)
    return np.dstack([edges] * 3)


def soft_edges(rgb: np.ndarray) -> np.ndarray:
    """Soft, graded edges (in the spirit of HED/PiDiNet): smoothed gradient magnitude, normalised."""
    gray = cv2.GaussianBlur(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32), (0, 0), 1.5)
    magnitude = cv2.magnitude(cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3))
    peak = float(np.percentile(magnitude, 99)) or 1.0
    soft = np.clip(magnitude / peak, 0.0, 1.0) * 255.0
    return np.dstack([np.rint(soft).astype(np.uint8)] * 3)


def lines(rgba: np.ndarray) -> np.ndarray:
    """White lines on black from a drawing: dark strokes on a light (or transparent) layer are inverted."""
    rgb = over_white(rgba)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    if gray.mean() > 127:
        gray = 255 - gray
    return np.dstack([gray] * 3)


class DepthEstimator:
    """A depth model (``DepthAnythingForDepthEstimation`` or any ``AutoModelForDepthEstimation``), loaded
    once from a Hugging Face id or a folder, safetensors only; near is white, as depth ControlNets expect."""

    def __init__(self, source: str, device: str, dtype: torch.dtype) -> None:
        self.source = source
        self.device = device
        self.dtype = dtype
        self._model: Any = None
        self._processor: Any = None

    def _load(self) -> None:
        from transformers import AutoImageProcessor, AutoModelForDepthEstimation

        local = Path(self.source).expanduser()
        where = str(local) if local.is_dir() else self.source
        try:
            self._processor = AutoImageProcessor.from_pretrained(where)
            model = AutoModelForDepthEstimation.from_pretrained(where, use_safetensors=True)
        except Exception as exc:
            raise JobError(
                "model_load_failed", f"could not load the depth model {self.source}: {exc}", "job.controls"
            ) from exc
        self._model = model.to(device=self.device, dtype=self.dtype).eval()

    @torch.inference_mode()
    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        if self._model is None:
            self._load()
        inputs = self._processor(images=rgb, return_tensors="pt")
        pixels = inputs["pixel_values"].to(device=self.device, dtype=self.dtype)
        depth = self._model(pixel_values=pixels).predicted_depth[0].float().cpu().numpy()
        depth = cv2.resize(depth, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_CUBIC)
        low, high = float(depth.min()), float(depth.max())
        scaled = (depth - low) / (high - low) if high > low else np.zeros_like(depth)
        return np.dstack([np.rint(scaled * 255.0).astype(np.uint8)] * 3)


def prepare_control(
    kind: str, rgba: np.ndarray, preprocess: bool, depth: DepthEstimator | None, field: str
) -> np.ndarray:
    """The RGB image a ControlNet of ``kind`` gets from a layer (see the module docstring)."""
    if not preprocess:
        return over_black(rgba)
    if kind == "canny":
        return canny(over_white(rgba))
    if kind == "softedge":
        return soft_edges(over_white(rgba))
    if kind in ("scribble", "lineart"):
        return lines(rgba)
    if kind == "tile":
        return over_white(rgba)
    if kind == "depth":
        if depth is None:
            raise JobError(
                "unsupported_control",
                "this daemon has no depth model to make a depth map (start it with --depth-model); "
                "send a depth layer with preprocess off",
                f"{field}.preprocess",
            )
        return depth(over_white(rgba))
    raise JobError(
        "unsupported_control",
        f"the daemon cannot make a {kind} map from a picture; send a {kind} layer with preprocess off",
        f"{field}.preprocess",
    )
