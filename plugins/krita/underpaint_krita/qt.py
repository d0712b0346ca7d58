"""The one place that imports Qt: PyQt6 in Krita 6, PyQt5 in Krita 5.

Krita 6 refuses PyQt5 imports outright, so every module of the plugin imports Qt from here. Use fully
scoped enums (``Qt.AlignmentFlag.AlignLeft``): they work in both bindings.
"""

from __future__ import annotations

import os


def _qt_major() -> int:
    forced = os.environ.get("UNDERPAINT_QT_MAJOR")
    if forced in ("5", "6"):
        return int(forced)
    try:
        from pykrita import qt_major_version  # Krita 5.3+ and 6.x

        return int(qt_major_version())
    except Exception:  # Krita 5.1/5.2 have no pykrita.qt_major_version: always Qt 5
        return 5


QT_MAJOR = _qt_major()

if QT_MAJOR == 6:
    from PyQt6 import QtCore, QtGui, QtWidgets
    from PyQt6.QtCore import QByteArray, QObject, Qt, QTimer, pyqtSignal
else:
    from PyQt5 import QtCore, QtGui, QtWidgets  # type: ignore[no-redef]
    from PyQt5.QtCore import QByteArray, QObject, Qt, QTimer, pyqtSignal  # type: ignore[no-redef,assignment]

__all__ = ["QT_MAJOR", "QByteArray", "QObject", "QTimer", "Qt", "QtCore", "QtGui", "QtWidgets", "pyqtSignal"]
