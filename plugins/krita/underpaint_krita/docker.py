"""The docker's widgets: they show a DockerModel and forward clicks to it, nothing more."""

from __future__ import annotations

from typing import Any

from krita import DockWidget, Krita

from .glue import KritaGlue
from .model import DockerModel, Settings
from .qt import QByteArray, QObject, Qt, QtGui, QtWidgets, pyqtSignal

DOCKER_ID = "underpaint_docker"
DOCKERS: list[UnderpaintDocker] = []  # every docker made (one per window)
_MODEL: DockerModel | None = None


class Dispatcher(QObject):
    """Runs callables on the thread that made it (Krita's UI thread), from any thread."""

    call = pyqtSignal(object)

    def __init__(self) -> None:
        super().__init__()
        self.call.connect(self._run, Qt.ConnectionType.QueuedConnection)

    def _run(self, function: Any) -> None:
        try:
            function()
        except Exception:
            import traceback

            traceback.print_exc()

    def post(self, function: Any) -> None:
        self.call.emit(function)


_DISPATCHER: Dispatcher | None = None


def shared_model() -> DockerModel:
    """One model per Krita: all windows' dockers show the same connection and queue."""
    global _MODEL, _DISPATCHER
    if _MODEL is None:
        app = Krita.instance()
        _DISPATCHER = Dispatcher()
        settings = Settings(
            lambda key, default: app.readSetting("underpaint", key, default),
            lambda key, value: app.writeSetting("underpaint", key, value),
        )
        glue = KritaGlue(app, lambda data: QByteArray(data))
        _MODEL = DockerModel(glue, _DISPATCHER.post, settings, host=("krita", str(app.version())))
        notifier = app.notifier()
        notifier.setActive(True)
        notifier.applicationClosing.connect(_MODEL.close)
    return _MODEL


def _spin(low: int, high: int, value: int, suffix: str = "") -> QtWidgets.QSpinBox:
    spin = QtWidgets.QSpinBox()
    spin.setRange(low, high)
    spin.setValue(value)
    if suffix:
        spin.setSuffix(suffix)
    return spin


