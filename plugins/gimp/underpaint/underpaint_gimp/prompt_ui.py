"""The panel's "Prompt library" section (GTK 3): the daemon's styles to pick (save the prompt as a
style, rename or delete the user's own), recent prompts to reuse, LoRAs to add to the prompt,
"Prompt from image" (a prompt for the selection or the image) and "Reuse parameters" from a PNG.

Widgets only: the shared ``underpaint_protocol.prompt_panel.PromptLibrary`` (the same one Krita's
docker draws) does the work; what it hands back fills the panel's fields through ``Panel.fill``.
Runs on the panel's GTK main thread.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import gi

gi.require_version("Gtk", "3.0")
from gi.repository import Gtk  # noqa: E402

from underpaint_protocol.prompt_panel import (  # noqa: E402
    LORA_WEIGHT,
    NO_STYLE,
    PromptLibrary,
    history_label,
    with_lora,
)


class PromptSection:
    """A collapsed expander over ``panel`` (its prompt fields, settings and controller)."""

    def __init__(self, panel: Any, guard: Callable[[Gtk.Widget], None], redraw: Callable[[], None]) -> None:
        """``guard`` makes a field take the wheel only when focused (the panel's rule); ``redraw``
        redraws the whole panel (its status line shows the library's errors too)."""
        self.panel = panel
        self.prompts = PromptLibrary(panel.controller, redraw, panel.settings.style, self._remember)
        self._refreshing = False
        self._styles: list[str] = []
        self._recent: list[str] = []
        self._loras: list[str] = []
        self.expander = Gtk.Expander(label="Prompt library: styles, recent, LoRAs")
        grid = Gtk.Grid(column_spacing=6, row_spacing=4, margin_top=2)
        self.style = Gtk.ComboBoxText(hexpand=True)
        self.style.connect("changed", lambda _: self._style_chosen())
        self.style_name = Gtk.Entry(placeholder_text="style name", hexpand=True)
        self.save = Gtk.Button(label="Save")
        self.save.set_tooltip_text(
            "Save the prompt (and negative prompt) as a style under this name; {prompt} marks where "
            "a job's prompt goes (added in front when missing)"
        )
        self.save.connect("clicked", lambda _: self.save_style())
        self.rename = Gtk.Button(label="Rename")
        self.rename.set_tooltip_text("Give the chosen style (your own) this name")
        self.rename.connect("clicked", lambda _: self.prompts.rename_style(self.style_name.get_text()))
        self.delete = Gtk.Button(label="Delete")
        self.delete.set_tooltip_text("Delete the chosen style (your own)")
        self.delete.connect("clicked", lambda _: self.prompts.delete_style())
        self.recent = Gtk.ComboBoxText(hexpand=True)
        self.recent.set_tooltip_text("A prompt you used recently (in any program)")
        self.use_recent = Gtk.Button(label="Use")
        self.use_recent.set_tooltip_text("Fill the fields with the recent prompt, its style and settings")
        self.use_recent.connect("clicked", lambda _: self.reuse_recent())
        self.lora = Gtk.ComboBoxText(hexpand=True)
        self.lora.set_tooltip_text("LoRAs in the daemon's models folders, with their trigger words")
        self.lora_weight = Gtk.SpinButton.new_with_range(-4.0, 4.0, 0.05)
        self.lora_weight.set_digits(2)
        self.lora_weight.set_value(LORA_WEIGHT)
        self.lora_weight.set_tooltip_text("How strongly the LoRA applies")
        self.add_lora = Gtk.Button(label="Add")
        self.add_lora.set_tooltip_text("Add the LoRA (<lora:name:weight>) and its trigger words to the prompt")
        self.add_lora.connect("clicked", lambda _: self.add_chosen_lora())
        for widget in (self.style, self.recent, self.lora, self.lora_weight):
            guard(widget)
        self.describe = Gtk.Button(label="Prompt from image")
        self.describe.set_tooltip_text("Write a prompt describing the selection (or the whole image)")
        self.describe.connect("clicked", lambda _: self.prompts.describe(self._described))
        self.from_png = Gtk.Button(label="Reuse parameters…")
        self.from_png.set_tooltip_text("Fill the fields from the parameters in a PNG (underpaint, A1111, ComfyUI)")
        self.from_png.connect("clicked", lambda _: self._choose_png())
        rows: list[tuple[str, list[Gtk.Widget]]] = [
            ("Style", [self.style]),
            ("", [self.style_name, self.save, self.rename, self.delete]),
            ("Recent", [self.recent, self.use_recent]),
            ("LoRA", [self.lora, self.lora_weight, self.add_lora]),
            ("", [self.describe, self.from_png]),
        ]
        for row, (label, widgets) in enumerate(rows):
            grid.attach(Gtk.Label(label=label, xalign=0), 0, row, 1, 1)
            box = Gtk.Box(spacing=4)
            for widget in widgets:
                box.pack_start(widget, widget.get_hexpand() or label == "", True, 0)
            grid.attach(box, 1, row, 1, 1)
        self.expander.add(grid)

    # ---------------------------------------------------------------- actions

    def _remember(self, name: str) -> None:
        self.panel.settings.style = name

    def _style_chosen(self) -> None:
        if not self._refreshing:
            self.prompts.set_style(self.style.get_active_id() or "")
            self.style_name.set_text(self.prompts.style)

    def save_style(self) -> bool:
        """Save the prompt fields as the style named in the entry ({prompt} added in front when the
        prompt does not mark where a job's prompt goes)."""
        request = self.panel.request(expand=False)
        template = request.prompt if "{prompt}" in request.prompt else f"{{prompt}}, {request.prompt}"
        return self.prompts.save_style(self.style_name.get_text(), template.strip(", "), request.negative_prompt)

    def reuse_recent(self) -> None:
        request = self.prompts.reuse_history(self.recent.get_active())
        if request is not None:
            self.panel.fill(request)

    def add_chosen_lora(self) -> None:
        name = self.lora.get_active_id()
        lora = next((item for item in self.prompts.loras if item["name"] == name and not item.get("refused")), None)
        if lora is not None:
            prompt = self.panel.request(expand=False).prompt
            self.panel.set_prompt(with_lora(prompt, lora, self.lora_weight.get_value()))

    def _described(self, prompt: str) -> None:
        self.panel.set_prompt(prompt)

    def reuse_file(self, path: str) -> bool:
        """The fields from the parameters in the PNG at ``path`` (the file chooser's choice)."""
        try:
            data = Path(path).read_bytes()
        except OSError as error:
            self.panel.controller.error = f"Cannot read {path}: {error}"
            self.show()
            return False
        request = self.prompts.reuse_png(data)
        if request is not None:
            self.panel.fill(request)
        return request is not None

    def _choose_png(self) -> None:
        dialog = Gtk.FileChooserNative.new("Reuse parameters from", self.panel.window, Gtk.FileChooserAction.OPEN)
        png = Gtk.FileFilter()
        png.set_name("PNG images")
        png.add_pattern("*.png")
        png.add_pattern("*.PNG")
        dialog.add_filter(png)
        if dialog.run() == Gtk.ResponseType.ACCEPT:
            self.reuse_file(dialog.get_filename())
        dialog.destroy()

    # ---------------------------------------------------------------- library -> widgets

    def show(self) -> None:
        """Redraw from the library (and ask for its lists on each connection)."""
        if self.panel.closed:
            return
        prompts = self.prompts
        prompts.show()
        self._refreshing = True
        try:
            names = prompts.style_names
            if names != self._styles:
                self._styles = names
                _refill(self.style, [(name, name or NO_STYLE) for name in names])
            if (self.style.get_active_id() or "") != prompts.style and prompts.style in names:
                self.style.set_active_id(prompts.style)
            self.style.set_tooltip_text(prompts.style_tip())
            recent = [history_label(entry) for entry in prompts.history]
            if recent != self._recent:
                self._recent = recent
                _refill(self.recent, [(str(index), label) for index, label in enumerate(recent)])
                self.recent.set_active(0 if recent else -1)
            loras = [prompts.lora_label(lora) for lora in prompts.loras]
            if loras != self._loras:
                self._loras = loras
                rows = [(str(lora["name"]), label) for lora, label in zip(prompts.loras, loras, strict=True)]
                _refill(self.lora, rows)
                usable = [str(lora["name"]) for lora in prompts.loras if not lora.get("refused")]
                if usable:
                    self.lora.set_active_id(usable[0])
        finally:
            self._refreshing = False
        connected = self.panel.controller.connected
        for widget in (self.style, self.save, self.recent, self.describe):
            widget.set_sensitive(connected)
        self.use_recent.set_sensitive(connected and bool(prompts.history))
        self.rename.set_sensitive(connected and prompts.editable)
        self.delete.set_sensitive(connected and prompts.editable)
        usable_loras = connected and any(not lora.get("refused") for lora in prompts.loras)
        for widget in (self.lora, self.lora_weight, self.add_lora):
            widget.set_sensitive(usable_loras)


def _refill(combo: Gtk.ComboBoxText, rows: list[tuple[str, str]]) -> None:
    combo.remove_all()
    for key, label in rows:
        combo.append(key, label)
