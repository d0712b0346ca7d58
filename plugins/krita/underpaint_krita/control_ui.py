"""The docker's "Control layers and references" section: pick any layer (several at once) as a control
layer with its kind, strength, range and preprocess, and a layer or an image file as a reference.

Widgets only: the rows, defaults, labels and which layers can be picked are
``underpaint_protocol.guides_panel``'s (``DockerModel.guides``); the refusal of what the model cannot
take and the reading of each layer over the planned rectangle are the shared controller's and
``glue.KritaCanvas``'s.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from underpaint_protocol.controller import UserError
from underpaint_protocol.guides_panel import (
    KIND_LABELS,
    LABELS,
    STRENGTH_MAX_PERCENT,
    TAKE_LABELS,
    TIPS,
    WEIGHT_MAX_PERCENT,
    FileReference,
    HostLayer,
    availability,
    fraction,
    layer_choices,
    model_kinds,
    model_takes,
    percent,
    row_options,
)

from .model import DockerModel
from .qt import QtCore, QtGui, QtWidgets

IMAGE_FILES = "Images (*.png *.jpg *.jpeg *.webp *.bmp *.tif *.tiff)"


def _name_label(text: str) -> Any:
    """A row's layer name: cut rather than widen the docker past its 300 px."""
    label = QtWidgets.QLabel(text)
    label.setToolTip(text)
    label.setMinimumWidth(0)
    label.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Preferred)
    return label


def _percent_spin(guard: Callable[[Any], Any], high: int, value: int, tip: str) -> Any:
    spin = guard(QtWidgets.QSpinBox())
    spin.setRange(0, high)
    spin.setSuffix(" %")
    spin.setValue(value)
    spin.setToolTip(tip)
    spin.setMinimumWidth(0)
    return spin


