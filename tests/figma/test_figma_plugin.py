"""The Figma plugin's own toolchain, driven from pytest so the project's one test command covers it.

In plugins/figma: ``npm ci`` (only when node_modules is missing or package-lock.json changed),
``npm run build`` (typecheck + esbuild), ``npm test`` (vitest unit tests against a fake figma) and
``npm run test:e2e`` (the built sidebar in a sandboxed iframe in headless Debian chromium, against
the daemon every host test drives, ``python -m tests.hosts.daemon FOLDER PORT`` on a free port).
Missing tools are failures, not skips: CI must have them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.figma.npm import CHROMIUM, PLUGIN, build_plugin, run
from underpaint_protocol.constants import DEFAULT_PORT


@pytest.fixture(scope="module")
def built() -> str:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"the Figma e2e test needs Debian's chromium at {CHROMIUM}: `apt-get install -y chromium`")
    return build_plugin()


def test_manifest_declares_the_local_daemon(built: str) -> None:
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
    output = run([built, "test"], timeout=300)
    assert re.search(r"Tests\s+\d+ passed", output), output


@pytest.mark.host
@pytest.mark.timeout(1500)
def test_e2e_in_chromium_against_a_real_daemon(built: str) -> None:
    # the first diffusion job loads a model; on a busy machine the whole run takes minutes
    output = run([built, "run", "test:e2e"], timeout=1400)
    assert re.search(r"Tests\s+\d+ passed", output), output
