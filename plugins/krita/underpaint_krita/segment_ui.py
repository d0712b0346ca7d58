"""The docker's "Select an object" section: widgets over ``segment.SegmentFields``, nothing more."""

from __future__ import annotations

from typing import Any

from underpaint_protocol.panel import model_label
from underpaint_protocol.segment import COMBINE_MODES

from .model import DockerModel
from .qt import Qt, QtWidgets
from .segment import ADD_LAYER, REMOVE_LAYER, SegmentFields


class SegmentBox(QtWidgets.QGroupBox):
    def __init__(self, model: DockerModel, guard: Any) -> None:
        super().__init__("Select an object")
        self.fields = SegmentFields(model)
        self._refreshing = False
        grid = QtWidgets.QGridLayout(self)
        grid.setColumnStretch(1, 1)
        self.model_combo = guard(QtWidgets.QComboBox())
        self.model_combo.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.model_combo.setMinimumContentsLength(8)
        self.model_combo.currentIndexChanged.connect(self._model_chosen)
        grid.addWidget(QtWidgets.QLabel("Model"), 0, 0)
        grid.addWidget(self.model_combo, 0, 1, 1, 2)
        self.combine_combo = guard(QtWidgets.QComboBox())
        for mode in COMBINE_MODES:
            self.combine_combo.addItem(mode.title(), mode)
        self.combine_combo.setCurrentIndex(max(0, list(COMBINE_MODES).index(self.fields.combine)))
        self.combine_combo.setToolTip("How the found object joins the selection you have")
        self.combine_combo.currentIndexChanged.connect(self._combine_chosen)
        grid.addWidget(QtWidgets.QLabel("Selection"), 1, 0)
        grid.addWidget(self.combine_combo, 1, 1, 1, 2)
        self.shape_check = QtWidgets.QCheckBox("Use its shape, not only its box")
        self.shape_check.setToolTip("Send the selection's own (rough) shape to refine, not only its bounding box")
        self.shape_check.setChecked(self.fields.use_shape)
        self.shape_check.toggled.connect(self._shape_toggled)
        grid.addWidget(self.shape_check, 2, 0, 1, 3)
        self.refine_button = QtWidgets.QPushButton("Refine selection")
        self.refine_button.setToolTip(
            "Draw a rectangle (or a rough selection) around the object, optionally click points on the "
            "points layers, then refine it into the object's exact, soft-edged selection"
        )
        self.refine_button.clicked.connect(lambda: self.fields.refine())
        grid.addWidget(self.refine_button, 3, 0, 1, 3)
        self.add_points = QtWidgets.QPushButton("Add points")
        self.add_points.setToolTip(
            f"Makes the vector layer '{ADD_LAYER}' active: draw small ellipses on the object, one per point"
        )
        self.add_points.clicked.connect(lambda: self.fields.points_layer(ADD_LAYER))
        self.remove_points = QtWidgets.QPushButton("Remove points")
        self.remove_points.setToolTip(
            f"Makes the vector layer '{REMOVE_LAYER}' active: draw small ellipses on what is not the object"
        )
        self.remove_points.clicked.connect(lambda: self.fields.points_layer(REMOVE_LAYER))
        grid.addWidget(self.add_points, 4, 0, 1, 2)
        grid.addWidget(self.remove_points, 4, 2)
        self.words_edit = QtWidgets.QLineEdit()
        self.words_edit.setPlaceholderText("Select by words: the red car")
        self.words_edit.textChanged.connect(self._words_changed)
        self.words_edit.returnPressed.connect(lambda: self.fields.by_words())
        self.words_button = QtWidgets.QPushButton("Select")
        self.words_button.setToolTip("Select what the words describe (needs a text model such as CLIPSeg)")
        self.words_button.clicked.connect(lambda: self.fields.by_words())
        grid.addWidget(self.words_edit, 5, 0, 1, 2)
        grid.addWidget(self.words_button, 5, 2)

    def _model_chosen(self, index: int) -> None:
        if not self._refreshing and index >= 0:
            self.fields.set_model(str(self.model_combo.itemData(index)))

    def _combine_chosen(self, index: int) -> None:
        if index >= 0:
            self.fields.set_combine(str(self.combine_combo.itemData(index)))

    def _shape_toggled(self, on: bool) -> None:
        self.fields.use_shape = bool(on)

    def _words_changed(self, text: str) -> None:
        self.fields.text = text

    def refresh(self, connected: bool) -> None:
        """The segment models from the daemon's welcome; buttons only while connected."""
        models = self.fields.models()
        ids = [str(info.get("id")) for info in models]
        current = [str(self.model_combo.itemData(i)) for i in range(self.model_combo.count())]
        self._refreshing = True
        try:
            if ids != current:
                self.model_combo.clear()
                for info in models:
                    self.model_combo.addItem(model_label(info), str(info.get("id")))
                    inputs = ", ".join(str(item) for item in info.get("segment_inputs") or [])
                    self.model_combo.setItemData(
                        self.model_combo.count() - 1, f"starts from: {inputs}", Qt.ItemDataRole.ToolTipRole
                    )
            if ids and self.fields.model_id not in ids:
                self.fields.model_id = ids[0]
            if self.fields.model_id in ids:
                self.model_combo.setCurrentIndex(ids.index(self.fields.model_id))
        finally:
            self._refreshing = False
        for widget in (self.refine_button, self.words_button):
            widget.setEnabled(connected and bool(ids))
