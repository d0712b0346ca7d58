"""`underpaint install-plugin gimp`: folders per platform and GIMP series, the installed layout."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from underpaint.install.bundle import InstallError
from underpaint.install.gimp import install, plugin_folders


def test_linux_native_and_flatpak_folders_that_exist(tmp_path: Path) -> None:
    native = tmp_path / ".config" / "GIMP" / "3.0"
    flatpak = tmp_path / ".var" / "app" / "org.gimp.GIMP" / "config" / "GIMP" / "3.2"
    native.mkdir(parents=True)
    flatpak.mkdir(parents=True)
    assert plugin_folders(None, "linux", {}, tmp_path) == [native / "plug-ins", flatpak / "plug-ins"]
    assert plugin_folders("3.2", "linux", {}, tmp_path) == [flatpak / "plug-ins"]


def test_xdg_config_home_and_gimp3_directory(tmp_path: Path) -> None:
    xdg = tmp_path / "xdg"
    (xdg / "GIMP" / "3.2").mkdir(parents=True)
    assert plugin_folders(None, "linux", {"XDG_CONFIG_HOME": str(xdg)}, tmp_path) == [xdg / "GIMP" / "3.2" / "plug-ins"]
    env = {"GIMP3_DIRECTORY": str(tmp_path / "custom")}
    assert plugin_folders("3.0", "linux", env, tmp_path) == [tmp_path / "custom" / "plug-ins"]


def test_windows_and_macos(tmp_path: Path) -> None:
    appdata = tmp_path / "AppData" / "Roaming"
    assert plugin_folders("3.0", "win32", {"APPDATA": str(appdata)}, tmp_path) == [
        appdata / "GIMP" / "3.0" / "plug-ins"
    ]
    mac = tmp_path / "Library" / "Application Support" / "GIMP" / "3.2"
    mac.mkdir(parents=True)
    assert plugin_folders(None, "darwin", {}, tmp_path) == [mac / "plug-ins"]


def test_no_gimp_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InstallError, match="Start GIMP 3 once"):
        plugin_folders(None, "linux", {}, tmp_path)
    with pytest.raises(InstallError, match="unsupported GIMP version"):
        plugin_folders("2.10", "linux", {}, tmp_path)
    # an explicit series installs even before GIMP's first start
    assert plugin_folders("3.2", "linux", {}, tmp_path) == [tmp_path / ".config" / "GIMP" / "3.2" / "plug-ins"]


def test_install_layout_executable_entry_and_vendored_client(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    target = install(dest=tmp_path / "plug-ins")
    assert target == tmp_path / "plug-ins" / "underpaint"
    entry = target / "underpaint.py"
    assert entry.is_file() and os.access(entry, os.X_OK)
    assert (target / "underpaint_gimp" / "model.py").is_file()
    shipped = "".join(path.read_text() for path in (target / "underpaint_gimp").glob("*.py"))
    assert "selftest" not in shipped and "UNDERPAINT_PANEL" not in shipped, "no test code, no test import"
    assert (target / "vendor" / "websockets" / "sync" / "client.py").is_file()
    assert not list(target.rglob("*.so")) and not list(target.rglob("__pycache__"))
    assert "Filters > underpaint" in capsys.readouterr().out
    # the vendored client and the model import with nothing but the standard library (-I: isolated)
    code = "import sys; sys.path[:0] = sys.argv[1:]; import underpaint_gimp.model, websockets; print('ok')"
    done = subprocess.run(
        [sys.executable, "-I", "-c", code, str(target / "vendor"), str(target)], capture_output=True, text=True
    )
    assert done.stdout.strip() == "ok", done.stderr
    install(dest=tmp_path / "plug-ins")  # again: replaces cleanly


def test_install_via_environment_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIMP3_DIRECTORY", str(tmp_path / "gimp3"))
    assert install() == tmp_path / "gimp3" / "plug-ins" / "underpaint"


def test_zip_unpacks_as_a_plug_ins_subfolder(tmp_path: Path) -> None:
    archive = install(zip_path=tmp_path / "underpaint-gimp.zip")
    with zipfile.ZipFile(archive) as handle:
        names = handle.namelist()
        info = handle.getinfo("underpaint/underpaint.py")
    assert "underpaint/vendor/underpaint_protocol/client.py" in names
    assert all(name.startswith("underpaint/") for name in names)
    assert (info.external_attr >> 16) & 0o111, "the entry stays executable inside the zip"


def test_cli(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "underpaint", "install-plugin", "gimp", "--dest", str(tmp_path / "p")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert f"installed the gimp plugin: {tmp_path / 'p' / 'underpaint'}" in done.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "underpaint", "install-plugin", "gimp", "--host-version", "2.10"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1 and "unsupported GIMP version" in bad.stderr
