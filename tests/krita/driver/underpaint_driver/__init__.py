"""A second Krita plugin, installed only by tests/krita/test_e2e.py beside the real one: it drives the
real docker through its own widgets and writes a report. The shipped plugin never imports it."""

import os

from krita import Krita

if os.environ.get("UNDERPAINT_KRITA_TEST"):
    from .driver import TestDriver

    _app = Krita.instance()
    _app.addExtension(TestDriver(_app))
