"""The panel's "Upscale and restore" section (GTK 3): factor, upscaler, the refine pass (model,
strength, steps, prompt), the restorer, and the Upscale / Refine-upscale / Restore buttons.

Widgets only: labels, model lists and requests are ``underpaint_protocol.upscale_panel``'s; the job
(the image scaled in one undo group, then one layer over it) the shared controller's and
``canvas.GimpCanvas.scale``'s. Runs on the panel's GTK main thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gi

gi.require_version("Gtk", "3.0")
from gi.repository import Gtk  # noqa: E402

from underpaint_protocol.controller import Controller  # noqa: E402
from underpaint_protocol.panel import model_label  # noqa: E402
from underpaint_protocol.upscale_panel import (  # noqa: E402
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


class UpscaleSection:
    """A collapsed section of the panel; ``start`` hands a request to the panel (which saves settings
    and shows errors like Generate's); ``guard`` makes a field take the wheel only when focused."""

    def __init__(self, controller: Controller, start: Callable[[Any], object], guard: Callable[[Any], None]) -> None:
        self.controller = controller
        self.start = start
        self.expander = Gtk.Expander(label=LABELS["section"])
        grid = Gtk.Grid(column_spacing=6, row_spacing=4, margin_top=2)
        self.factor = Gtk.SpinButton.new_with_range(FACTOR_MIN, FACTOR_MAX, FACTOR_STEP)
        self.factor.set_digits(FACTOR_DECIMALS)
        self.factor.set_value(FACTOR_DEFAULT)
        self.factor.set_tooltip_text(TIPS["factor"])
        guard(self.factor)
        factor_row = Gtk.Box(spacing=4)
        factor_row.pack_start(self.factor, True, True, 0)
        factor_row.pack_start(Gtk.Label(label="×"), False, False, 0)
        self.combos: dict[str, Gtk.ComboBoxText] = {}
        for role in ROLES:
            combo = Gtk.ComboBoxText(hexpand=True)
            guard(combo)
            self.combos[role] = combo
        self.strength = Gtk.SpinButton.new_with_range(STRENGTH_MIN, STRENGTH_MAX, 5)
        self.strength.set_value(REFINE_STRENGTH_DEFAULT)
        self.strength.set_tooltip_text(TIPS["strength"])
        guard(self.strength)
        strength_row = Gtk.Box(spacing=4)
        strength_row.pack_start(self.strength, True, True, 0)
        strength_row.pack_start(Gtk.Label(label="%"), False, False, 0)
        self.steps = Gtk.SpinButton.new_with_range(0, STEPS_MAX, 1)
        self.steps.set_value(0)
        self.steps.set_tooltip_text(TIPS["steps"])
        guard(self.steps)
        self.prompt = Gtk.Entry(placeholder_text=PLACEHOLDERS["prompt"], hexpand=True)
        self.buttons: dict[str, Gtk.Button] = {}
        for action, label in ACTIONS.items():
            button = Gtk.Button(label=label)
            button.set_tooltip_text(TIPS[action])
            button.connect("clicked", lambda _button, action=action: self.run(action))
            self.buttons[action] = button
        fields: dict[str, Gtk.Widget] = {
            "factor": factor_row,
            **self.combos,
            "strength": strength_row,
            "steps": self.steps,
            "prompt": self.prompt,
            **self.buttons,
        }
        for row, key in enumerate(ROWS):
            if key in ACTIONS:
                grid.attach(fields[key], 0, row, 2, 1)
            else:
                grid.attach(Gtk.Label(label=LABELS[key], xalign=0), 0, row, 1, 1)
                grid.attach(fields[key], 1, row, 1, 1)
        self.progress = Gtk.Label(label="", xalign=0, wrap=True)
        grid.attach(self.progress, 0, len(ROWS), 2, 1)
        self.expander.add(grid)
        self._models_of: int | None = None

    def request(self, action: str) -> Any:
        chosen = {role: combo.get_active_id() or None for role, combo in self.combos.items()}
        return upscale_request(
            action,
            factor=float(self.factor.get_value()),
            upscaler=chosen["upscaler"],
            refiner=chosen["refiner"],
            restorer=chosen["restorer"],
            strength_percent=float(self.strength.get_value()),
            prompt=self.prompt.get_text().strip(),
            steps=int(self.steps.get_value()),
        )

    def run(self, action: str) -> None:
        self.start(self.request(action))

    def show(self, controller: Controller) -> None:
        """Model lists from a new welcome; buttons while connected; the current upscale's tile progress."""
        if controller.connected and self._models_of != id(controller.welcome):
            self._models_of = id(controller.welcome)
            for role, combo in self.combos.items():
                wanted = combo.get_active_id()
                combo.remove_all()
                listed = models_for(controller.every_model, role)
                for info in listed:
                    combo.append(str(info["id"]), model_label(info))
                ids = [str(info["id"]) for info in listed]
                if wanted in ids:
                    combo.set_active_id(wanted)
                elif ids:
                    combo.set_active(0)
        for action, button in self.buttons.items():
            button.set_sensitive(controller.connected and self.combos[ACTION_ROLE[action]].get_active_id() is not None)
        job = controller.current
        self.progress.set_text(job.describe() if job is not None and job.mode in ACTIONS else "")
