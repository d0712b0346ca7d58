"""Copying a plugin with its vendored pure-Python dependencies, into a folder or a zip."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import websockets

import underpaint_protocol

CLIENT_MODULES = (
    "__init__.py",
    "constants.py",
    "errors.py",
    "frames.py",
    "session.py",
    "client.py",
    "jobs.py",
    "panel.py",
    "segment.py",
    "guides.py",
    "guides_panel.py",
    "controller.py",
    "upscale.py",
    "upscale_panel.py",
    "pnginfo.py",
    "library.py",
    "prompt_panel.py",
    "live.py",
)
"""The stdlib-only part of underpaint_protocol (no pydantic): what plugins import."""
VENDOR_DIR = "vendor"
SKIPPED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.so", "*.pyd", "*.c", "*.dylib")


class InstallError(Exception):
    """Why a plugin could not be installed, in words for the user."""


PACKAGED_PLUGINS = Path(__file__).resolve().parent / "plugins"
"""Where a wheel carries the plugins (package data mapped from the checkout's ``plugins/``)."""
CHECKOUT_PLUGINS = Path(__file__).resolve().parents[3] / "plugins"
"""Where an editable install from a checkout finds them."""


def plugin_source(host: str) -> Path:
    """The plugin's folder: inside the installed package (a wheel), else in this checkout."""
    for root in (PACKAGED_PLUGINS, CHECKOUT_PLUGINS):
        if (root / host).is_dir():
            return root / host
    raise InstallError(
        f"the {host} plugin is neither in this installation ({PACKAGED_PLUGINS / host}) nor in a checkout "
        f"({CHECKOUT_PLUGINS / host}); reinstall underpaint from its wheel or a source checkout"
    )


def vendor_into(folder: Path) -> Path:
    """Copy the shared client and websockets (without compiled speedups) into ``folder/vendor``."""
    vendor = folder / VENDOR_DIR
    if vendor.exists():
        shutil.rmtree(vendor)
    protocol = vendor / "underpaint_protocol"
    protocol.mkdir(parents=True)
    for name in CLIENT_MODULES:
        shutil.copy2(Path(underpaint_protocol.__file__).parent / name, protocol / name)
    shutil.copytree(Path(websockets.__file__).parent, vendor / "websockets", ignore=SKIPPED)
    (vendor / "README.txt").write_text(
        "Copied by `underpaint install-plugin`: the underpaint protocol client (MIT) and the pure-Python\n"
        f"part of websockets {websockets.version.version} (BSD-3-Clause, https://github.com/python-websockets/websockets).\n",
        encoding="utf-8",
    )
    return vendor


def copy_plugin(source: Path, target: Path) -> Path:
    """Replace ``target`` with a copy of ``source`` plus the vendored dependencies."""
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target, ignore=SKIPPED)
    vendor_into(target)
    return target


def zip_folder(folder: Path, zip_path: Path, root: Path) -> Path:
    """Zip ``folder`` with paths relative to ``root`` (hosts import zips laid out like their folders)."""
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(root).as_posix())
    return zip_path
