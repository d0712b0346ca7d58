"""The panel's "Select an object" section (GTK 3): widgets over ``segment.request_for`` and the shared
controller's ``segment``; the mask becomes GIMP's selection in ``GimpCanvas.apply_selection``."""

from __future__ import annotations

from typing import Any

import gi

gi.require_version("Gtk", "3.0")
from gi.repository import GLib, Gtk  # noqa: E402

from underpaint_protocol.controller import UserError  # noqa: E402
from underpaint_protocol.panel import model_label  # noqa: E402
from underpaint_protocol.segment import COMBINE_MODES, segment_models  # noqa: E402

from .segment import ADD_PATH, REMOVE_PATH, request_for  # noqa: E402


class SegmentSection:
    """A collapsed expander: model, combine mode, Refine selection, points paths, select by words."""

    def __init__(self, panel: Any) -> None:
        self.panel = panel
        self.expander = Gtk.Expander(label="Select an object")
        grid = Gtk.Grid(column_spacing=6, row_spacing=4, margin_top=2)
        self.model = Gtk.ComboBoxText(hexpand=True)
        self.model.set_tooltip_text("The model that finds the object (the daemon's segment models)")
        self.combine = Gtk.ComboBoxText()
        for mode in COMBINE_MODES:
            self.combine.append(mode, mode.title())
        self.combine.set_active_id("replace")
        self.combine.set_tooltip_text("How the found object joins the selection you have")
        for row, (label, widget) in enumerate((("Model", self.model), ("Selection", self.combine))):
            grid.attach(Gtk.Label(label=label, xalign=0), 0, row, 1, 1)
            grid.attach(widget, 1, row, 2, 1)
        self.shape = Gtk.CheckButton(label="Use its shape, not only its box")
        self.shape.set_tooltip_text("Send the selection's own (rough) shape to refine, not only its bounding box")
        self.shape.set_active(True)
        grid.attach(self.shape, 0, 2, 3, 1)
        self.refine = Gtk.Button(label="Refine selection")
        self.refine.set_tooltip_text(
            "Draw a rectangle (or a rough selection) around the object, optionally click points with the "
            "Paths tool, then refine it into the object's exact, soft-edged selection (one undo step)"
        )
        self.refine.connect("clicked", lambda _: self.run_refine())
        grid.attach(self.refine, 0, 3, 3, 1)
        self.add_points = Gtk.Button(label="Add points")
        self.add_points.set_tooltip_text(f"Activates the path '{ADD_PATH}': click on the object with the Paths tool")
        self.add_points.connect("clicked", lambda _: self._path(ADD_PATH))
        self.remove_points = Gtk.Button(label="Remove points")
        self.remove_points.set_tooltip_text(f"Activates the path '{REMOVE_PATH}': click off the object")
        self.remove_points.connect("clicked", lambda _: self._path(REMOVE_PATH))
        grid.attach(self.add_points, 0, 4, 2, 1)
        grid.attach(self.remove_points, 2, 4, 1, 1)
        self.words = Gtk.Entry(placeholder_text="Select by words: the red car", hexpand=True)
        self.words.connect("activate", lambda _: self.run_words())
        self.select = Gtk.Button(label="Select")
        self.select.set_tooltip_text("Select what the words describe (needs a text model such as CLIPSeg)")
        self.select.connect("clicked", lambda _: self.run_words())
        grid.attach(self.words, 0, 5, 2, 1)
        grid.attach(self.select, 2, 5, 1, 1)
        self.expander.add(grid)

    def fill_models(self, models: list[dict[str, Any]]) -> None:
        wanted = self.model.get_active_id()
        found = segment_models(models)
        self.model.remove_all()
        for info in found:
            self.model.append(str(info["id"]), model_label(info))
        ids = [str(info["id"]) for info in found]
        if wanted in ids:
            self.model.set_active_id(wanted)
        elif ids:
            self.model.set_active(0)
        for widget in (self.refine, self.select):
            widget.set_sensitive(bool(ids))

    def _start(self, **what: Any) -> None:
        canvas = self.panel.canvas
        try:
            request = request_for(
                canvas, combine=self.combine.get_active_id() or "replace", model=self.model.get_active_id(), **what
            )
        except (UserError, GLib.Error) as error:
            self.panel._say(str(getattr(error, "message", error)))
            return
        self.panel.controller.segment(request, canvas)

    def run_refine(self) -> None:
        """Refine selection: the selection's bounds as the box, its shape too when ticked, the points."""
        self._start(box=self.panel.canvas.selection(), refine_selection=self.shape.get_active())

    def run_words(self) -> None:
        self._start(text=self.words.get_text())

    def _path(self, name: str) -> None:
        try:
            self.panel.canvas.ensure_path(name)
        except GLib.Error as error:
            self.panel._say(f"Could not make the path {name!r}: {error.message}")
