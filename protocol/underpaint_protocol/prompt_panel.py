"""The prompt-library section of a host panel (Krita's docker, GIMP's panel), once for both.

A view-model over the shared :class:`~underpaint_protocol.controller.Controller`: the daemon's styles
to pick, save, rename and delete; the recent prompts (the daemon's history) to reuse; the LoRAs to
add to the prompt; Describe (a prompt from the selection or the image); and the parameters a PNG
carries. Hosts draw its lists and route clicks here; every answer arrives on the UI thread and ends
in ``changed``. What to fill into the fields comes back as a controller ``Request``, the same thing
the history's "reuse" gives, so each host fills its fields one way. Standard library only.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from underpaint_protocol.controller import Controller, Request
from underpaint_protocol.library import job_fields_from_png

NO_STYLE = "(no style)"
"""How pickers show "no style" (the empty name)."""
RECENT = 20
"""How many recent prompts a picker offers."""
LORA_WEIGHT = 0.8
"""The weight a picker starts at (what most LoRA authors suggest)."""
NO_PARAMETERS = "That file carries no generation parameters (underpaint, A1111 or ComfyUI)."


def lora_tag(name: str, weight: float) -> str:
    """A1111's prompt syntax for a LoRA, which the daemon reads from any prompt."""
    return f"<lora:{name}:{weight:g}>"


def with_lora(prompt: str, lora: dict[str, Any], weight: float) -> str:
    """``prompt`` with ``lora``'s tag (replacing an earlier tag of that LoRA) and those of its trigger
    words it does not hold yet."""
    name = str(lora["name"])
    pattern = re.compile(r"\s*<lora:" + re.escape(name) + r":[^>]*>")
    kept = pattern.sub("", prompt).strip()
    missing = [word for word in lora.get("triggers") or () if word.lower() not in kept.lower()]
    words = ", ".join(part for part in (kept, *missing) if part)
    return f"{words} {lora_tag(name, weight)}".strip()


def history_label(entry: dict[str, Any], width: int = 60) -> str:
    """One line for a recent prompt: the prompt (shortened), its style when it had one."""
    prompt = " ".join(str(entry.get("prompt") or "").split()) or "(no prompt)"
    if len(prompt) > width:
        prompt = prompt[: width - 1] + "…"
    return f"{prompt} [{entry['style']}]" if entry.get("style") else prompt


def history_request(entry: dict[str, Any]) -> Request:
    """The fields a recent prompt fills: what the user typed and chose, with a new random seed."""
    return Request(
        prompt=str(entry.get("prompt") or ""),
        negative_prompt=str(entry.get("negative_prompt") or ""),
        strength=entry.get("strength"),
        model=entry.get("model") or None,
        steps=entry.get("steps"),
        guidance=entry.get("guidance"),
        style=entry.get("style") or None,
    )


def png_request(png: bytes) -> Request | None:
    """The fields a PNG's parameters fill (ours, A1111's or ComfyUI's; its LoRAs as prompt tags, its
    seed kept); None when it carries none."""
    try:
        fields = job_fields_from_png(png)
    except ValueError:
        return None
    if fields is None:
        return None
    tags = " ".join(lora_tag(str(lora["name"]), float(lora["weight"])) for lora in fields.get("loras") or ())
    return Request(
        prompt=" ".join(part for part in (fields["prompt"], tags) if part),
        negative_prompt=fields["negative_prompt"] or "",
        strength=fields["strength"],
        seed=fields["seed"],
        model=fields["model"],
        steps=fields["steps"],
        guidance=fields["guidance"],
        style=fields["style"] or None,
    )


