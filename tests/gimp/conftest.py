"""Makes the plug-in's ``underpaint_gimp`` package importable here without GIMP.

The plug-in folder cannot simply go on sys.path: its entry file ``underpaint.py`` would shadow the
daemon's ``underpaint`` package. So the package is loaded from its folder by path.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

PLUGIN_DIR = Path(__file__).resolve().parents[2] / "plugins" / "gimp" / "underpaint"


def _load_plugin_package() -> None:
    if "underpaint_gimp" in sys.modules:
        return
    package = PLUGIN_DIR / "underpaint_gimp"
    spec = importlib.util.spec_from_file_location(
        "underpaint_gimp", package / "__init__.py", submodule_search_locations=[str(package)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["underpaint_gimp"] = module
    spec.loader.exec_module(module)


_load_plugin_package()


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "host: starts a real Krita / GIMP host provisioned by tools/hosts/provision.sh (fails, never skips, "
        "when one is missing)",
    )
