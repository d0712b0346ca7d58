"""Preprocessors on real photographs: Canny and soft edges (OpenCV), lines from drawings, and depth maps
from a Depth Anything model loaded from a folder (tiny, random weights: shape and range only)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from tests.pickles import Payload
from underpaint.engines.diffusion import tiny
from underpaint.engines.diffusion.preprocess import DepthEstimator, canny, lines, prepare_control, soft_edges
from underpaint.errors import JobError

DATA = Path(__file__).parent.parent / "data"
PHOTOS = sorted(DATA.glob("*.jpg"))


def photo(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGBA"))


@pytest.mark.parametrize("path", PHOTOS, ids=[p.stem for p in PHOTOS])
def test_edges_follow_the_photographs_structure(path: Path) -> None:
    rgba = photo(path)
    rgb = rgba[..., :3]
    edges = canny(rgb)
    assert edges.shape == rgb.shape and edges.dtype == np.uint8
    assert set(np.unique(edges)) <= {0, 255}
    share = (edges[..., 0] == 255).mean()
    assert 0.01 < share < 0.35, share  # a photograph has edges, but is not all edges
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    gradient = np.hypot(cv2.Sobel(gray, cv2.CV_32F, 1, 0), cv2.Sobel(gray, cv2.CV_32F, 0, 1))
    on_edges, off_edges = gradient[edges[..., 0] == 255].mean(), gradient[edges[..., 0] == 0].mean()
    assert on_edges > 3 * off_edges  # edges sit where the picture changes
    soft = soft_edges(rgb)
    assert soft.shape == rgb.shape and soft.min() == 0 and soft.max() == 255
    assert len(np.unique(soft)) > 32  # graded, not binary
    assert soft[..., 0][edges[..., 0] == 255].mean() > 2 * soft[..., 0][edges[..., 0] == 0].mean()
    assert np.array_equal(prepare_control("canny", rgba, True, None, "job.controls.0"), edges)
    assert np.array_equal(prepare_control("canny", rgba, False, None, "job.controls.0"), rgb)  # as it is


def test_dark_strokes_become_white_lines_on_black() -> None:
    drawing = np.zeros((40, 60, 4), np.uint8)  # a transparent layer
    drawing[10:12, 5:55] = (20, 20, 20, 255)  # a dark stroke
    result = lines(drawing)
    assert (result[10:12, 5:55] > 200).all() and (result[20:, :] == 0).all()
    paper = np.full((40, 60, 4), 255, np.uint8)
    paper[30, :] = (0, 0, 0, 255)
    assert (lines(paper)[30] == 255).all() and (lines(paper)[:29] == 0).all()


def test_depth_maps_from_a_depth_model_folder(tmp_path: Path) -> None:
    model, processor = tiny.build_depth_model()
    folder = tmp_path / "depth"
    model.save_pretrained(str(folder), safe_serialization=True)
    processor.save_pretrained(str(folder))
    estimator = DepthEstimator(str(folder), "cpu", torch.float32)
    for path in PHOTOS:
        rgba = photo(path)
        depth = prepare_control("depth", rgba, True, estimator, "job.controls.0")
        assert depth.shape == (*rgba.shape[:2], 3)
        assert depth.min() == 0 and depth.max() == 255  # normalised to the full range
        assert np.array_equal(depth[..., 0], depth[..., 2])
    with pytest.raises(JobError) as missing:
        prepare_control("depth", photo(PHOTOS[0]), True, None, "job.controls.1")
    assert missing.value.field == "job.controls.1.preprocess"


def test_a_pickled_depth_model_is_refused(tmp_path: Path) -> None:
    import pickle

    marker = tmp_path / "pwned"

    model, processor = tiny.build_depth_model()
    folder = tmp_path / "depth-pickle"
    model.config.save_pretrained(str(folder))
    processor.save_pretrained(str(folder))
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(Payload(marker)))
    estimator = DepthEstimator(str(folder), "cpu", torch.float32)
    with pytest.raises(JobError) as refused:
        estimator(np.zeros((32, 32, 3), np.uint8))
    assert refused.value.code == "model_load_failed"
    assert not marker.exists()