def png_of_file(path: str) -> bytes:
    """An image file as PNG bytes (Qt reads the formats Krita's own Qt reads)."""
    if path.lower().endswith(".png"):
        return Path(path).read_bytes()
    image = QtGui.QImage(path)
    if image.isNull():
        raise UserError(f"Cannot read {path} as an image.")
    data = QtCore.QByteArray()
    buffer = QtCore.QBuffer(data)
    buffer.open(QtCore.QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")
    buffer.close()
    return bytes(data)


class GuidesBox(QtWidgets.QGroupBox):
    """One group box in the docker; ``guard`` makes a field take wheel steps only when focused."""

    def __init__(self, model: DockerModel, guard: Callable[[Any], Any]) -> None:
        super().__init__(LABELS["section"])
        self.model = model
        self.guard = guard
        self.fields = model.guides
        self.choices: list[HostLayer] = []
        self._shown: tuple[Any, ...] = ()
        layout = QtWidgets.QVBoxLayout(self)
        pick = QtWidgets.QGridLayout()
        pick.setColumnStretch(1, 1)
        self.layer_combo = guard(QtWidgets.QComboBox())
        self.layer_combo.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.layer_combo.setMinimumContentsLength(8)
        pick.addWidget(QtWidgets.QLabel(LABELS["layer"]), 0, 0)
        pick.addWidget(self.layer_combo, 0, 1, 1, 2)
        self.add_control_button = QtWidgets.QPushButton(LABELS["add_control"])
        self.add_control_button.setToolTip(TIPS["add_control"])
        self.add_control_button.clicked.connect(lambda: self._add(self.fields.add_control))
        self.add_reference_button = QtWidgets.QPushButton(LABELS["add_reference"])
        self.add_reference_button.setToolTip(TIPS["add_reference"])
        self.add_reference_button.clicked.connect(lambda: self._add(self.fields.add_reference))
        pick.addWidget(self.add_control_button, 1, 0, 1, 2)
        pick.addWidget(self.add_reference_button, 1, 2)
        self.file_button = QtWidgets.QPushButton(LABELS["reference_file"])
        self.file_button.setToolTip(TIPS["reference_file"])
        self.file_button.clicked.connect(self._reference_file)
        pick.addWidget(self.file_button, 2, 2)
        layout.addLayout(pick)
        self.hint = QtWidgets.QLabel()
        self.hint.setWordWrap(True)
        self.hint.setMinimumWidth(0)
        self.hint.setStyleSheet("font-style: italic")
        layout.addWidget(self.hint)
        self.rows = QtWidgets.QVBoxLayout()
        layout.addLayout(self.rows)
        self.row_widgets: list[dict[str, Any]] = []
        """Each shown row's widgets by field name, control rows first (for the test driver too)."""

    # ---------------------------------------------------------------- what the buttons do

    def _chosen(self) -> HostLayer | None:
        index = self.layer_combo.currentIndex()
        return self.choices[index] if 0 <= index < len(self.choices) else None

    def _model(self) -> dict[str, Any] | None:
        return self.model.controller.model_info(self.model.model_id or None)

    def _add(self, add: Callable[[HostLayer, dict[str, Any] | None], object]) -> None:
        """An Add button: a row for the chosen layer (``GuideFields.add_control`` or ``add_reference``)."""
        layer = self._chosen()
        if layer is not None:
            add(layer, self._model())
            self._changed()

    def _reference_file(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, LABELS["reference_file"], "", IMAGE_FILES)
        if not path:
            return
        try:
            reference = FileReference(Path(path).name, png_of_file(path))
            reference.image()
        except (OSError, ValueError, UserError) as error:
            self.model.controller.error = f"Cannot use {path} as a reference: {error}"
            self.model.changed()
            return
        self.fields.add_reference(reference, self._model())
        self._changed()

    def _changed(self) -> None:
        self.model.changed()  # the docker redraws: the plan line says what Generate will do now

    # ---------------------------------------------------------------- model -> widgets

    def refresh(self, connected: bool) -> None:
        """The active document's layers in the picker; rows whose layer is gone dropped; the rows."""
        try:
            layers = layer_choices(self.model.glue.active_canvas().layers())
        except UserError:
            layers = []
        if [(c.handle, c.name) for c in layers] != [(c.handle, c.name) for c in self.choices]:
            chosen = self._chosen()
            self.layer_combo.clear()
            for layer in layers:
                self.layer_combo.addItem(layer.name)
            handles = [layer.handle for layer in layers]
            if chosen is not None and chosen.handle in handles:
                self.layer_combo.setCurrentIndex(handles.index(chosen.handle))
            self.choices = layers
        if layers:
            self.fields.keep(layers)  # a deleted layer's row goes (the plan line follows the docker's refresh)
        model = self._model()
        self.hint.setText(availability(model) if connected else "")
        self.hint.setVisible(connected)
        for button in (self.add_control_button, self.add_reference_button):
            button.setEnabled(bool(layers))
        self._show_rows(model)

    def _show_rows(self, model: dict[str, Any] | None) -> None:
        kinds, takes = model_kinds(model), model_takes(model)
        shown = self.fields.layout(kinds, takes)
        if shown == self._shown:
            return
        self._shown = shown
        while self.rows.count():
            item = self.rows.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        self.row_widgets = []
        for index, control in enumerate(self.fields.controls):
            self.rows.addWidget(self._control_row(index, control, kinds))
        for index, reference in enumerate(self.fields.references):
            self.rows.addWidget(self._reference_row(index, reference, takes))

    def _control_row(self, index: int, control: Any, kinds: list[str]) -> Any:
        box = QtWidgets.QFrame()
        box.setFrameShape(QtWidgets.QFrame.Shape.StyledPanel)
        grid = QtWidgets.QGridLayout(box)
        grid.setContentsMargins(4, 2, 4, 2)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(3, 1)
        name = _name_label(self.fields.name(control))
        kind = self.guard(QtWidgets.QComboBox())
        for value in row_options(kinds, control.kind):
            kind.addItem(KIND_LABELS[value], value)
        kind.setCurrentIndex(kind.findData(control.kind))
        kind.currentIndexChanged.connect(lambda _: self._set_control(index, kind=str(kind.currentData())))
        remove = QtWidgets.QToolButton()
        remove.setText("×")
        remove.setToolTip(LABELS["remove"])
        remove.clicked.connect(lambda: self._remove(self.fields.remove_control, index))
        strength = _percent_spin(self.guard, STRENGTH_MAX_PERCENT, percent(control.strength), TIPS["strength"])
        strength.valueChanged.connect(
            lambda value: self._set_control(index, strength=fraction(value, STRENGTH_MAX_PERCENT))
        )
        start = _percent_spin(self.guard, 100, percent(control.start), TIPS["start"])
        start.valueChanged.connect(lambda value: self._set_control(index, start=fraction(value)))
        end = _percent_spin(self.guard, 100, percent(control.end), TIPS["end"])
        end.valueChanged.connect(lambda value: self._set_control(index, end=fraction(value)))
        preprocess = QtWidgets.QCheckBox(LABELS["preprocess"])
        preprocess.setToolTip(TIPS["preprocess"])
        preprocess.setChecked(control.preprocess)
        preprocess.toggled.connect(lambda on: self._set_control(index, preprocess=bool(on)))
        grid.addWidget(name, 0, 0, 1, 2)
        grid.addWidget(kind, 0, 2, 1, 2)
        grid.addWidget(remove, 0, 4)
        grid.addWidget(QtWidgets.QLabel(LABELS["strength"]), 1, 0)
        grid.addWidget(strength, 1, 1, 1, 4)
        grid.addWidget(QtWidgets.QLabel(LABELS["start"]), 2, 0)
        grid.addWidget(start, 2, 1)
        grid.addWidget(QtWidgets.QLabel(LABELS["end"]), 2, 2)
        grid.addWidget(end, 2, 3, 1, 2)
        grid.addWidget(preprocess, 3, 0, 1, 5)
        widgets = {"kind": kind, "strength": strength, "start": start, "end": end, "preprocess": preprocess}
        self.row_widgets.append({**widgets, "remove": remove, "name": name})
        return box

    def _reference_row(self, index: int, reference: Any, takes: list[str]) -> Any:
        box = QtWidgets.QFrame()
        box.setFrameShape(QtWidgets.QFrame.Shape.StyledPanel)
        grid = QtWidgets.QGridLayout(box)
        grid.setContentsMargins(4, 2, 4, 2)
        grid.setColumnStretch(1, 1)
        name = _name_label(f"{LABELS['reference']}: {self.fields.name(reference)}")
        take = self.guard(QtWidgets.QComboBox())
        for value in row_options(takes, reference.take):
            take.addItem(TAKE_LABELS[value], value)
        take.setCurrentIndex(take.findData(reference.take))
        take.currentIndexChanged.connect(lambda _: self._set_reference(index, take=str(take.currentData())))
        weight = _percent_spin(self.guard, WEIGHT_MAX_PERCENT, percent(reference.weight), TIPS["weight"])
        weight.valueChanged.connect(
            lambda value: self._set_reference(index, weight=fraction(value, WEIGHT_MAX_PERCENT))
        )
        remove = QtWidgets.QToolButton()
        remove.setText("×")
        remove.setToolTip(LABELS["remove"])
        remove.clicked.connect(lambda: self._remove(self.fields.remove_reference, index))
        grid.addWidget(name, 0, 0, 1, 2)
        grid.addWidget(remove, 0, 2)
        grid.addWidget(QtWidgets.QLabel(LABELS["take"]), 1, 0)
        grid.addWidget(take, 1, 1, 1, 2)
        grid.addWidget(QtWidgets.QLabel(LABELS["weight"]), 2, 0)
        grid.addWidget(weight, 2, 1, 1, 2)
        self.row_widgets.append({"take": take, "weight": weight, "remove": remove, "name": name})
        return box

    # ---------------------------------------------------------------- widgets -> model

    def _set_control(self, index: int, **changes: Any) -> None:
        if index < len(self.fields.controls):
            row = self.fields.set_control(index, **changes)
            check = self.row_widgets[index]["preprocess"]
            if check.isChecked() != row.preprocess:  # a new kind brings its usual preprocess
                check.blockSignals(True)
                check.setChecked(row.preprocess)
                check.blockSignals(False)
            self._changed()

    def _set_reference(self, index: int, **changes: Any) -> None:
        if index < len(self.fields.references):
            self.fields.set_reference(index, **changes)
            self._changed()

    def _remove(self, remove: Callable[[int], None], index: int) -> None:
        remove(index)
        self._changed()
