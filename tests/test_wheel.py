"""The wheel is the product: built from this checkout, installed with pip into a fresh virtual
environment (not editable, run from outside the checkout), it installs every host plugin by itself.

Builds the Figma bundle first (the wheel carries it; a user needs no Node.js), then ``pip wheel .``,
a fresh venv, ``pip install <wheel>`` and ``underpaint install-plugin krita|gimp|figma`` into
temporary folders. Slow (a wheel build and a pip install); fails, never skips.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.figma.npm import build_plugin

REPO = Path(__file__).resolve().parents[1]

NOT_SOURCES = (".git", ".venv", "node_modules", "build", "*.egg-info", "artifacts", "__pycache__", ".*_cache")
"""What a fresh clone plus the built Figma bundle would not have."""

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


def _run(args: list[str | Path], cwd: Path, env: dict[str, str], timeout: int = 900) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    output = f"{done.stdout}\n{done.stderr}"
    assert done.returncode == 0, f"`{' '.join(map(str, args))}` failed ({done.returncode}):\n{output[-8000:]}"
    return output


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A fresh venv with the wheel installed; the environment to run it in (home and XDG folders in tmp)."""
    build_plugin()
    root = tmp_path_factory.mktemp("wheel")
    home = root / "home"
    home.mkdir()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "VIRTUAL_ENV", "XDG_"))}
    env |= {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "XDG_DATA_HOME": str(home / ".local/share")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    # from a copy: setuptools builds in the source tree, and a stale build/ there could leak into the wheel
    source = root / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(*NOT_SOURCES))
    _run([sys.executable, "-m", "pip", "wheel", source, "--no-deps", "-w", root / "dist"], root, env)
    wheels = list((root / "dist").glob("underpaint-*.whl"))
    assert len(wheels) == 1, wheels
    venv.create(root / "venv", with_pip=True)
    python = root / "venv" / "bin" / "python"
    _run([python, "-m", "pip", "install", "--quiet", str(wheels[0])], root, env)
    return python, env


def test_the_wheel_is_installed_not_the_checkout(installed: tuple[Path, dict[str, str]]) -> None:
    python, env = installed
    out = _run([python, "-c", "import underpaint, underpaint_protocol; print(underpaint.__file__)"], python.parent, env)
    assert "site-packages" in out and str(REPO) not in out


def test_installs_the_krita_plugin(installed: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    python, env = installed
    _run([python, "-m", "underpaint", "install-plugin", "krita", "--dest", tmp_path / "pykrita"], tmp_path, env)
    package = tmp_path / "pykrita" / "underpaint_krita"
    assert (tmp_path / "pykrita" / "underpaint.desktop").is_file()
    for needed in ("__init__.py", "model.py", "vendor/underpaint_protocol/client.py", "vendor/websockets/__init__.py"):
        assert (package / needed).is_file(), needed
    kritarc = Path(env["XDG_CONFIG_HOME"]) / "kritarc"
    assert "enable_underpaint_krita=true" in kritarc.read_text()


def test_installs_the_gimp_plugin(installed: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    python, env = installed
    _run([python, "-m", "underpaint", "install-plugin", "gimp", "--dest", tmp_path / "plug-ins"], tmp_path, env)
    plugin = tmp_path / "plug-ins" / "underpaint"
    for needed in ("underpaint.py", "underpaint_gimp/model.py", "vendor/underpaint_protocol/session.py"):
        assert (plugin / needed).is_file(), needed
    assert os.access(plugin / "underpaint.py", os.X_OK)


def test_installs_the_figma_plugin(installed: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    python, env = installed
    out = _run([python, "-m", "underpaint", "install-plugin", "figma"], tmp_path, env)
    manifest = Path(env["XDG_DATA_HOME"]) / "underpaint" / "figma-plugin" / "manifest.json"
    assert str(manifest) in out
    names = json.loads(manifest.read_text())
    for name in (names["main"], names["ui"]):
        assert (manifest.parent / name).stat().st_size > 1000, name
    assert (manifest.parent / "ui.html").read_bytes() == (REPO / "plugins/figma/dist/ui.html").read_bytes()
