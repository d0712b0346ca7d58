"""Makes the Krita plugin's package ``underpaint_krita`` importable without Krita (plugins/krita on sys.path:
nothing there shadows the daemon's ``underpaint`` package)."""

from __future__ import annotations

import sys
from pathlib import Path

PLUGIN_DIR = Path(__file__).resolve().parents[2] / "plugins" / "krita"
if str(PLUGIN_DIR) not in sys.path:
    sys.path.insert(0, str(PLUGIN_DIR))


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "host: starts a real Krita / GIMP host provisioned by tools/hosts/provision.sh (fails, never skips, "
        "when one is missing)",
    )
