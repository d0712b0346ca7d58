"""`underpaint serve --control`, `underpaint models --control` and `underpaint generate --control` as a
user runs them: separate processes, the built-in tiny random ControlNet."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.test_cli import free_port, underpaint, wait_for_port

SERVE = [sys.executable, "-m", "underpaint", "serve", "--no-outputs", "--model", "tiny-random"]


@pytest.fixture(scope="module")
def control_server() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [*SERVE, "--port", str(port), "--control", "canny=tiny-random", "--control", "scribble=tiny-random"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=os.environ.copy(),
    )
    wait_for_port(port, process, timeout=120)
    yield f"ws://127.0.0.1:{port}"
    process.kill()
    process.wait(10)


def test_models_lists_each_models_control_kinds() -> None:
    run = underpaint("models", "--control", "canny=tiny-random", "--control", "depth=tiny-random")
    assert run.returncode == 0, run.stderr
    assert "CONTROLS" in run.stdout
    (row,) = [line for line in run.stdout.splitlines() if line.split()[0] == "tiny-random"]
    assert "canny, depth" in row
    bad = underpaint("models", "--control", "sketchy=tiny-random")
    assert bad.returncode == 2 and "KIND=SOURCE" in bad.stderr


def test_generate_with_a_control_layer(control_server: str, tmp_path: Path) -> None:
    control = np.zeros((64, 64, 4), np.uint8)
    control[16:48, 8:56] = 255
    Image.fromarray(control).save(tmp_path / "control.png")
    common = ["generate", "txt2img", "--server", control_server, "--width", "64", "--height", "64"]
    common += ["--steps", "1", "--seed", "3"]
    plain = underpaint(*common, "--out", str(tmp_path / "plain.png"), timeout=300)
    assert plain.returncode == 0, plain.stderr
    guided = underpaint(
        *common,
        "--control",
        f"canny:{tmp_path / 'control.png'}:0.9:0-1",
        "--out",
        str(tmp_path / "guided.png"),
        "--layer-out",
        str(tmp_path / "layer.png"),
        timeout=300,
    )
    assert guided.returncode == 0, guided.stderr
    params = json.loads((tmp_path / "layer.json").read_text())["params"]
    assert params["controls"] == [{"kind": "canny", "strength": 0.9, "start": 0.0, "end": 1.0, "preprocess": False}]
    assert params["engine_params"]["controls"] == ["canny=tiny-random"]
    first = np.asarray(Image.open(tmp_path / "plain.png"))
    second = np.asarray(Image.open(tmp_path / "guided.png"))
    assert not np.array_equal(first, second)  # (a range ending before the only step would leave it off)
    refused = underpaint(*common, "--control", f"pose:{tmp_path / 'control.png'}", "--out", str(tmp_path / "x.png"))
    assert refused.returncode == 1 and "cannot use a pose control layer" in refused.stderr
    malformed = underpaint(*common, "--control", "canny", "--out", str(tmp_path / "x.png"))
    assert malformed.returncode == 1 and "KIND:IMAGE" in malformed.stderr
    small = np.zeros((32, 64, 4), np.uint8)
    Image.fromarray(small).save(tmp_path / "small.png")
    wrong = underpaint(*common, "--control", f"canny:{tmp_path / 'small.png'}", "--out", str(tmp_path / "x.png"))
    assert wrong.returncode == 1 and "canvas's size" in wrong.stderr
