#!/usr/bin/env python3
"""A second GIMP plug-in, installed only by tests/gimp/test_e2e_gimp.py beside the real one.

Its procedure ``underpaint-panel-test`` opens the real panel (imported from the sibling
``underpaint`` plug-in folder) and drives it through its widgets with ``panel_driver.drive``, so
the shipped plug-in carries no test code and no test import.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PLUGIN = os.path.join(os.path.dirname(HERE), "underpaint")
for path in (HERE, os.path.join(PLUGIN, "vendor"), PLUGIN):
    if path not in sys.path:
        sys.path.insert(0, path)

import gi  # noqa: E402

gi.require_version("Gimp", "3.0")
gi.require_version("GimpUi", "3.0")
gi.require_version("Gtk", "3.0")
from gi.repository import Gimp, GimpUi, GLib, Gtk  # noqa: E402
from panel_driver import drive  # noqa: E402
from underpaint_gimp.panel import Panel  # noqa: E402
from underpaint_gimp.procedures import gimp_version, load_settings, store_settings  # noqa: E402

NAME = "underpaint-panel-test"


def run(procedure, run_mode, image, drawables, config, data):
    GimpUi.init("underpaint")
    panel = Panel(image, load_settings(), store_settings, gimp_version())
    panel.window.show_all()
    drive(panel, os.environ["UNDERPAINT_PANEL_TEST"])
    Gtk.main()
    return procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, GLib.Error())


class PanelTest(Gimp.PlugIn):
    def do_query_procedures(self):
        return [NAME]

    def do_set_i18n(self, name):
        return False

    def do_create_procedure(self, name):
        procedure = Gimp.ImageProcedure.new(self, name, Gimp.PDBProcType.PLUGIN, run, None)
        procedure.set_image_types("RGB*")
        procedure.set_sensitivity_mask(
            Gimp.ProcedureSensitivityMask.DRAWABLE
            | Gimp.ProcedureSensitivityMask.DRAWABLES
            | Gimp.ProcedureSensitivityMask.NO_DRAWABLES
        )
        return procedure


Gimp.main(PanelTest.__gtype__, sys.argv)
