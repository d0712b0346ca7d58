"""The panel's "Control layers and references" section (GTK 3): pick any layer (several at once) as a
control layer with its kind, strength, range and preprocess, and a layer or an image file as a
reference.

Widgets only: the rows, defaults, labels and which layers can be picked are
``underpaint_protocol.guides_panel``'s; the refusal of what the model cannot take and the reading of
each layer over the planned rectangle are the shared controller's and ``GimpCanvas``'s.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import gi

gi.require_version("Gtk", "3.0")
gi.require_version("GdkPixbuf", "2.0")
gi.require_version("Pango", "1.0")
from gi.repository import GdkPixbuf, GLib, Gtk, Pango  # noqa: E402

from underpaint_protocol.guides_panel import (  # noqa: E402
    KIND_LABELS,
    LABELS,
    STRENGTH_MAX_PERCENT,
    TAKE_LABELS,
    TIPS,
    WEIGHT_MAX_PERCENT,
    FileReference,
    GuideFields,
    HostLayer,
    availability,
    fraction,
    layer_choices,
    model_kinds,
    model_takes,
    percent,
    row_options,
)


def png_of_file(path: str) -> bytes:
    """An image file as PNG bytes (GdkPixbuf reads the common formats)."""
    if path.lower().endswith(".png"):
        return Path(path).read_bytes()
    pixbuf = GdkPixbuf.Pixbuf.new_from_file(path)
    _, data = pixbuf.save_to_bufferv("png", [], [])
    return bytes(data)


def _percent_spin(high: int, value: int, tip: str, wheel: Callable[[Gtk.Widget], None]) -> Gtk.SpinButton:
    spin = Gtk.SpinButton.new_with_range(0, high, 5)
    spin.set_value(value)
    spin.set_tooltip_text(f"{tip} (%)")
    wheel(spin)
    return spin


class GuidesSection:
    """A collapsed expander: a layer picker with Add buttons, a line on what the model takes, the rows."""

    def __init__(self, panel: Any, wheel: Callable[[Gtk.Widget], None]) -> None:
        self.panel = panel
        self.wheel = wheel
        self.fields = GuideFields()
        self.choices: list[HostLayer] = []
        self._shown: tuple[Any, ...] = ()
        self.expander = Gtk.Expander(label=LABELS["section"])
        box = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=4, margin_top=2)
        pick = Gtk.Grid(column_spacing=6, row_spacing=4)
        self.layer = Gtk.ComboBoxText(hexpand=True)
        wheel(self.layer)
        pick.attach(Gtk.Label(label=LABELS["layer"], xalign=0), 0, 0, 1, 1)
        pick.attach(self.layer, 1, 0, 2, 1)
        self.add_control = Gtk.Button(label=LABELS["add_control"])
        self.add_control.set_tooltip_text(TIPS["add_control"])
        self.add_control.connect("clicked", lambda _: self._add(self.fields.add_control))
        self.add_reference = Gtk.Button(label=LABELS["add_reference"])
        self.add_reference.set_tooltip_text(TIPS["add_reference"])
        self.add_reference.connect("clicked", lambda _: self._add(self.fields.add_reference))
        self.reference_file = Gtk.Button(label=LABELS["reference_file"])
        self.reference_file.set_tooltip_text(TIPS["reference_file"])
        self.reference_file.connect("clicked", lambda _: self._pick_file())
        pick.attach(self.add_control, 0, 1, 2, 1)
        pick.attach(self.add_reference, 2, 1, 1, 1)
        pick.attach(self.reference_file, 2, 2, 1, 1)
        box.pack_start(pick, False, False, 0)
        self.hint = Gtk.Label(xalign=0, wrap=True, max_width_chars=40)
        box.pack_start(self.hint, False, False, 0)
        self.rows = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=4)
        box.pack_start(self.rows, False, False, 0)
        self.row_widgets: list[dict[str, Any]] = []
        """Each shown row's widgets by field name, control rows first."""
        self.expander.add(box)

    # ---------------------------------------------------------------- what the buttons do

    def _model(self) -> dict[str, Any] | None:
        return self.panel.controller.model_info(self.panel.model.get_active_id() or None)

    def _add(self, add: Callable[[Any, dict[str, Any] | None], Any]) -> None:
        chosen = self.layer.get_active_id()
        layer = next((item for item in self.choices if str(item.handle) == chosen), None)
        if layer is not None:
            add(layer, self._model())
            self.changed()

    def _pick_file(self) -> None:
        dialog = Gtk.FileChooserDialog(
            title=LABELS["reference_file"], parent=self.panel.window, action=Gtk.FileChooserAction.OPEN
        )
        dialog.add_buttons("_Cancel", Gtk.ResponseType.CANCEL, "_Open", Gtk.ResponseType.ACCEPT)
        images = Gtk.FileFilter()
        images.set_name("Images")
        images.add_pixbuf_formats()
        dialog.add_filter(images)
        path = dialog.get_filename() if dialog.run() == Gtk.ResponseType.ACCEPT else None
        dialog.destroy()
        if path:
            self.add_file(path)

    def add_file(self, path: str) -> None:
        """An image file as a reference row (its pixels read now, sent as PNG)."""
        try:
            reference = FileReference(Path(path).name, png_of_file(path))
            reference.image()
        except (OSError, ValueError, GLib.Error) as error:
            self.panel.controller.error = f"Cannot use {path} as a reference: {error}"
            self.panel._show(self.panel.controller)
            return
        self.fields.add_reference(reference, self._model())
        self.changed()

    def changed(self) -> None:
        """Rows changed: the panel redraws them (``refresh``) and its plan line says what Generate will do."""
        self.panel._refresh()

    # ---------------------------------------------------------------- model -> widgets

    def refresh(self) -> None:
        """The image's layers in the picker; rows whose layer is gone dropped; the rows."""
        try:
            layers = layer_choices(self.panel.canvas.layers()) if self.panel.canvas.is_open() else []
        except GLib.Error:
            layers = []
        if [(c.handle, c.name) for c in layers] != [(c.handle, c.name) for c in self.choices]:
            chosen = self.layer.get_active_id()
            self.layer.remove_all()
            for layer in layers:
                self.layer.append(str(layer.handle), layer.name)
            if not (chosen and self.layer.set_active_id(chosen)) and layers:
                self.layer.set_active(0)
            self.choices = layers
        if layers:
            self.fields.keep(layers)
        model = self._model()
        connected = self.panel.controller.connected
        self.hint.set_text(availability(model) if connected else "")
        for button in (self.add_control, self.add_reference):
            button.set_sensitive(bool(layers))
        self._show_rows(model)

    def _show_rows(self, model: dict[str, Any] | None) -> None:
        kinds, takes = model_kinds(model), model_takes(model)
        shown = self.fields.layout(kinds, takes)
        if shown == self._shown:
            return
        self._shown = shown
        for child in self.rows.get_children():
            self.rows.remove(child)
        self.row_widgets = []
        for index, control in enumerate(self.fields.controls):
            self.rows.pack_start(self._control_row(index, control, kinds), False, False, 0)
        for index, reference in enumerate(self.fields.references):
            self.rows.pack_start(self._reference_row(index, reference, takes), False, False, 0)
        self.rows.show_all()

    def _remove_button(self, remove: Callable[[int], None], index: int) -> Gtk.Button:
        button = Gtk.Button(label="×")
        button.set_tooltip_text(LABELS["remove"])

        def clicked(_: Gtk.Button) -> None:
            remove(index)
            self.changed()

        button.connect("clicked", clicked)
        return button

    def _control_row(self, index: int, control: Any, kinds: list[str]) -> Gtk.Widget:
        frame = Gtk.Frame()
        grid = Gtk.Grid(column_spacing=6, row_spacing=2, margin=4)
        kind = Gtk.ComboBoxText(hexpand=True)
        for value in row_options(kinds, control.kind):
            kind.append(value, KIND_LABELS[value])
        kind.set_active_id(control.kind)
        kind.connect("changed", lambda combo: self._set_control(index, kind=str(combo.get_active_id())))
        self.wheel(kind)
        strength = _percent_spin(STRENGTH_MAX_PERCENT, percent(control.strength), TIPS["strength"], self.wheel)
        strength.connect(
            "value-changed",
            lambda spin: self._set_control(index, strength=fraction(spin.get_value(), STRENGTH_MAX_PERCENT)),
        )
        start = _percent_spin(100, percent(control.start), TIPS["start"], self.wheel)
        start.connect("value-changed", lambda spin: self._set_control(index, start=fraction(spin.get_value())))
        end = _percent_spin(100, percent(control.end), TIPS["end"], self.wheel)
        end.connect("value-changed", lambda spin: self._set_control(index, end=fraction(spin.get_value())))
        preprocess = Gtk.CheckButton(label=LABELS["preprocess"])
        preprocess.set_tooltip_text(TIPS["preprocess"])
        preprocess.set_active(control.preprocess)
        preprocess.connect("toggled", lambda check: self._set_control(index, preprocess=check.get_active()))
        remove = self._remove_button(self.fields.remove_control, index)
        grid.attach(Gtk.Label(label=self.fields.name(control), xalign=0, ellipsize=Pango.EllipsizeMode.END), 0, 0, 2, 1)
        grid.attach(kind, 2, 0, 2, 1)
        grid.attach(remove, 4, 0, 1, 1)
        grid.attach(Gtk.Label(label=LABELS["strength"], xalign=0), 0, 1, 1, 1)
        grid.attach(strength, 1, 1, 4, 1)
        grid.attach(Gtk.Label(label=LABELS["start"], xalign=0), 0, 2, 1, 1)
        grid.attach(start, 1, 2, 1, 1)
        grid.attach(Gtk.Label(label=LABELS["end"], xalign=0), 2, 2, 1, 1)
        grid.attach(end, 3, 2, 2, 1)
        grid.attach(preprocess, 0, 3, 5, 1)
        frame.add(grid)
        self.row_widgets.append(
            {"kind": kind, "strength": strength, "start": start, "end": end, "preprocess": preprocess, "remove": remove}
        )
        return frame

    def _reference_row(self, index: int, reference: Any, takes: list[str]) -> Gtk.Widget:
        frame = Gtk.Frame()
        grid = Gtk.Grid(column_spacing=6, row_spacing=2, margin=4)
        take = Gtk.ComboBoxText(hexpand=True)
        for value in row_options(takes, reference.take):
            take.append(value, TAKE_LABELS[value])
        take.set_active_id(reference.take)
        take.connect("changed", lambda combo: self._set_reference(index, take=str(combo.get_active_id())))
        self.wheel(take)
        weight = _percent_spin(WEIGHT_MAX_PERCENT, percent(reference.weight), TIPS["weight"], self.wheel)
        weight.connect(
            "value-changed",
            lambda spin: self._set_reference(index, weight=fraction(spin.get_value(), WEIGHT_MAX_PERCENT)),
        )
        remove = self._remove_button(self.fields.remove_reference, index)
        name = f"{LABELS['reference']}: {self.fields.name(reference)}"
        grid.attach(Gtk.Label(label=name, xalign=0, ellipsize=Pango.EllipsizeMode.END, hexpand=True), 0, 0, 2, 1)
        grid.attach(remove, 2, 0, 1, 1)
        grid.attach(Gtk.Label(label=LABELS["take"], xalign=0), 0, 1, 1, 1)
        grid.attach(take, 1, 1, 2, 1)
        grid.attach(Gtk.Label(label=LABELS["weight"], xalign=0), 0, 2, 1, 1)
        grid.attach(weight, 1, 2, 2, 1)
        frame.add(grid)
        self.row_widgets.append({"take": take, "weight": weight, "remove": remove})
        return frame

    # ---------------------------------------------------------------- widgets -> model

    def _set_control(self, index: int, **changes: Any) -> None:
        if index < len(self.fields.controls):
            row = self.fields.set_control(index, **changes)
            check = self.row_widgets[index]["preprocess"]
            if check.get_active() != row.preprocess:  # a new kind brings its usual preprocess
                check.set_active(row.preprocess)  # its "toggled" sets the same value again
            self.panel._refresh()

    def _set_reference(self, index: int, **changes: Any) -> None:
        if index < len(self.fields.references):
            self.fields.set_reference(index, **changes)
            self.panel._refresh()
