"""The docker's prompt-library row: the daemon's styles to pick from, Describe (a prompt for the
selection or the image, from the daemon) and From PNG (the parameters a PNG carries). Widgets only:
``DockerModel`` does the work through the shared controller."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .qt import QtWidgets

NO_STYLE = "(no style)"


class PromptTools(QtWidgets.QWidget):
    def __init__(self, model: Any, on_fields: Callable[[], None], parent: Any = None) -> None:
        """``on_fields``: the docker reloads its fields from the model (after From PNG)."""
        super().__init__(parent)
        self.model = model
        self.on_fields = on_fields
        self._refreshing = False
        grid = QtWidgets.QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setColumnStretch(1, 1)
        self.style_combo = QtWidgets.QComboBox()
        self.style_combo.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.style_combo.setToolTip(
            "A style wraps your prompt in a template (shared by every program using the daemon)"
        )
        self.style_combo.setMinimumContentsLength(6)
        self.style_combo.currentIndexChanged.connect(self._style_chosen)
        self.describe_button = QtWidgets.QPushButton("Describe")
        self.describe_button.setToolTip("Write a prompt describing the selection (or the whole image)")
        self.describe_button.clicked.connect(lambda: self.model.describe())
        self.reuse_button = QtWidgets.QPushButton("From PNG…")
        self.reuse_button.setToolTip("Fill the fields from the parameters saved in a PNG (underpaint, A1111, ComfyUI)")
        self.reuse_button.clicked.connect(self._reuse_png)
        label = QtWidgets.QLabel("Style")
        label.setBuddy(self.style_combo)
        grid.addWidget(label, 0, 0)
        grid.addWidget(self.style_combo, 0, 1, 1, 2)
        grid.addWidget(self.describe_button, 1, 1)
        grid.addWidget(self.reuse_button, 1, 2)

    def refresh(self) -> None:
        m = self.model
        self._refreshing = True
        try:
            names = ["", *(str(item.get("name")) for item in m.styles)]
            current = [str(self.style_combo.itemData(i)) for i in range(self.style_combo.count())]
            if names != current:
                self.style_combo.clear()
                for name in names:
                    self.style_combo.addItem(name or NO_STYLE, name)
            if m.style in names:
                self.style_combo.setCurrentIndex(names.index(m.style))
            connected = m.connection == "connected"
            self.style_combo.setEnabled(connected)
            self.describe_button.setEnabled(connected)
        finally:
            self._refreshing = False

    def _style_chosen(self, index: int) -> None:
        if not self._refreshing and index >= 0:
            self.model.set_style(str(self.style_combo.itemData(index) or ""))

    def _reuse_png(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Reuse parameters from", "", "PNG images (*.png)")
        if path:
            try:
                data = Path(path).read_bytes()
            except OSError as error:
                self.model.controller.error = f"Cannot read {path}: {error}"
                self.model.changed()
                return
            if self.model.reuse_png(data):
                self.on_fields()
