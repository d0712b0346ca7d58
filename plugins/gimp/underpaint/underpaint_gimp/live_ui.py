"""The panel's "Live painting" section (GTK 3): the Live toggle, Apply, and the session's status line.

While Live is on, a light GLib timer fingerprints what the artist can change (``GimpCanvas.live_probe``:
the selected layer's pixels over the live region and the layers' visibility, no visible copy made)
and hands the controller a frame only when that moved; the controller reads the region without the
live layer, sends just the rectangle that changed, and the network runs on its client's thread. The
session itself is ``underpaint_protocol.live``'s and the shared controller's. Main thread only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import gi

gi.require_version("Gtk", "3.0")
from gi.repository import GLib, Gtk  # noqa: E402

from underpaint_protocol.controller import Controller, Request  # noqa: E402
from underpaint_protocol.live import LiveRequest  # noqa: E402

CHECK_MS = 200
"""How often the painting is checked for changes while Live is on (5 times a second)."""


class LiveSection:
    """A section of the panel; Live paints with the Generate fields (``fields`` reads them)."""

    def __init__(self, controller: Controller, fields: Callable[[], Request]) -> None:
        self.controller = controller
        self.fields = fields
        self.expander = Gtk.Expander(label="Live painting")
        box = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=4, margin_top=2)
        row = Gtk.Box(spacing=4)
        self.toggle = Gtk.ToggleButton(label="Live")
        self.toggle.set_tooltip_text(
            "Redraw the selection (or the whole image) with the fields above while you paint; "
            "the picture shows in one live layer on top"
        )
        self._handler = self.toggle.connect("toggled", lambda _: self._toggled())
        self.apply = Gtk.Button(label="Apply")
        self.apply.set_tooltip_text("Copy the current live picture to a normal layer (one undo step)")
        self.apply.connect("clicked", lambda _: self.controller.apply_live())
        row.pack_start(self.toggle, True, True, 0)
        row.pack_start(self.apply, True, True, 0)
        box.pack_start(row, False, False, 0)
        self.status = Gtk.Label(label="Live is off.", xalign=0, wrap=True)
        box.pack_start(self.status, False, False, 0)
        self.expander.add(box)
        self.last_probe: Any = None
        self.check_ms: list[float] = []
        """What each check cost on the main thread (ms; probe plus any frame read), the newest last."""
        self._timer: int | None = None

    def _toggled(self) -> None:
        if self.toggle.get_active():
            self.last_probe = None
            self.check_ms = []
            self.controller.start_live(LiveRequest.like(self.fields()))
        else:
            self.controller.stop_live()
        self.show(self.controller)

    def _check(self) -> bool:
        """The timer: a frame when the painting moved since the last check (and nothing otherwise)."""
        live = self.controller.live
        if live.state != "live" or live.region is None or live.canvas is None:
            return True
        started = time.perf_counter()
        try:
            probe = live.canvas.live_probe(live.region)
        except Exception:  # the image was closed (or a host API surprise): Live ends
            self.controller.stop_live()
            return True
        if probe != self.last_probe:
            self.last_probe = probe
            self.controller.feed_live()
        self.check_ms = [*self.check_ms[-99:], (time.perf_counter() - started) * 1000.0]
        return True

    def show(self, controller: Controller) -> None:
        """Toggle and Apply follow the session; the status line says what it does."""
        live = controller.live
        on = live.active
        if on and self._timer is None:
            self._timer = GLib.timeout_add(CHECK_MS, self._check)
        elif not on and self._timer is not None:
            GLib.source_remove(self._timer)
            self._timer = None
        if self.toggle.get_active() != on:
            self.toggle.handler_block(self._handler)
            self.toggle.set_active(on)
            self.toggle.handler_unblock(self._handler)
        self.toggle.set_sensitive(controller.connected or on)
        self.apply.set_sensitive(live.layer is not None and live.canvas is not None)
        text = live.status()
        if self.check_ms:
            text += f" Checking the painting: {self.check_ms[-1]:.1f} ms."
        self.status.set_text(text)
