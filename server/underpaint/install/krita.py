"""`underpaint install-plugin krita`: copy the Krita plugin into Krita's resource folder and enable it.

Krita looks for Python plugins in ``<resource folder>/pykrita``: ``NAME.desktop`` next to the package
``NAME/``. Enabled plugins are listed in ``kritarc`` under ``[python]`` as ``enable_NAME=true``. The
package carries its own ``vendor/`` folder (the shared client and pure-Python websockets), because
Krita's Python has no third-party packages.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from underpaint.folders import app_data_root
from underpaint.install.bundle import InstallError, copy_plugin, plugin_source, zip_folder

NAME = "underpaint_krita"
"""The package name = the .desktop's X-KDE-Library = the kritarc key enable_<NAME>."""
DESKTOP = "underpaint.desktop"
MIN_VERSION = (5, 1)
"""Older Kritas ship a Python below 3.10 (Windows/macOS bundles) or predate the API the plugin uses."""


def _flatpak(platform: str | None, env: Mapping[str, str] | None, home: Path | None) -> Path | None:
    """Krita's Flatpak folder on Linux when that is the Krita in use (it exists, a native one does not)."""
    if (platform or sys.platform) in ("win32", "darwin"):
        return None
    flatpak = (home or Path.home()) / ".var" / "app" / "org.kde.krita"
    native = app_data_root(platform, env, home) / "krita"
    return flatpak if flatpak.is_dir() and not native.is_dir() else None


def resource_dir(platform: str | None = None, env: Mapping[str, str] | None = None, home: Path | None = None) -> Path:
    """Krita's per-user resource folder on this OS."""
    flatpak = _flatpak(platform, env, home)
    return flatpak / "data" / "krita" if flatpak else app_data_root(platform, env, home) / "krita"


def kritarc_path(platform: str | None = None, env: Mapping[str, str] | None = None, home: Path | None = None) -> Path:
    """Where Krita keeps its settings (kritarc) on this OS."""
    flatpak = _flatpak(platform, env, home)
    if flatpak:
        return flatpak / "config" / "kritarc"
    platform = platform or sys.platform
    env = os.environ if env is None else env
    home = home or Path.home()
    if platform == "win32":
        return Path(env.get("LOCALAPPDATA") or home / "AppData" / "Local") / "kritarc"
    if platform == "darwin":
        return home / "Library" / "Preferences" / "kritarc"
    return Path(env.get("XDG_CONFIG_HOME") or home / ".config") / "kritarc"


def enable_in_kritarc(kritarc: Path, name: str = NAME) -> None:
    """Set ``enable_<name>=true`` under ``[python]``, keeping every other line as it is."""
    key = f"enable_{name}"
    lines = kritarc.read_text(encoding="utf-8").splitlines() if kritarc.exists() else []
    out: list[str] = []
    section = None
    done = False
    in_python = False
    for line in lines:
        header = re.match(r"^\s*\[(.*)\]\s*$", line)
        if header:
            if in_python and not done:
                out.append(f"{key}=true")
                done = True
            section = header.group(1)
            in_python = section == "python"
        elif in_python and line.split("=", 1)[0].strip() == key:
            if not done:
                out.append(f"{key}=true")
                done = True
            continue
        out.append(line)
    if not done:
        if in_python:
            out.append(f"{key}=true")
        else:
            if out and out[-1].strip():
                out.append("")
            out += ["[python]", f"{key}=true"]
    kritarc.parent.mkdir(parents=True, exist_ok=True)
    kritarc.write_text("\n".join(out) + "\n", encoding="utf-8")


def _check_version(host_version: str | None) -> None:
    if not host_version:
        return
    match = re.match(r"^\s*(\d+)(?:\.(\d+))?", host_version)
    if match is None:
        raise InstallError(f"cannot read the Krita version {host_version!r} (expected e.g. 5.2.9 or 6.0.4)")
    version = (int(match.group(1)), int(match.group(2) or 0))
    if version < MIN_VERSION:
        raise InstallError(
            f"Krita {host_version} is too old for the underpaint plugin: it needs Krita 5.1 or newer "
            "(Python 3.10+). Update Krita from https://krita.org."
        )


def lay_out(pykrita: Path) -> Path:
    """Put ``underpaint.desktop`` and the package (with ``vendor/``) into a pykrita-style folder."""
    source = plugin_source("krita")
    pykrita.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source / DESKTOP, pykrita / DESKTOP)
    package = copy_plugin(source / NAME, pykrita / NAME)
    readme = source / "README.md"
    if readme.is_file():
        shutil.copy2(readme, package / "README.md")
    return package


def install(
    dest: Path | None = None,
    zip_path: Path | None = None,
    host_version: str | None = None,
    *,
    kritarc: Path | None = None,
) -> Path:
    """Install into ``dest`` (a pykrita folder; default: Krita's own) and enable the plugin in ``kritarc``
    (default: Krita's own), or, with ``zip_path``, build a zip for Tools > Scripts > Import Python
    Plugin from File and return its path."""
    _check_version(host_version)
    try:
        if zip_path is not None:
            with tempfile.TemporaryDirectory(prefix="underpaint-krita-") as scratch:
                folder = Path(scratch)
                lay_out(folder)
                return zip_folder(folder, Path(zip_path).resolve(), folder)
        target = Path(dest) if dest is not None else resource_dir() / "pykrita"
        lay_out(target)
        enable_in_kritarc(kritarc or kritarc_path())
        return target / NAME
    except OSError as error:
        raise InstallError(f"could not install the Krita plugin: {error}") from error
