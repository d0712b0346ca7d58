"""Where underpaint (and the hosts it installs into) keep per-user files on each OS: stdlib only, so
that installing a plugin loads nothing of the daemon."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path


def config_dir() -> Path:
    """The per-user config folder (token lives here)."""
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA", Path.home() / "AppData" / "Roaming")) / "underpaint"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "underpaint"
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "underpaint"


def app_data_root(platform: str | None = None, env: Mapping[str, str] | None = None, home: Path | None = None) -> Path:
    """The per-user folder applications keep their data in on this OS (Roaming AppData, Application
    Support, the XDG data home): underpaint's and Krita's are in it."""
    platform = platform or sys.platform
    env = os.environ if env is None else env
    home = home or Path.home()
    if platform == "win32":
        return Path(env.get("APPDATA") or home / "AppData" / "Roaming")
    if platform == "darwin":
        return home / "Library" / "Application Support"
    return Path(env.get("XDG_DATA_HOME") or home / ".local" / "share")


def data_dir(platform: str | None = None, env: Mapping[str, str] | None = None, home: Path | None = None) -> Path:
    """The per-user data folder (generated outputs and the Figma plugin live here by default); on Windows
    and macOS the config folder's place."""
    return app_data_root(platform, env, home) / "underpaint"
