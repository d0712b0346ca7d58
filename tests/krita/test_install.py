"""`underpaint install-plugin krita`: folders per OS, kritarc enabling, the zip layout, the vendored client."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from underpaint.install.bundle import InstallError
from underpaint.install.krita import NAME, enable_in_kritarc, install, kritarc_path, resource_dir


def test_resource_and_settings_folders_per_os(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert resource_dir("linux", {}, home) == home / ".local/share/krita"
    assert resource_dir("linux", {"XDG_DATA_HOME": "/x"}, home) == Path("/x/krita")
    assert kritarc_path("linux", {}, home) == home / ".config/kritarc"
    assert resource_dir("win32", {"APPDATA": "C:/Users/a/AppData/Roaming"}, home) == Path(
        "C:/Users/a/AppData/Roaming/krita"
    )
    assert kritarc_path("win32", {"LOCALAPPDATA": "C:/L"}, home) == Path("C:/L/kritarc")
    assert resource_dir("darwin", {}, home) == home / "Library/Application Support/krita"
    assert kritarc_path("darwin", {}, home) == home / "Library/Preferences/kritarc"
    (home / ".var/app/org.kde.krita").mkdir(parents=True)  # Flatpak Krita only
    assert resource_dir("linux", {}, home) == home / ".var/app/org.kde.krita/data/krita"
    assert kritarc_path("linux", {}, home) == home / ".var/app/org.kde.krita/config/kritarc"


def test_enable_keeps_the_rest_of_kritarc(tmp_path: Path) -> None:
    rc = tmp_path / "kritarc"
    rc.write_text("[General]\nFoo=1\n\n[python]\nenable_other=true\nenable_underpaint_krita=false\n\n[X]\nY=2\n")
    enable_in_kritarc(rc)
    text = rc.read_text()
    assert "enable_underpaint_krita=true" in text and "enable_underpaint_krita=false" not in text
    assert text.count("enable_underpaint_krita") == 1
    assert "[General]\nFoo=1" in text and "enable_other=true" in text and "[X]\nY=2" in text
    enable_in_kritarc(rc)
    assert rc.read_text() == text  # idempotent
    fresh = tmp_path / "new" / "kritarc"
    enable_in_kritarc(fresh)
    assert fresh.read_text() == "[python]\nenable_underpaint_krita=true\n"


def test_install_into_a_pykrita_folder(tmp_path: Path) -> None:
    pykrita = tmp_path / "pykrita"
    where = install(pykrita, None, "5.2.9", kritarc=tmp_path / "kritarc")
    assert where == pykrita / NAME
    desktop = (pykrita / "underpaint.desktop").read_text()
    assert f"X-KDE-Library={NAME}" in desktop and "ServiceTypes=Krita/PythonPlugin" in desktop
    for name in ("__init__.py", "qt.py", "model.py", "glue.py", "docker.py"):
        assert (where / name).is_file()
    vendor = where / "vendor"
    assert (vendor / "underpaint_protocol" / "controller.py").is_file()
    assert (vendor / "underpaint_protocol" / "panel.py").is_file()
    assert (vendor / "underpaint_protocol" / "library.py").is_file()
    assert (vendor / "underpaint_protocol" / "pnginfo.py").is_file()
    assert (vendor / "websockets" / "sync" / "client.py").is_file()
    assert not list(vendor.rglob("*.so")) and not list(vendor.rglob("__pycache__"))
    assert "enable_underpaint_krita=true" in (tmp_path / "kritarc").read_text()
    shipped = "".join(path.read_text() for path in where.glob("*.py"))  # no test code, no test import
    assert "UNDERPAINT_KRITA_TEST" not in shipped and "testhook" not in shipped and "sha256" not in shipped


def test_zip_for_import_python_plugin_from_file(tmp_path: Path) -> None:
    path = install(None, tmp_path / "out" / "underpaint-krita.zip", None)
    names = zipfile.ZipFile(path).namelist()
    assert "underpaint.desktop" in names
    assert f"{NAME}/__init__.py" in names and f"{NAME}/vendor/websockets/__init__.py" in names
    assert all(n == "underpaint.desktop" or n.startswith(f"{NAME}/") for n in names)


def test_too_old_krita_is_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(InstallError, match=r"Krita 4.4.8 is too old.*5.1"):
        install(tmp_path / "p", None, "4.4.8", kritarc=tmp_path / "rc")
    with pytest.raises(InstallError, match="cannot read the Krita version"):
        install(tmp_path / "p", None, "latest", kritarc=tmp_path / "rc")


def test_cli_builds_the_zip(tmp_path: Path) -> None:
    out = tmp_path / "k.zip"
    done = subprocess.run(
        [sys.executable, "-m", "underpaint", "install-plugin", "krita", "--zip", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert out.is_file() and "installed the krita plugin" in done.stdout


def test_plugin_imports_on_python_310_syntax() -> None:
    """The plugin must parse on the oldest host Python (3.10): no 3.11+ syntax."""
    import ast

    for path in (Path(__file__).resolve().parents[2] / "plugins" / "krita").rglob("*.py"):
        ast.parse(path.read_text(), feature_version=(3, 10))
