"""The docker's prompt-library rows: the daemon's styles to pick (and save / rename / delete the
user's own), recent prompts to reuse, LoRAs to add to the prompt, Describe (a prompt for the
selection or the image, from the daemon) and From PNG (the parameters a PNG carries). Widgets only:
the shared ``prompt_panel.PromptLibrary`` (``DockerModel.prompts``) does the work."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from underpaint_protocol.prompt_panel import LORA_WEIGHT, NO_STYLE, history_label, with_lora

from .qt import QtWidgets


class PromptTools(QtWidgets.QWidget):
    def __init__(self, model: Any, on_fields: Callable[[], None], parent: Any = None) -> None:
        """``on_fields``: the docker reloads its fields from the model (after From PNG, a recent
        prompt, a LoRA added)."""
        super().__init__(parent)
        self.model = model
        self.on_fields = on_fields
        self._refreshing = False
        grid = QtWidgets.QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setColumnStretch(1, 1)
        self.style_combo = _combo()
        self.style_combo.currentIndexChanged.connect(self._style_chosen)
        self.style_menu = QtWidgets.QToolButton()
        self.style_menu.setText("…")
        self.style_menu.setToolTip("Save the prompt as a style, rename or delete your style")
        self.style_menu.setPopupMode(QtWidgets.QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QtWidgets.QMenu(self.style_menu)
        self.save_action = menu.addAction("Save as style…")
        self.save_action.triggered.connect(self._save_style)
        self.rename_action = menu.addAction("Rename style…")
        self.rename_action.triggered.connect(self._rename_style)
        self.delete_action = menu.addAction("Delete style")
        self.delete_action.triggered.connect(lambda: self.model.prompts.delete_style())
        self.style_menu.setMenu(menu)
        self.recent_combo = _combo()
        self.recent_combo.setToolTip("A prompt you used recently (in any program): choose it to fill the fields")
        self.recent_combo.activated.connect(self._recent_chosen)
        self.lora_combo = _combo(3)  # narrow: its row also holds the weight and +, in a 300 px dock
        self.lora_combo.setToolTip("LoRAs in the daemon's models folders, with their trigger words")
        self.lora_weight = QtWidgets.QDoubleSpinBox()
        self.lora_weight.setRange(-4.0, 4.0)
        self.lora_weight.setDecimals(1)
        self.lora_weight.setSingleStep(0.1)
        self.lora_weight.setValue(LORA_WEIGHT)
        self.lora_weight.setToolTip("How strongly the LoRA applies")
        self.lora_add = QtWidgets.QToolButton()  # a small button: the docker must fit a 300 px dock
        self.lora_add.setText("+")
        self.lora_add.setToolTip("Add the LoRA (<lora:name:weight>) and its trigger words to the prompt")
        self.lora_add.clicked.connect(self._add_lora)
        self.describe_button = QtWidgets.QPushButton("Describe")
        self.describe_button.setToolTip("Write a prompt describing the selection (or the whole image)")
        self.describe_button.clicked.connect(lambda: self.model.describe())
        self.reuse_button = QtWidgets.QPushButton("From PNG…")
        self.reuse_button.setToolTip("Fill the fields from the parameters saved in a PNG (underpaint, A1111, ComfyUI)")
        self.reuse_button.clicked.connect(self._reuse_png)
        for row, (text, widget) in enumerate((("Style", self.style_combo), ("Recent", self.recent_combo))):
            label = QtWidgets.QLabel(text)
            label.setBuddy(widget)
            grid.addWidget(label, row, 0)
            grid.addWidget(widget, row, 1, 1, 2 if row else 1)
        grid.addWidget(self.style_menu, 0, 2)
        lora_row = QtWidgets.QHBoxLayout()
        lora_row.addWidget(self.lora_combo, 1)
        lora_row.addWidget(self.lora_weight)
        lora_row.addWidget(self.lora_add)
        grid.addWidget(QtWidgets.QLabel("LoRA"), 2, 0)
        grid.addLayout(lora_row, 2, 1, 1, 2)
        buttons = QtWidgets.QHBoxLayout()
        buttons.addWidget(self.describe_button)
        buttons.addWidget(self.reuse_button)
        grid.addLayout(buttons, 3, 1, 1, 2)

    def refresh(self) -> None:
        prompts = self.model.prompts
        self._refreshing = True
        try:
            names = prompts.style_names
            _fill(self.style_combo, [(name or NO_STYLE, name) for name in names])
            if prompts.style in names:
                self.style_combo.setCurrentIndex(names.index(prompts.style))
            self.style_combo.setToolTip(prompts.style_tip())
            recent = [(history_label(entry), index) for index, entry in enumerate(prompts.history)]
            _fill(self.recent_combo, [("", None), *recent])
            usable = [lora for lora in prompts.loras if not lora.get("refused")]
            _fill(self.lora_combo, [(prompts.lora_label(lora), str(lora["name"])) for lora in prompts.loras])
            connected = self.model.connection == "connected"
            for widget in (self.style_combo, self.style_menu, self.recent_combo, self.describe_button):
                widget.setEnabled(connected)
            self.rename_action.setEnabled(prompts.editable)
            self.delete_action.setEnabled(prompts.editable)
            for widget in (self.lora_combo, self.lora_weight, self.lora_add):
                widget.setEnabled(connected and bool(usable))
        finally:
            self._refreshing = False

    def _style_chosen(self, index: int) -> None:
        if not self._refreshing and index >= 0:
            self.model.prompts.set_style(str(self.style_combo.itemData(index) or ""))

    def _recent_chosen(self, index: int) -> None:
        entry = self.recent_combo.itemData(index)
        if isinstance(entry, int):
            request = self.model.prompts.reuse_history(entry)
            if request is not None:
                self.model.fill(request)
                self.on_fields()

    def _add_lora(self) -> None:
        name = self.lora_combo.currentData()
        lora = next((item for item in self.model.prompts.loras if item["name"] == name), None)
        if lora is None or lora.get("refused"):
            return
        self.model.prompt = with_lora(self.model.prompt, lora, self.lora_weight.value())
        self.on_fields()

    def _save_style(self) -> None:
        name, ok = QtWidgets.QInputDialog.getText(self, "Save as style", "Style name:")
        if not ok or not name.strip():
            return
        template = self.model.prompt if "{prompt}" in self.model.prompt else f"{{prompt}}, {self.model.prompt}"
        template, ok = QtWidgets.QInputDialog.getText(
            self, "Save as style", "Template ({prompt} is where your prompt goes):", text=template.strip(", ")
        )
        if ok:
            self.model.prompts.save_style(name, template, self.model.negative_prompt)

    def _rename_style(self) -> None:
        old = self.model.prompts.style
        name, ok = QtWidgets.QInputDialog.getText(self, "Rename style", f"New name for {old}:", text=old)
        if ok and name.strip() and name.strip() != old:
            self.model.prompts.rename_style(name)

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


def _combo(characters: int = 6) -> Any:
    combo = QtWidgets.QComboBox()
    combo.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(characters)
    return combo


def _fill(combo: Any, items: list[tuple[str, Any]]) -> None:
    """Replace ``combo``'s rows only when they changed (so an open popup and the choice survive)."""
    current = [(combo.itemText(i), combo.itemData(i)) for i in range(combo.count())]
    if current != items:
        chosen = combo.currentIndex()
        combo.clear()
        for text, data in items:
            combo.addItem(text, data)
        if 0 <= chosen < combo.count():
            combo.setCurrentIndex(chosen)
