"""`underpaint install-plugin gimp`: put the GIMP 3 plug-in where GIMP 3.0 / 3.2 look for it.

GIMP 3 loads a Python plug-in from ``<config>/plug-ins/NAME/NAME.py`` (its own subfolder, named like
the executable entry file). ``<config>`` is GIMP's per-user folder for a series (3.0 and 3.2 keep
separate ones):

- Linux: ``$XDG_CONFIG_HOME/GIMP/3.x`` (default ``~/.config/GIMP/3.x``); the Flatpak keeps it in
  ``~/.var/app/org.gimp.GIMP/config/GIMP/3.x``;
- Windows: ``%APPDATA%\\GIMP\\3.x``; macOS: ``~/Library/Application Support/GIMP/3.x``;
- anywhere: ``$GIMP3_DIRECTORY`` when set (GIMP itself honours it).

Without ``--host-version`` the plug-in goes into every GIMP 3 config folder that exists (GIMP creates
it on first start; we do not create one ourselves, since GIMP would then skip importing older
settings). ``--dest DIR`` installs into the plug-ins folder DIR; ``--zip PATH`` builds a zip to unpack
in a plug-ins folder.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from underpaint.install.bundle import VENDOR_DIR, InstallError, copy_plugin, plugin_source, zip_folder

NAME = "underpaint"
SERIES = ("3.0", "3.2")
FLATPAK_ID = "org.gimp.GIMP"


def config_roots(
    platform: str | None = None, environ: Mapping[str, str] | None = None, home: Path | None = None
) -> list[Path]:
    """Folders that hold GIMP's per-series config folders (``<root>/3.0``), most usual first."""
    platform = platform or sys.platform
    env = os.environ if environ is None else environ
    home = home or Path.home()
    if platform == "win32":
        appdata = env.get("APPDATA")
        return [Path(appdata) / "GIMP" if appdata else home / "AppData" / "Roaming" / "GIMP"]
    if platform == "darwin":
        return [home / "Library" / "Application Support" / "GIMP"]
    xdg = env.get("XDG_CONFIG_HOME")
    native = Path(xdg) / "GIMP" if xdg else home / ".config" / "GIMP"
    return [native, home / ".var" / "app" / FLATPAK_ID / "config" / "GIMP"]


def plugin_folders(
    host_version: str | None,
    platform: str | None = None,
    environ: Mapping[str, str] | None = None,
    home: Path | None = None,
) -> list[Path]:
    """The plug-ins folders to install into (see the module docstring for the rules)."""
    env = os.environ if environ is None else environ
    if host_version is not None and host_version not in SERIES:
        raise InstallError(f"unsupported GIMP version {host_version!r}: the plug-in is for GIMP {' and '.join(SERIES)}")
    if env.get("GIMP3_DIRECTORY"):
        return [Path(env["GIMP3_DIRECTORY"]) / "plug-ins"]
    roots = config_roots(platform, env, home)
    series = [host_version] if host_version else list(SERIES)
    existing = [root / version for version in series for root in roots if (root / version).is_dir()]
    if existing:
        return [folder / "plug-ins" for folder in existing]
    if host_version is not None:
        return [roots[0] / host_version / "plug-ins"]
    looked = ", ".join(str(root / version) for version in series for root in roots)
    raise InstallError(
        f"no GIMP 3 settings folder found (looked for {looked}). Start GIMP 3 once so that it creates it, "
        "or say which GIMP to install for with --host-version 3.0|3.2, or where with --dest PLUG_INS_FOLDER"
    )


def install_into(plug_ins: Path) -> Path:
    """Copy the plug-in (with its vendored client and websockets) to ``plug_ins/underpaint``."""
    source = plugin_source("gimp") / NAME
    if not (source / f"{NAME}.py").is_file():
        raise InstallError(f"the GIMP plug-in sources are incomplete: {source / (NAME + '.py')} is missing")
    target = plug_ins / NAME
    try:
        plug_ins.mkdir(parents=True, exist_ok=True)
        copy_plugin(source, target)
        entry = target / f"{NAME}.py"
        entry.chmod(0o755)
    except OSError as error:
        raise InstallError(f"could not install into {target}: {error}") from None
    for needed in (entry, target / VENDOR_DIR / "websockets", target / VENDOR_DIR / "underpaint_protocol"):
        if not needed.exists():
            raise InstallError(f"the installed plug-in is incomplete: {needed} is missing")
    return target


def build_zip(zip_path: Path) -> Path:
    """A zip holding ``underpaint/underpaint.py`` and friends: unpack it in a plug-ins folder."""
    with tempfile.TemporaryDirectory(prefix="underpaint-gimp-") as temp:
        folder = install_into(Path(temp))
        try:
            return zip_folder(folder, zip_path, Path(temp))
        except OSError as error:
            raise InstallError(f"could not write {zip_path}: {error}") from None


def install(dest: Path | None = None, zip_path: Path | None = None, host_version: str | None = None) -> Path:
    """Install (or zip) the plug-in; returns where it went and says so on stdout when there are several."""
    if zip_path is not None:
        where = build_zip(Path(zip_path))
        print(f"unpack {where} in GIMP's plug-ins folder (Edit > Preferences > Folders > Plug-ins)")
        return where
    folders = [Path(dest)] if dest is not None else plugin_folders(host_version)
    targets = [install_into(folder) for folder in folders]
    for target in targets[1:]:
        print(f"also installed the gimp plugin: {target}")
    print("restart GIMP, open an image and use Filters > underpaint (start the daemon with `underpaint serve`)")
    return targets[0]
