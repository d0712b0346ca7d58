"""Node and npm for the Figma plugin's toolchain, shared by its tests and the wheel test.

Missing tools are failures, never skips: CI must have them.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PLUGIN = Path(__file__).resolve().parents[2] / "plugins" / "figma"
STAMP = PLUGIN / "node_modules" / ".underpaint-lock-sha256"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def require_npm() -> str:
    """npm's path; fails unless Node.js 20+ and npm are installed."""
    npm = shutil.which("npm")
    node = shutil.which("node")
    if node is None or npm is None:
        pytest.fail("the Figma plugin needs Node.js 20+ and npm: install them (e.g. `apt-get install -y nodejs npm`)")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    match = re.match(r"v(\d+)", version)
    if match is None or int(match.group(1)) < 20:
        pytest.fail(f"the Figma plugin needs Node.js 20 or newer, found {version or 'an unknown version'}")
    return npm


def run(args: list[str], timeout: int) -> str:
    """Run a command in plugins/figma; its output, or a test failure with the output."""
    env = {**os.environ, "UNDERPAINT_PYTHON": sys.executable, "CHROMIUM": CHROMIUM, "NO_COLOR": "1", "CI": "true"}
    try:
        done = subprocess.run(args, cwd=PLUGIN, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"`{' '.join(args)}` ran past {timeout} s:\n{error.stdout or ''}\n{error.stderr or ''}")
    output = f"{done.stdout}\n{done.stderr}"
    if done.returncode != 0:
        pytest.fail(f"`{' '.join(args)}` failed with exit status {done.returncode}:\n{output[-20000:]}")
    return output


@functools.cache
def build_plugin() -> str:
    """``npm ci`` when node_modules is missing or stale, then ``npm run build`` (typecheck + bundle);
    once per test run (the Figma tests and the wheel test both need the bundle; the sources do not
    change during a run). A failed build is not remembered: the next caller fails again."""
    npm = require_npm()
    lock = hashlib.sha256((PLUGIN / "package-lock.json").read_bytes()).hexdigest()
    if not STAMP.is_file() or STAMP.read_text().strip() != lock:
        run([npm, "ci", "--no-audit", "--no-fund"], timeout=600)
        STAMP.write_text(lock)
    run([npm, "run", "build"], timeout=300)
    for name in ("manifest.json", "code.js", "ui.html"):
        assert (PLUGIN / "dist" / name).is_file(), f"the build did not produce dist/{name}"
    return npm