class UnderpaintDocker(DockWidget):
    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle("underpaint")
        self.model = shared_model()
        self._refreshing = False
        self._build()
        self.model.subscribe(self.refresh)
        DOCKERS.append(self)
        self.refresh()
        if self.model.connection == "disconnected" and len(DOCKERS) == 1:
            self.model.connect()

    # ---------------------------------------------------------------- layout

    def _build(self) -> None:
        m = self.model
        root = QtWidgets.QWidget(self)
        form = QtWidgets.QVBoxLayout(root)

        self.url_edit = QtWidgets.QLineEdit(m.url)
        self.url_edit.setToolTip("Address of the underpaint daemon (underpaint serve prints it)")
        self.token_edit = QtWidgets.QLineEdit(m.token)
        self.token_edit.setEchoMode(QtWidgets.QLineEdit.EchoMode.Password)
        self.token_edit.setPlaceholderText("token (underpaint token); optional on this machine")
        self.connect_button = QtWidgets.QPushButton("Connect")
        self.connect_button.clicked.connect(self._connect)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.url_edit, 1)
        row.addWidget(self.connect_button)
        form.addLayout(row)
        form.addWidget(self.token_edit)
        self.status_label = QtWidgets.QLabel()
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form.addWidget(self.status_label)

        grid = QtWidgets.QGridLayout()
        self.model_combo = QtWidgets.QComboBox()
        self.model_combo.currentIndexChanged.connect(self._model_chosen)
        grid.addWidget(QtWidgets.QLabel("Model"), 0, 0)
        grid.addWidget(self.model_combo, 0, 1, 1, 3)
        self.prompt_edit = QtWidgets.QPlainTextEdit()
        self.prompt_edit.setPlaceholderText("Prompt: what to paint")
        self.prompt_edit.setMaximumHeight(70)
        self.prompt_edit.textChanged.connect(self._fields_changed)
        grid.addWidget(self.prompt_edit, 1, 0, 1, 4)
        self.negative_edit = QtWidgets.QLineEdit()
        self.negative_edit.setPlaceholderText("Negative prompt: what to avoid")
        self.negative_edit.textChanged.connect(self._fields_changed)
        grid.addWidget(self.negative_edit, 2, 0, 1, 4)
        self.strength_spin = _spin(1, 100, round(m.strength * 100), " %")
        self.strength_spin.setToolTip("100%: paint anew; lower keeps more of the image")
        self.steps_spin = _spin(0, 150, m.steps)
        self.steps_spin.setSpecialValueText("default")
        grid.addWidget(QtWidgets.QLabel("Strength"), 3, 0)
        grid.addWidget(self.strength_spin, 3, 1)
        grid.addWidget(QtWidgets.QLabel("Steps"), 3, 2)
        grid.addWidget(self.steps_spin, 3, 3)
        self.seed_random = QtWidgets.QCheckBox("Random seed")
        self.seed_random.setChecked(m.seed_random)
        self.seed_spin = _spin(0, 2**31 - 1, m.seed)
        self.batch_spin = _spin(1, 16, m.batch)
        grid.addWidget(self.seed_random, 4, 0, 1, 2)
        grid.addWidget(self.seed_spin, 4, 2, 1, 2)
        grid.addWidget(QtWidgets.QLabel("Batch"), 5, 0)
        grid.addWidget(self.batch_spin, 5, 1)
        for widget in (self.strength_spin, self.steps_spin, self.seed_spin, self.batch_spin):
            widget.valueChanged.connect(self._fields_changed)
        self.seed_random.toggled.connect(self._fields_changed)
        form.addLayout(grid)

        buttons = QtWidgets.QHBoxLayout()
        self.generate_button = QtWidgets.QPushButton("Generate")
        self.generate_button.setToolTip(
            "Selection inside the image: inpaint. Selection past the edge: outpaint. "
            "No selection: refine the image (strength < 100%) or paint a new one (100%)."
        )
        self.generate_button.clicked.connect(lambda: self.model.generate())
        self.cancel_button = QtWidgets.QPushButton("Cancel")
        self.cancel_button.clicked.connect(self._cancel)
        buttons.addWidget(self.generate_button, 2)
        buttons.addWidget(self.cancel_button, 1)
        form.addLayout(buttons)

        expand = QtWidgets.QGroupBox("Expand the canvas (outpaint)")
        expand_row = QtWidgets.QHBoxLayout(expand)
        self.extend_spins = []
        for side in ("Left", "Top", "Right", "Bottom"):
            spin = _spin(0, 4096, 0)
            spin.setToolTip(f"{side}: pixels to add")
            spin.setPrefix(side[0] + " ")
            spin.valueChanged.connect(self._fields_changed)
            self.extend_spins.append(spin)
            expand_row.addWidget(spin)
        self.expand_button = QtWidgets.QPushButton("Expand")
        self.expand_button.clicked.connect(lambda: self.model.generate(expand=True))
        expand_row.addWidget(self.expand_button)
        form.addWidget(expand)

        self.progress_bar = QtWidgets.QProgressBar()
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        form.addWidget(self.progress_bar)
        self.preview_label = QtWidgets.QLabel()
        self.preview_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview_label.setMinimumHeight(96)
        form.addWidget(self.preview_label)
        self.error_label = QtWidgets.QLabel()
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #e05050")
        form.addWidget(self.error_label)
        form.addWidget(QtWidgets.QLabel("Queue"))
        self.queue_list = QtWidgets.QListWidget()
        self.queue_list.setMaximumHeight(120)
        form.addWidget(self.queue_list)
        form.addStretch(1)

        scroll = QtWidgets.QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(root)
        self.setWidget(scroll)

    # ---------------------------------------------------------------- widgets -> model

    def _connect(self) -> None:
        self.model.url = self.url_edit.text().strip()
        self.model.token = self.token_edit.text().strip()
        self.model.connect()

    def _model_chosen(self, index: int) -> None:
        if not self._refreshing and index >= 0:
            self.model.set_model(str(self.model_combo.itemData(index)))

    def _fields_changed(self, *_: Any) -> None:
        if self._refreshing:
            return
        m = self.model
        m.prompt = self.prompt_edit.toPlainText().strip()
        m.negative_prompt = self.negative_edit.text().strip()
        m.strength = self.strength_spin.value() / 100.0
        m.steps = self.steps_spin.value()
        m.seed_random = self.seed_random.isChecked()
        m.seed = self.seed_spin.value()
        m.batch = self.batch_spin.value()
        left, top, right, bottom = (int(spin.value()) for spin in self.extend_spins)
        m.extend = (left, top, right, bottom)
        self.seed_spin.setEnabled(not m.seed_random)

    def _cancel(self) -> None:
        item = self.queue_list.currentItem()
        key = item.data(Qt.ItemDataRole.UserRole) if item is not None and item.isSelected() else None
        self.model.cancel(key)

    # ---------------------------------------------------------------- model -> widgets

    def refresh(self) -> None:
        m = self.model
        self._refreshing = True
        try:
            self.status_label.setText(m.status)
            self.connect_button.setText("Reconnect" if m.connection == "connected" else "Connect")
            ids = [str(info.get("id")) for info in m.models]
            current = [str(self.model_combo.itemData(i)) for i in range(self.model_combo.count())]
            if ids != current:
                self.model_combo.clear()
                for info in m.models:
                    self.model_combo.addItem(f"{info.get('id')} ({info.get('family')})", str(info.get("id")))
                    self.model_combo.setItemData(
                        self.model_combo.count() - 1, str(info.get("description", "")), Qt.ItemDataRole.ToolTipRole
                    )
            if m.model_id in ids:
                self.model_combo.setCurrentIndex(ids.index(m.model_id))
            self.batch_spin.setMaximum(max(1, m.max_batch))
            self.seed_spin.setEnabled(not m.seed_random)
            connected = m.connection == "connected"
            self.generate_button.setEnabled(connected)
            self.expand_button.setEnabled(connected)
            self.cancel_button.setEnabled(m.busy)
            step, total = m.progress
            self.progress_bar.setRange(0, max(total, 1))
            self.progress_bar.setValue(step if total else 0)
            self._show_preview()
            self.error_label.setText(m.error)
            selected = self.queue_list.currentItem()
            selected_key = selected.data(Qt.ItemDataRole.UserRole) if selected is not None else None
            self.queue_list.clear()
            for entry in reversed(m.jobs[-50:]):
                item = QtWidgets.QListWidgetItem(entry.label())
                item.setData(Qt.ItemDataRole.UserRole, entry.ticket)
                item.setToolTip(f"{getattr(entry.canvas, 'name', '')}: {entry.request.prompt}")
                self.queue_list.addItem(item)
                if entry.ticket == selected_key:
                    self.queue_list.setCurrentItem(item)
        finally:
            self._refreshing = False

    def _show_preview(self) -> None:
        image = self.model.preview
        if image is None or image.format != "bgra8":
            self.preview_label.clear()
            return
        # 8-bit BGRA bytes are QImage's Format_ARGB32 on little-endian machines (all Krita platforms)
        qimage = QtGui.QImage(
            bytes(image.data), image.width, image.height, image.width * 4, QtGui.QImage.Format.Format_ARGB32
        ).copy()
        pixmap = QtGui.QPixmap.fromImage(qimage)
        width = max(64, self.preview_label.width() - 8)
        self.preview_label.setPixmap(
            pixmap.scaled(width, 160, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
        )

    def canvasChanged(self, canvas: Any) -> None:  # krita.DockWidget API
        pass
