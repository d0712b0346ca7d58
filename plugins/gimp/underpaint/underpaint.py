#!/usr/bin/env python3
"""underpaint for GIMP 3: inpaint, outpaint, img2img and txt2img from the selection you already have.

GIMP starts this file for every procedure call. The vendored protocol client and pure-Python
websockets (copied by `underpaint install-plugin gimp`) come first on sys.path, so the plug-in needs
nothing from the host's Python beyond the standard library and PyGObject.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
for path in (HERE, os.path.join(HERE, "vendor")):
    if path in sys.path:
        sys.path.remove(path)
    sys.path.insert(0, path)

import gi  # noqa: E402

gi.require_version("Gimp", "3.0")
from gi.repository import Gimp  # noqa: E402
from underpaint_gimp.procedures import UnderpaintPlugIn  # noqa: E402

Gimp.main(UnderpaintPlugIn.__gtype__, sys.argv)
