"""A prompt from an image over a real daemon: BLIP caption + CLIP-ranked terms from the shipped lists,
with the built-in tiny random models loaded from folders as real ones are."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.daemon.conftest import photo_like
from underpaint.daemon.config import DaemonConfig
from underpaint.daemon.server import Daemon, DaemonThread
from underpaint.engines.classical import ClassicalEngine
from underpaint.engines.interrogate import Interrogator, rank, terms
from underpaint_protocol.client import DaemonError, UnderpaintClient
from underpaint_protocol.library import Library
from underpaint_protocol.session import ImageData


def raw(pixels: np.ndarray) -> ImageData:
    fmt = "rgba8" if pixels.ndim == 3 else "gray8"
    return ImageData(fmt, int(pixels.shape[1]), int(pixels.shape[0]), np.ascontiguousarray(pixels).tobytes())


def serve(tmp: Path, interrogator: Interrogator | None) -> DaemonThread:
    config = DaemonConfig(port=0, token_file=tmp / "token", outputs=None, styles_file=None, history_file=None)
    return DaemonThread(Daemon(config, [ClassicalEngine()], "classical", interrogator=interrogator)).start()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonThread]:
    thread = serve(tmp_path_factory.mktemp("interrogate"), Interrogator.from_option("tiny-random", "cpu"))
    yield thread
    thread.stop()


@pytest.fixture
def client(daemon: DaemonThread) -> Iterator[UnderpaintClient]:
    connected = UnderpaintClient(daemon.url, client_name="pytest")
    connected.connect(timeout=10)
    yield connected
    connected.close()


def test_ranking_picks_the_terms_most_like_the_image() -> None:
    image = np.array([1.0, 0.0, 0.0])
    embeddings = np.array([[0.0, 1.0, 0.0], [2.0, 0.1, 0.0], [1.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])
    assert rank(image, embeddings, 3) == [1, 2, 0]


def test_interrogation_returns_a_caption_and_ranked_terms(client: UnderpaintClient) -> None:
    canvas = photo_like(120, 90)
    found = Library(client).interrogate(raw(canvas), flavours=2).result(timeout=120)
    assert found["type"] == "interrogated"
    assert len(found["terms"]["mediums"]) == 1 and found["terms"]["mediums"][0] in terms("mediums")
    assert found["terms"]["styles"][0] in terms("styles")
    assert len(found["terms"]["flavours"]) == 2 and set(found["terms"]["flavours"]) <= set(terms("flavours"))
    chosen = [*found["terms"]["mediums"], *found["terms"]["styles"], *found["terms"]["flavours"]]
    assert found["prompt"] == ", ".join(part for part in [found["caption"], *chosen] if part)
    again = Library(client).interrogate(raw(canvas), flavours=2).result(timeout=120)
    assert again == {**found, "request_id": again["request_id"]}  # deterministic


def test_a_selection_describes_its_bounding_box(client: UnderpaintClient) -> None:
    canvas = np.zeros((90, 120, 4), np.uint8)  # dark, with a bright patch where the selection is
    canvas[..., 3] = 255
    canvas[20:60, 30:100, :3] = photo_like(70, 40)[..., :3] // 2 + 128
    mask = np.zeros((90, 120), np.uint8)
    mask[20:60, 30:100] = 200
    library = Library(client)
    selected = library.interrogate(raw(canvas), raw(mask), flavours=5).result(timeout=120)
    cropped = library.interrogate(raw(canvas[20:60, 30:100]), flavours=5).result(timeout=120)
    whole = library.interrogate(raw(canvas), flavours=5).result(timeout=120)
    assert selected["terms"] == cropped["terms"]
    assert selected["terms"] != whole["terms"]


def error_of(future: Any) -> dict[str, Any]:
    with pytest.raises(DaemonError) as raised:
        future.result(timeout=60)
    return raised.value.message


def test_bad_interrogations_are_refused_naming_the_field(client: UnderpaintClient, tmp_path: Path) -> None:
    library = Library(client)
    error = error_of(library.interrogate(raw(photo_like(40, 30)), raw(np.zeros((10, 10), np.uint8))))
    assert (error["code"], error["field"]) == ("size_mismatch", "mask")
    error = error_of(
        client.request({"type": "interrogate", "flavours": 99}, "interrogated", {"image": raw(photo_like(8, 8))})
    )
    assert (error["code"], error["field"]) == ("invalid_field", "flavours")
    assert library.interrogate(raw(photo_like(16, 16))).result(timeout=120)["prompt"]  # still serving
    bare = serve(tmp_path, None)
    try:
        other = UnderpaintClient(bare.url, client_name="pytest")
        other.connect(timeout=10)
        error = error_of(Library(other).interrogate(raw(photo_like(16, 16))))
        assert error["code"] == "unsupported_mode" and "--interrogator" in error["message"]
        other.close()
    finally:
        bare.stop()


def test_the_cli_prints_the_prompt(daemon: DaemonThread, tmp_path: Path) -> None:
    Image.fromarray(photo_like(64, 48)).save(tmp_path / "in.png")
    mask = np.zeros((48, 64), np.uint8)
    mask[5:40, 10:50] = 255
    Image.fromarray(mask).save(tmp_path / "sel.png")
    args = [
        "interrogate",
        "--server",
        daemon.url,
        "--image",
        str(tmp_path / "in.png"),
        "--mask",
        str(tmp_path / "sel.png"),
    ]
    run = subprocess.run([sys.executable, "-m", "underpaint", *args], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    line = run.stdout.strip()
    assert any(medium in line for medium in terms("mediums")) and "\n" not in line
