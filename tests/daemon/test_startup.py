"""`underpaint serve` start-up problems end in one line saying what to change, never a traceback."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest


def serve(tmp_path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "underpaint", "serve", "--no-outputs", "--token-file", str(tmp_path / "token")]
    return subprocess.run([*command, *options], capture_output=True, text=True, timeout=120, cwd=tmp_path)


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("underpaint:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda folder: (folder / "model.ckpt").write_bytes(b"pickle") and "model.ckpt", "safetensors"),
        (lambda folder: "missing.safetensors", "no such file"),
        (lambda folder: (folder / "empty").mkdir() or "./empty", "no weights"),
        (
            lambda folder: (folder / "old").mkdir() or ((folder / "old" / "w.bin").write_bytes(b"x") and "./old"),
            "pickle",
        ),
    ],
    ids=["pickle", "missing", "no-weights", "only-pickles"],
)
def test_bad_model_is_one_line(tmp_path: Path, make, expected: str) -> None:
    source = make(tmp_path)
    line = one_line(serve(tmp_path, "--port", "0", "--model", source))
    assert source in line and expected in line, line


def test_port_in_use_names_the_port_and_how_to_pick_another(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = one_line(serve(tmp_path, "--port", str(port)))
    assert str(port) in line and "--port" in line, line
