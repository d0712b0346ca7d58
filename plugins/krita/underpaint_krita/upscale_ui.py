"""The docker's "Upscale and restore" section: factor, upscaler, the refine pass (model, strength,
steps, prompt), the restorer, and the Upscale / Refine-upscale / Restore buttons.

Widgets only: the labels, model lists and requests are ``underpaint_protocol.upscale_panel``'s, the
job (scale the document in one undo step, then one layer over the scaled image) the shared
controller's and ``glue.KritaCanvas.scale``'s.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from underpaint_protocol.panel import model_label
from underpaint_protocol.upscale_panel import (
    ACTION_ROLE,
    ACTIONS,
    FACTOR_DECIMALS,
    FACTOR_DEFAULT,
    FACTOR_MAX,
    FACTOR_MIN,
    FACTOR_STEP,
    LABELS,
    PLACEHOLDERS,
    REFINE_STRENGTH_DEFAULT,
    ROLES,
    ROWS,
    STEPS_MAX,
    STRENGTH_MAX,
    STRENGTH_MIN,
    TIPS,
    models_for,
    upscale_request,
)

from .model import DockerModel
from .qt import Qt, QtWidgets


def _number(text: str, default: float) -> float:
    try:
        return float(text)
    except ValueError:
        return default


class UpscaleBox(QtWidgets.QGroupBox):
    """One group box in the docker; ``guard`` makes a field take wheel steps only when focused."""

    def __init__(self, model: DockerModel, guard: Callable[[Any], Any]) -> None:
        super().__init__(LABELS["section"])
        self.model = model
        settings = model.settings
        grid = QtWidgets.QGridLayout(self)
        grid.setColumnStretch(1, 1)
        self.factor_spin = guard(QtWidgets.QDoubleSpinBox())
        self.factor_spin.setRange(FACTOR_MIN, FACTOR_MAX)
        self.factor_spin.setDecimals(FACTOR_DECIMALS)
        self.factor_spin.setSingleStep(FACTOR_STEP)
        self.factor_spin.setSuffix(" ×")
        self.factor_spin.setValue(_number(settings.get("upscale_factor", ""), FACTOR_DEFAULT))
        self.factor_spin.setToolTip(TIPS["factor"])
        self.factor_spin.setMinimumWidth(0)
        self.combos: dict[str, QtWidgets.QComboBox] = {}
        for role in ROLES:
            combo = guard(QtWidgets.QComboBox())
            combo.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(8)
            combo.currentIndexChanged.connect(lambda _index, role=role: self._chosen(role))
            self.combos[role] = combo
        self.strength_spin = guard(QtWidgets.QSpinBox())
        self.strength_spin.setRange(STRENGTH_MIN, STRENGTH_MAX)
        self.strength_spin.setSuffix(" %")
        self.strength_spin.setValue(int(_number(settings.get("refine_strength", ""), REFINE_STRENGTH_DEFAULT)))
        self.strength_spin.setToolTip(TIPS["strength"])
        self.strength_spin.setMinimumWidth(0)
        self.steps_spin = guard(QtWidgets.QSpinBox())
        self.steps_spin.setRange(0, STEPS_MAX)
        self.steps_spin.setSpecialValueText(PLACEHOLDERS["steps"])
        self.steps_spin.setValue(int(_number(settings.get("refine_steps", ""), 0)))
        self.steps_spin.setToolTip(TIPS["steps"])
        self.steps_spin.setMinimumWidth(0)
        self.prompt_edit = QtWidgets.QLineEdit()
        self.prompt_edit.setPlaceholderText(PLACEHOLDERS["prompt"])
        self.buttons: dict[str, QtWidgets.QPushButton] = {}
        for action, label in ACTIONS.items():
            button = QtWidgets.QPushButton(label)
            button.setToolTip(TIPS[action])
            button.clicked.connect(lambda _checked=False, action=action: self.run(action))
            self.buttons[action] = button
        self.upscale_button = self.buttons["upscale"]
        self.refine_button = self.buttons["refine_upscale"]
        self.restore_button = self.buttons["restore"]

        fields = {
            "factor": self.factor_spin,
            **self.combos,
            "strength": self.strength_spin,
            "steps": self.steps_spin,
            "prompt": self.prompt_edit,
            **self.buttons,
        }
        for row, key in enumerate(ROWS):
            if key in ACTIONS:
                grid.addWidget(fields[key], row, 0, 1, 2)
            else:
                title = QtWidgets.QLabel(LABELS[key])
                title.setBuddy(fields[key])
                grid.addWidget(title, row, 0)
                grid.addWidget(fields[key], row, 1)
        self.progress_label = QtWidgets.QLabel()
        self.progress_label.setWordWrap(True)
        self.progress_label.setMinimumWidth(0)
        self.progress_label.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Preferred)
        grid.addWidget(self.progress_label, len(ROWS), 0, 1, 2)
        self._filling = False
        model.subscribe(self.refresh)
        self.refresh()

    def _chosen(self, role: str) -> None:
        if not self._filling:
            self.model.settings.set(role, str(self.combos[role].currentData() or ""))

    def request(self, action: str) -> Any:
        """The controller request of ``action`` from the fields (remembered for the next session)."""
        settings = self.model.settings
        settings.set("upscale_factor", f"{self.factor_spin.value():g}")
        settings.set("refine_strength", str(self.strength_spin.value()))
        settings.set("refine_steps", str(self.steps_spin.value()))
        chosen = {role: str(self.combos[role].currentData() or "") or None for role in ROLES}
        return upscale_request(
            action,
            factor=float(self.factor_spin.value()),
            upscaler=chosen["upscaler"],
            refiner=chosen["refiner"],
            restorer=chosen["restorer"],
            strength_percent=self.strength_spin.value(),
            prompt=self.prompt_edit.text().strip(),
            steps=self.steps_spin.value(),
        )

    def run(self, action: str) -> Any:
        """A button: the job through the shared controller (errors show in the docker's error line)."""
        return self.model.controller.generate(self.request(action))

    def refresh(self) -> None:
        """Model lists from the daemon's welcome, buttons enabled while connected, the tile progress."""
        models = self.model.controller.every_model
        self._filling = True
        try:
            for role, combo in self.combos.items():
                listed = models_for(models, role)
                ids = [str(info.get("id")) for info in listed]
                if ids != [str(combo.itemData(i)) for i in range(combo.count())]:
                    combo.clear()
                    for info in listed:
                        combo.addItem(model_label(info), str(info.get("id")))
                        combo.setItemData(
                            combo.count() - 1, str(info.get("description", "")), Qt.ItemDataRole.ToolTipRole
                        )
                    wanted = self.model.settings.get(role, "")
                    if wanted in ids:
                        combo.setCurrentIndex(ids.index(wanted))
        finally:
            self._filling = False
        connected = self.model.connection == "connected"
        for action, button in self.buttons.items():
            button.setEnabled(connected and self.combos[ACTION_ROLE[action]].count() > 0)
        job = self.model.controller.current
        text = job.describe() if job is not None and job.mode in ACTIONS else ""
        self.progress_label.setText(text)
        self.progress_label.setVisible(bool(text))
