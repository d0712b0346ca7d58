"""The docker's "Live painting" section: the Live toggle, Apply, and the session's status line.

While Live is on, a light QTimer fingerprints what the artist can change (``KritaCanvas.live_probe``:
the active layer's pixels over the live region and the layers' visibility, no recomposing) and hands
the controller a frame only when that moved; the controller reads the region without the live layer,
sends just the rectangle that changed, and the network runs on its client's thread. The session
itself (states, frames, results) is ``underpaint_protocol.live``'s and the shared controller's.
"""

from __future__ import annotations

import time
from typing import Any

from underpaint_protocol.live import LiveRequest

from .model import DockerModel
from .qt import QTimer, QtWidgets

CHECK_MS = 200
"""How often the painting is checked for changes while Live is on (5 times a second)."""


class LiveBox(QtWidgets.QGroupBox):
    """One group box in the docker; Live paints with the Generate fields (model, prompt, strength, seed)."""

    def __init__(self, model: DockerModel) -> None:
        super().__init__("Live painting")
        self.model = model
        grid = QtWidgets.QGridLayout(self)
        self.live_button = QtWidgets.QPushButton("Live")
        self.live_button.setCheckable(True)
        self.live_button.setToolTip(
            "Redraw the selection (or the whole image) with the fields above while you paint; "
            "the picture shows in one live layer on top"
        )
        self.live_button.clicked.connect(self._toggled)
        self.apply_button = QtWidgets.QPushButton("Apply")
        self.apply_button.setToolTip("Copy the current live picture to a normal layer (one undo step)")
        self.apply_button.clicked.connect(self.apply)
        grid.addWidget(self.live_button, 0, 0)
        grid.addWidget(self.apply_button, 0, 1)
        self.status_label = QtWidgets.QLabel()
        self.status_label.setWordWrap(True)
        self.status_label.setMinimumWidth(0)
        self.status_label.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Preferred)
        grid.addWidget(self.status_label, 1, 0, 1, 2)
        self.last_probe: Any = None
        self.check_ms: list[float] = []
        """What each check cost on the UI thread (ms; probe plus any frame read), the newest last."""
        self.timer = QTimer(self)
        self.timer.setInterval(CHECK_MS)
        self.timer.timeout.connect(self._check)
        model.subscribe(self.refresh)
        self.refresh()

    def _toggled(self, checked: bool) -> None:
        controller = self.model.controller
        if checked:
            self.last_probe = None
            self.check_ms = []
            controller.start_live(LiveRequest.like(self.model.request()))
        else:
            controller.stop_live()
        self.refresh()

    def apply(self) -> list[Any]:
        """The Apply button: the current live result as a normal layer (Live stays on)."""
        return self.model.controller.apply_live()

    def _check(self) -> None:
        """The timer: a frame when the painting moved since the last check (and nothing otherwise)."""
        controller = self.model.controller
        live = controller.live
        if live.state != "live" or live.region is None or live.canvas is None:
            return
        started = time.perf_counter()
        try:
            live.canvas.keep_painting_active()
            probe = live.canvas.live_probe(live.region)
        except Exception:  # the document was closed (or a host API surprise): Live ends
            controller.stop_live()
            return
        if probe != self.last_probe:
            self.last_probe = probe
            controller.feed_live()
        self.check_ms = [*self.check_ms[-99:], (time.perf_counter() - started) * 1000.0]

    def refresh(self) -> None:
        """Toggle and Apply follow the session; the status line says what it does."""
        controller = self.model.controller
        live = controller.live
        on = live.active
        if on and not self.timer.isActive():
            self.timer.start()
        elif not on and self.timer.isActive():
            self.timer.stop()
        self.live_button.setChecked(on)
        self.live_button.setEnabled(controller.connection == "connected" or on)
        self.apply_button.setEnabled(live.layer is not None and live.canvas is not None)
        text = live.status()
        if self.check_ms:
            text += f" Checking the painting: {self.check_ms[-1]:.1f} ms."
        self.status_label.setText(text)
