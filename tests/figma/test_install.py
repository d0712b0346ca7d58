"""`underpaint install-plugin figma`: the bundle written to a folder, its manifest named, clear errors.

The real bundle from a real wheel is tried in tests/test_wheel.py; here a small stand-in bundle.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from underpaint.folders import data_dir
from underpaint.install import figma
from underpaint.install.bundle import InstallError


@pytest.fixture
def bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    dist = tmp_path / "source" / "figma" / "dist"
    dist.mkdir(parents=True)
    (dist / "manifest.json").write_text(json.dumps({"main": "code.js", "ui": "ui.html"}))
    (dist / "code.js").write_text("figma.showUI(__html__);")
    (dist / "ui.html").write_text("<script></script>")
    monkeypatch.setattr(figma, "plugin_source", lambda host: dist.parent)
    return dist


def test_writes_the_bundle_and_names_the_manifest(
    bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "out"
    (target / "stale").mkdir(parents=True)
    manifest = figma.install(target)
    assert manifest == target / "manifest.json"
    assert sorted(path.name for path in target.iterdir()) == ["code.js", "manifest.json", "ui.html"]
    assert (target / "code.js").read_text() == (bundle / "code.js").read_text()
    assert str(manifest) in capsys.readouterr().out


def test_zip_holds_the_bundle_in_one_folder(bundle: Path, tmp_path: Path) -> None:
    where = figma.install(zip_path=tmp_path / "figma.zip")
    names = sorted(zipfile.ZipFile(where).namelist())
    assert names == ["figma-plugin/code.js", "figma-plugin/manifest.json", "figma-plugin/ui.html"]


def test_an_unbuilt_plugin_says_how_to_build_it(bundle: Path, tmp_path: Path) -> None:
    (bundle / "ui.html").unlink()
    with pytest.raises(InstallError, match=r"not built \(ui.html missing.*npm run build"):
        figma.install(tmp_path / "out")


def test_default_folder_per_platform(tmp_path: Path) -> None:
    home = tmp_path
    assert data_dir("linux", {}, home) == home / ".local/share/underpaint"
    assert data_dir("linux", {"XDG_DATA_HOME": "/x"}, home) == Path("/x/underpaint")
    assert data_dir("darwin", {}, home) == home / "Library/Application Support/underpaint"
    assert data_dir("win32", {"APPDATA": "C:/Users/a/AppData/Roaming"}, home) == Path(
        "C:/Users/a/AppData/Roaming/underpaint"
    )
