"""`underpaint install-plugin figma`: write the built Figma plugin to a folder and name its manifest.

Figma installs a development plugin from a ``manifest.json`` the user picks in the desktop app
(Plugins > Development > Import plugin from manifest…); there is no folder Figma scans. So this copies
the bundle the wheel carries (``manifest.json``, ``code.js``, ``ui.html``, built by ``npm run build``
in plugins/figma) to a stable folder and prints the manifest's path. No Node.js is needed here.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from underpaint.folders import data_dir
from underpaint.install.bundle import InstallError, plugin_source, zip_folder

BUNDLE = ("manifest.json", "code.js", "ui.html")
"""The files of the built plugin; the manifest names the other two."""
FOLDER = "figma-plugin"


def built_bundle() -> Path:
    """The folder holding the built bundle: in the wheel, or ``plugins/figma/dist`` of a checkout."""
    dist = plugin_source("figma") / "dist"
    missing = [name for name in BUNDLE if not (dist / name).is_file()]
    if missing:
        raise InstallError(
            f"the Figma plugin is not built ({', '.join(missing)} missing in {dist}); in a checkout run "
            "`npm ci && npm run build` in plugins/figma (Node.js 20+), or install underpaint from its wheel"
        )
    manifest = json.loads((dist / "manifest.json").read_text(encoding="utf-8"))
    for key in ("main", "ui"):
        if not (dist / manifest[key]).is_file():
            raise InstallError(f"the Figma manifest names {manifest[key]}, which is not in {dist}")
    return dist


def install_into(folder: Path) -> Path:
    """Replace ``folder`` with the bundle; returns the manifest's path."""
    source = built_bundle()
    try:
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        for name in BUNDLE:
            shutil.copy2(source / name, folder / name)
    except OSError as error:
        raise InstallError(f"could not write the Figma plugin into {folder}: {error}") from None
    return folder / "manifest.json"


def install(dest: Path | None = None, zip_path: Path | None = None, host_version: str | None = None) -> Path:
    """Write (or zip) the bundle; returns the manifest to import (or the zip). Figma has no versions to pick."""
    del host_version
    if zip_path is not None:
        with tempfile.TemporaryDirectory(prefix="underpaint-figma-") as temp:
            folder = Path(temp) / FOLDER
            install_into(folder)
            try:
                where = zip_folder(folder, Path(zip_path), Path(temp))
            except OSError as error:
                raise InstallError(f"could not write {zip_path}: {error}") from None
        print(f"unpack {where}, then import its {FOLDER}/manifest.json in Figma as below")
        return where
    manifest = install_into(Path(dest) if dest is not None else data_dir() / FOLDER)
    print(
        "In the Figma desktop app: Plugins > Development > Import plugin from manifest…, pick\n"
        f"  {manifest}\nthen start the daemon (`underpaint serve`) and paste the token from `underpaint token`."
    )
    return manifest
