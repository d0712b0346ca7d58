"""underpaint for Krita: a docker that sends the selection to the local underpaint daemon.

Works in Krita 5 (PyQt5) and Krita 6 (PyQt6); Qt comes only through ``.qt``. The shared protocol
client and the pure-Python ``websockets`` it needs ship in ``vendor/`` (``underpaint install-plugin
krita`` puts them there), because Krita's Python has no third-party packages.
"""

from __future__ import annotations

import os
import sys

VENDOR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vendor")
if os.path.isdir(VENDOR) and VENDOR not in sys.path:
    sys.path.insert(0, VENDOR)

try:
    import krita

    krita.DockWidgetFactory  # noqa: B018 - not Krita's module unless this exists
except (ImportError, AttributeError):  # imported outside Krita (unit tests): register nothing
    krita = None

if krita is not None:
    from .docker import DOCKER_ID, UnderpaintDocker

    _app = krita.Krita.instance()
    _base = krita.DockWidgetFactoryBase
    try:
        _right = _base.DockPosition.DockRight  # scoped (PyQt6 / Krita 6)
    except AttributeError:
        _right = _base.DockRight  # unscoped (older sip in Krita 5)
    _app.addDockWidgetFactory(krita.DockWidgetFactory(DOCKER_ID, _right, UnderpaintDocker))
