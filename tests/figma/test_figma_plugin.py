"""The Figma plugin's own toolchain, driven from pytest so the project's one test command covers it.

In plugins/figma: ``npm ci`` (only when node_modules is missing or package-lock.json changed),
``npm run build`` (typecheck + esbuild), ``npm test`` (vitest unit tests against a fake figma) and
``npm run test:e2e`` (the built sidebar in a sandboxed iframe in headless Debian chromium, against
a real daemon started on a free port). Missing tools are failures, not skips: CI must have them.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from underpaint_protocol.constants import DEFAULT_PORT

PLUGIN = Path(__file__).resolve().parents[2] / "plugins" / "figma"
STAMP = PLUGIN / "node_modules" / ".underpaint-lock-sha256"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def _require_tools() -> str:
    npm = shutil.which("npm")
    node = shutil.which("node")
    if node is None or npm is None:
        pytest.fail("the Figma plugin needs Node.js 20+ and npm: install them (e.g. `apt-get install -y nodejs npm`)")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    match = re.match(r"v(\d+)", version)
    if match is None or int(match.group(1)) < 20:
        pytest.fail(f"the Figma plugin needs Node.js 20 or newer, found {version or 'an unknown version'}")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"the Figma e2e test needs Debian's chromium at {CHROMIUM}: `apt-get install -y chromium`")
    return npm


def _run(args: list[str], timeout: int) -> str:
    env = {**os.environ, "UNDERPAINT_PYTHON": sys.executable, "CHROMIUM": CHROMIUM, "NO_COLOR": "1", "CI": "true"}
    try:
        done = subprocess.run(args, cwd=PLUGIN, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"`{' '.join(args)}` ran past {timeout} s:\n{error.stdout or ''}\n{error.stderr or ''}")
    output = f"{done.stdout}\n{done.stderr}"
    if done.returncode != 0:
        pytest.fail(f"`{' '.join(args)}` failed with exit status {done.returncode}:\n{output[-20000:]}")
    return output


@pytest.fixture(scope="module")
def built() -> str:
    npm = _require_tools()
    lock = hashlib.sha256((PLUGIN / "package-lock.json").read_bytes()).hexdigest()
    if not STAMP.is_file() or STAMP.read_text().strip() != lock:
        _run([npm, "ci", "--no-audit", "--no-fund"], timeout=600)
        STAMP.write_text(lock)
    _run([npm, "run", "build"], timeout=300)
    for name in ("manifest.json", "code.js", "ui.html"):
        assert (PLUGIN / "dist" / name).is_file(), f"the build did not produce dist/{name}"
    return npm


def test_manifest_declares_the_local_daemon(built: str) -> None:
    import json

    manifest = json.loads((PLUGIN / "dist" / "manifest.json").read_text())
    assert manifest["main"] == "code.js" and manifest["ui"] == "ui.html"
    assert manifest["editorType"] == ["figma"]
    access = manifest["networkAccess"]
    for key in ("allowedDomains", "devAllowedDomains"):
        assert access[key] == [f"http://localhost:{DEFAULT_PORT}", f"ws://localhost:{DEFAULT_PORT}"]
    assert access["reasoning"]
    ui = (PLUGIN / "dist" / "ui.html").read_text()
    assert "<script>" in ui, "the UI script must be inlined"
    for test_only in ("window.underpaint", "__wire", "dropAfterAccept", "closeAfterAccept"):
        assert test_only not in ui and test_only not in (PLUGIN / "dist" / "code.js").read_text(), test_only


def test_unit(built: str) -> None:
    output = _run([built, "test"], timeout=300)
    assert re.search(r"Tests\s+\d+ passed", output), output


def test_e2e_in_chromium_against_a_real_daemon(built: str) -> None:
    output = _run([built, "run", "test:e2e"], timeout=300)
    assert re.search(r"Tests\s+\d+ passed", output), output