class PromptLibrary:
    """What the section shows (``styles``, ``style``, ``history``, ``loras``) and does. ``changed``
    redraws the host; ``remember`` keeps the chosen style in the host's settings."""

    def __init__(
        self,
        controller: Controller,
        changed: Callable[[], None],
        style: str = "",
        remember: Callable[[str], None] | None = None,
    ) -> None:
        self.controller = controller
        self.changed = changed
        self.remember = remember
        self.style = style
        self.styles: list[dict[str, Any]] = []
        self.history: list[dict[str, Any]] = []
        self.loras: list[dict[str, Any]] = []
        self._loaded_for: int | None = None  # id() of the welcome the lists were asked for

    # ---------------------------------------------------------------- lists

    def show(self) -> None:
        """Call from the host's redraw: on each (re)connection, ask the daemon for the lists once."""
        welcome = self.controller.welcome
        if not self.controller.connected:
            self._loaded_for = None
        elif self._loaded_for != id(welcome):
            self._loaded_for = id(welcome)
            self.load()

    def load(self) -> None:
        """Ask for the styles, the recent prompts and the LoRAs (the pickers' refresh)."""
        self.load_styles()
        self.controller.ask_library(lambda library: library.history(RECENT), self._history_loaded)
        self.controller.ask_library(lambda library: library.loras(), self._loras_loaded)

    def load_styles(self) -> None:
        self.controller.ask_library(lambda library: library.styles(), self._styles_loaded)

    def _styles_loaded(self, reply: dict[str, Any]) -> None:
        self.styles = list(reply.get("styles", []))
        if self.style and self.style_info is None:
            self.set_style("")  # renamed or deleted in another program
        if reply.get("notice"):
            self.controller.error = str(reply["notice"])
        self.changed()

    def _history_loaded(self, entries: list[dict[str, Any]]) -> None:
        self.history = list(entries)
        self.changed()

    def _loras_loaded(self, loras: list[dict[str, Any]]) -> None:
        self.loras = list(loras)
        self.changed()

    @property
    def style_names(self) -> list[str]:
        """What a style picker lists: "" (no style) first, then the daemon's order."""
        return ["", *(str(item.get("name")) for item in self.styles)]

    @property
    def style_info(self) -> dict[str, Any] | None:
        """The chosen style as the daemon describes it (None for no style)."""
        key = self.style.casefold()
        return next((item for item in self.styles if str(item.get("name")).casefold() == key), None) if key else None

    @property
    def editable(self) -> bool:
        """The chosen style is the user's own (shipped ones cannot be renamed or deleted)."""
        info = self.style_info
        return info is not None and not info.get("builtin")

    def style_tip(self) -> str:
        info = self.style_info
        if info is None:
            return "A style wraps your prompt in a template (shared by every program using the daemon)"
        negative = f"\nnegative: {info['negative_prompt']}" if info.get("negative_prompt") else ""
        return f"{info['prompt']}{negative}"

    def lora_label(self, lora: dict[str, Any]) -> str:
        """A picker row: the name, its trigger words, or why it is refused."""
        if lora.get("refused"):
            return f"{lora['name']} (refused: not .safetensors)"
        triggers = ", ".join(lora.get("triggers") or ())
        return f"{lora['name']} — {triggers}" if triggers else str(lora["name"])

    # ---------------------------------------------------------------- actions

    def set_style(self, name: str) -> None:
        self.style = name
        if self.remember is not None:
            self.remember(name)
        self.changed()

    def save_style(self, name: str, prompt: str, negative_prompt: str = "") -> bool:
        """Save (or replace) the user's style ``name`` and choose it; the daemon checks it (a template
        without ``{prompt}``, a shipped style's name: its error shows)."""
        wanted = {"name": name.strip(), "prompt": prompt, "negative_prompt": negative_prompt}
        return self.controller.ask_library(
            lambda library: library.save_style(wanted), lambda reply: self._saved(reply, wanted["name"])
        )

    def rename_style(self, new_name: str) -> bool:
        """Rename the chosen style (the user's own) and keep it chosen."""
        old, new = self.style, new_name.strip()
        return self.controller.ask_library(
            lambda library: library.rename_style(old, new), lambda reply: self._saved(reply, new)
        )

    def delete_style(self) -> bool:
        """Delete the chosen style (the user's own); no style is chosen after."""
        old = self.style
        return self.controller.ask_library(lambda library: library.delete_style(old), self._styles_loaded)

    def _saved(self, reply: dict[str, Any], name: str) -> None:
        self.styles = list(reply.get("styles", []))
        self.set_style(name)
        self._styles_loaded(reply)

    def describe(self, on_prompt: Callable[[str], None]) -> bool:
        """Describe: a prompt for the selection (or the whole image); ``on_prompt`` fills the field."""
        return self.controller.interrogate(on_prompt)

    def reuse_png(self, png: bytes) -> Request | None:
        """The fields from a PNG's parameters, its style chosen; None (with why in the controller's
        ``error``) when it carries none."""
        request = png_request(png)
        if request is None:
            self.controller.error = NO_PARAMETERS
            self.changed()
            return None
        self.set_style(request.style or "")
        return request

    def reuse_history(self, index: int) -> Request | None:
        """The fields of the ``index``-th recent prompt, its style chosen."""
        if not 0 <= index < len(self.history):
            return None
        request = history_request(self.history[index])
        self.set_style(request.style or "")
        return request
