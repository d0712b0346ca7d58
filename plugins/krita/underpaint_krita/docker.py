"""The docker's widgets: they show a DockerModel and forward clicks to it, nothing more."""

from __future__ import annotations

from typing import Any

import krita
from krita import DockWidget, Krita

from underpaint_protocol.panel import ignored_summary, model_label

from .control_ui import GuidesBox
from .glue import KritaGlue
from .live_ui import LiveBox
from .model import DockerModel, Settings
from .prompt_ui import PromptTools
from .qt import QByteArray, QObject, Qt, QtCore, QtGui, QTimer, QtWidgets, pyqtSignal
from .segment_ui import SegmentBox
from .upscale_ui import UpscaleBox

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
        glue = KritaGlue(app, lambda data: QByteArray(data), krita.Selection)
        _MODEL = DockerModel(glue, _DISPATCHER.post, settings, host=("krita", str(app.version())))
        notifier = app.notifier()
        notifier.setActive(True)
        notifier.applicationClosing.connect(_MODEL.close)
    return _MODEL


class WheelGuard(QObject):
    """Wheel events over an unfocused field scroll the docker instead of changing the value."""

    def eventFilter(self, watched: Any, event: Any) -> bool:
        if event.type() == QtCore.QEvent.Type.Wheel and not watched.hasFocus():
            event.ignore()
            return True
        return False


_WHEEL_GUARD: WheelGuard | None = None


def guard_wheel(widget: Any) -> Any:
    """Only a focused (clicked / tabbed-to) field takes wheel steps."""
    global _WHEEL_GUARD
    if _WHEEL_GUARD is None:
        _WHEEL_GUARD = WheelGuard()
    widget.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
    widget.installEventFilter(_WHEEL_GUARD)
    return widget


def _spin(low: int, high: int, value: int, suffix: str = "") -> QtWidgets.QSpinBox:
    spin = QtWidgets.QSpinBox()
    spin.setRange(low, high)
    spin.setValue(value)
    if suffix:
        spin.setSuffix(suffix)
    spin.setMinimumWidth(0)
    return guard_wheel(spin)


def _label(text: str, buddy: Any = None) -> QtWidgets.QLabel:
    label = QtWidgets.QLabel(text)
    if buddy is not None:
        label.setBuddy(buddy)
    return label


def _wrapped() -> QtWidgets.QLabel:
    label = QtWidgets.QLabel()
    label.setWordWrap(True)
    label.setMinimumWidth(0)
    label.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Preferred)
    return label


def qimage_of(image: Any) -> Any:
    """8-bit BGRA bytes are QImage's Format_ARGB32 on little-endian machines (all Krita platforms)."""
    return QtGui.QImage(
        bytes(image.data), image.width, image.height, image.width * 4, QtGui.QImage.Format.Format_ARGB32
    ).copy()


class UnderpaintDocker(DockWidget):
    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle("underpaint")
        self.model = shared_model()
        self._refreshing = False
        self._build()
        self.model.subscribe(self.refresh)
        DOCKERS.append(self)
        self.ticker = QTimer(self)  # elapsed time moves on between the daemon's events
        self.ticker.setInterval(1000)
        self.ticker.timeout.connect(self._tick)
        self.ticker.start()
        self.refresh()
        if self.model.connection == "disconnected" and len(DOCKERS) == 1:
            self.model.connect()

    # ---------------------------------------------------------------- layout

    def _build(self) -> None:
        """Everything in one column that fits a 300 px dock: short labelled rows, grids, wrapping text."""
        m = self.model
        root = QtWidgets.QWidget(self)
        self.root = root
        form = QtWidgets.QVBoxLayout(root)
        form.setContentsMargins(4, 4, 4, 4)

        grid = QtWidgets.QGridLayout()
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(3, 1)
        self.url_edit = QtWidgets.QLineEdit(m.url)
        self.url_edit.setToolTip("Address of the underpaint daemon (underpaint serve prints it)")
        self.connect_button = QtWidgets.QPushButton("Connect")
        self.connect_button.clicked.connect(self._connect)
        grid.addWidget(_label("Server", self.url_edit), 0, 0)
        grid.addWidget(self.url_edit, 0, 1, 1, 2)
        grid.addWidget(self.connect_button, 0, 3)
        self.token_edit = QtWidgets.QLineEdit(m.token)
        self.token_edit.setEchoMode(QtWidgets.QLineEdit.EchoMode.Password)
        self.token_edit.setPlaceholderText("optional on this machine")
        self.token_edit.setToolTip("The daemon's token (underpaint token prints it)")
        grid.addWidget(_label("Token", self.token_edit), 1, 0)
        grid.addWidget(self.token_edit, 1, 1, 1, 3)
        self.status_label = _wrapped()
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        grid.addWidget(self.status_label, 2, 0, 1, 4)

        self.model_combo = guard_wheel(QtWidgets.QComboBox())
        self.model_combo.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.model_combo.setMinimumContentsLength(8)
        self.model_combo.currentIndexChanged.connect(self._model_chosen)
        grid.addWidget(_label("Model", self.model_combo), 3, 0)
        grid.addWidget(self.model_combo, 3, 1, 1, 3)
        self.ignored_label = _wrapped()
        self.ignored_label.setStyleSheet("font-style: italic")
        grid.addWidget(self.ignored_label, 4, 0, 1, 4)
        self.prompt_edit = QtWidgets.QPlainTextEdit()
        self.prompt_edit.setPlaceholderText("Prompt: what to paint")
        self.prompt_edit.setMaximumHeight(60)
        self.prompt_edit.textChanged.connect(self._fields_changed)
        grid.addWidget(self.prompt_edit, 5, 0, 1, 4)
        self.negative_edit = QtWidgets.QLineEdit()
        self.negative_edit.setPlaceholderText("Negative prompt: what to avoid")
        self.negative_edit.textChanged.connect(self._fields_changed)
        grid.addWidget(self.negative_edit, 6, 0, 1, 4)
        self.strength_spin = _spin(1, 100, round(m.strength * 100), " %")
        self.strength_spin.setToolTip("100%: paint anew; lower keeps more of the image")
        self.steps_spin = _spin(0, 150, m.steps)
        self.steps_spin.setSpecialValueText("model default")
        self.strength_label, self.steps_label = _label("Strength", self.strength_spin), _label("Steps", self.steps_spin)
        grid.addWidget(self.strength_label, 7, 0)
        grid.addWidget(self.strength_spin, 7, 1, 1, 3)
        grid.addWidget(self.steps_label, 11, 0)
        grid.addWidget(self.steps_spin, 11, 1, 1, 3)
        self.seed_edit = QtWidgets.QLineEdit("" if m.seed_random else str(m.seed))
        self.seed_edit.setPlaceholderText("random")
        self.seed_edit.setToolTip("Empty: a new random seed each time. A number (0 to 4294967295) repeats a result.")
        self.seed_edit.textChanged.connect(self._seed_edited)
        self.seed_lock = QtWidgets.QToolButton()
        self.seed_lock.setText("Lock")
        self.seed_lock.setCheckable(True)
        self.seed_lock.setChecked(not m.seed_random)
        self.seed_lock.setToolTip("Keep this seed (locks the last seed used when the field says random)")
        self.seed_lock.toggled.connect(self._seed_locked)
        self.seed_label = _label("Seed", self.seed_edit)
        grid.addWidget(self.seed_label, 8, 0)
        grid.addWidget(self.seed_edit, 8, 1, 1, 2)
        grid.addWidget(self.seed_lock, 8, 3)
        self.last_seed_label = _wrapped()
        grid.addWidget(self.last_seed_label, 9, 0, 1, 4)
        self.batch_spin = _spin(1, 16, m.batch)
        grid.addWidget(_label("Batch", self.batch_spin), 10, 0)
        grid.addWidget(self.batch_spin, 10, 1, 1, 3)
        for widget in (self.strength_spin, self.steps_spin, self.batch_spin):
            widget.valueChanged.connect(self._fields_changed)
        form.addLayout(grid)
        self.prompt_tools = PromptTools(m, self._load_fields)
        form.addWidget(self.prompt_tools)
        self.guides_box = GuidesBox(m, guard_wheel)
        form.addWidget(self.guides_box)
        self._tooltips = {
            id(widget): (widget, widget.toolTip())
            for widget in (self.prompt_edit, self.negative_edit, self.strength_spin, self.steps_spin, self.seed_edit)
        }

        self.plan_label = _wrapped()
        form.addWidget(self.plan_label)
        buttons = QtWidgets.QHBoxLayout()
        self.generate_button = QtWidgets.QPushButton("Generate")
        self.generate_button.clicked.connect(lambda: self.model.generate())
        self.cancel_button = QtWidgets.QPushButton("Cancel")
        self.cancel_button.setToolTip("Stops the running job (or the newest waiting one); nothing of it is pasted")
        self.cancel_button.clicked.connect(self._cancel)
        buttons.addWidget(self.generate_button, 2)
        buttons.addWidget(self.cancel_button, 1)
        form.addLayout(buttons)

        expand = QtWidgets.QGroupBox("Expand the canvas (px)")
        expand_grid = QtWidgets.QGridLayout(expand)
        self.extend_spins = []
        for index, side in enumerate(("Left", "Top", "Right", "Bottom")):
            spin = _spin(0, 4096, 0)
            spin.setToolTip(f"Pixels to add on the {side.lower()}")
            spin.valueChanged.connect(self._fields_changed)
            self.extend_spins.append(spin)
            row, column = divmod(index, 2)
            expand_grid.addWidget(_label(side, spin), row, column * 2)
            expand_grid.addWidget(spin, row, column * 2 + 1)
        self.expand_plan = _wrapped()
        expand_grid.addWidget(self.expand_plan, 2, 0, 1, 4)
        self.expand_button = QtWidgets.QPushButton("Expand")
        self.expand_button.clicked.connect(lambda: self.model.generate(expand=True))
        expand_grid.addWidget(self.expand_button, 3, 0, 1, 4)
        form.addWidget(expand)
        self.segment_box = SegmentBox(m, guard_wheel)
        form.addWidget(self.segment_box)
        self.upscale_box = UpscaleBox(m, guard_wheel)
        form.addWidget(self.upscale_box)
        self.live_box = LiveBox(m)
        form.addWidget(self.live_box)

        self.progress_bar = QtWidgets.QProgressBar()
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setValue(0)
        self.progress_bar.setMinimumWidth(0)
        form.addWidget(self.progress_bar)
        self.progress_label = _wrapped()
        form.addWidget(self.progress_label)
        self.error_label = _wrapped()
        self.error_label.setStyleSheet("color: #e05050")
        form.addWidget(self.error_label)
        self.preview_label = QtWidgets.QLabel()
        self.preview_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview_label.setMinimumSize(0, 0)
        form.addWidget(self.preview_label)

        staged = QtWidgets.QHBoxLayout()
        self.previous_button = QtWidgets.QToolButton()
        self.previous_button.setText("<")
        self.previous_button.clicked.connect(lambda: self.model.controller.preview_step(-1))
        self.staged_label = QtWidgets.QLabel()
        self.next_button = QtWidgets.QToolButton()
        self.next_button.setText(">")
        self.next_button.clicked.connect(lambda: self.model.controller.preview_step(1))
        self.apply_button = QtWidgets.QPushButton("Apply")
        self.apply_button.setToolTip("Keep the previewed result as a layer")
        self.apply_button.clicked.connect(lambda: self.model.controller.apply())
        self.apply_all_button = QtWidgets.QPushButton("Apply all")
        self.apply_all_button.setToolTip("Keep every result of the batch as layers in one group (one undo step)")
        self.apply_all_button.clicked.connect(lambda: self.model.controller.apply_all())
        self.discard_button = QtWidgets.QPushButton("Discard")
        self.discard_button.clicked.connect(lambda: self.model.controller.discard())
        for widget in (self.previous_button, self.staged_label, self.next_button):
            staged.addWidget(widget)
        staged.addStretch(1)
        form.addLayout(staged)
        # the buttons on their own row: with the stepper they would not fit a 300 px dock
        staged_buttons = QtWidgets.QHBoxLayout()
        for button in (self.apply_button, self.apply_all_button, self.discard_button):
            staged_buttons.addWidget(button, 1)
        form.addLayout(staged_buttons)
        self.direct_check = QtWidgets.QCheckBox("Results land directly (no preview)")
        self.direct_check.setChecked(m.land_directly)
        self.direct_check.toggled.connect(lambda on: self.model.set_land_directly(bool(on)))
        form.addWidget(self.direct_check)

        form.addWidget(QtWidgets.QLabel("Queue"))
        self.queue_list = QtWidgets.QListWidget()
        self.queue_list.setMaximumHeight(90)
        self.queue_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        form.addWidget(self.queue_list)

        history = QtWidgets.QHBoxLayout()
        history.addWidget(QtWidgets.QLabel("History"), 1)
        self.history_refresh = QtWidgets.QToolButton()
        self.history_refresh.setText("Refresh")
        self.history_refresh.clicked.connect(lambda: self.model.controller.refresh_history())
        self.outputs_button = QtWidgets.QToolButton()
        self.outputs_button.setText("Outputs folder")
        self.outputs_button.clicked.connect(self._open_outputs)
        history.addWidget(self.history_refresh)
        history.addWidget(self.outputs_button)
        form.addLayout(history)
        self.history_list = QtWidgets.QListWidget()
        self.history_list.setIconSize(QtCore.QSize(48, 48))
        self.history_list.setMaximumHeight(160)
        self.history_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.history_list.setWordWrap(True)
        self.history_list.currentRowChanged.connect(self._history_chosen)
        form.addWidget(self.history_list)
        reuse_row = QtWidgets.QHBoxLayout()
        self.reapply_button = QtWidgets.QPushButton("Re-apply")
        self.reapply_button.setToolTip("Paste this result into the active image as a layer")
        self.reapply_button.clicked.connect(self._reapply)
        self.reuse_button = QtWidgets.QPushButton("Reuse")
        self.reuse_button.setToolTip("Copy its prompt, model, strength, steps and seed into the fields")
        self.reuse_button.clicked.connect(self._reuse)
        reuse_row.addWidget(self.reapply_button)
        reuse_row.addWidget(self.reuse_button)
        form.addLayout(reuse_row)
        form.addStretch(1)

        scroll = QtWidgets.QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
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
            self.refresh()

    def _fields_changed(self, *_: Any) -> None:
        if self._refreshing:
            return
        m = self.model
        m.prompt = self.prompt_edit.toPlainText().strip()
        m.negative_prompt = self.negative_edit.text().strip()
        m.strength = self.strength_spin.value() / 100.0
        m.steps = self.steps_spin.value()
        m.batch = self.batch_spin.value()
        left, top, right, bottom = (int(spin.value()) for spin in self.extend_spins)
        m.extend = (left, top, right, bottom)
        self._show_plan()

    def _seed_edited(self, text: str) -> None:
        if self._refreshing:
            return
        problem = self.model.set_seed_text(text)
        self.seed_edit.setToolTip(problem or "Empty: a new random seed each time.")
        self.seed_edit.setStyleSheet("color: #e05050" if problem else "")
        self._refreshing = True
        self.seed_lock.setChecked(not self.model.seed_random)
        self._refreshing = False
        self._show_plan()

    def _seed_locked(self, locked: bool) -> None:
        if self._refreshing:
            return
        self.model.lock_seed(locked)
        self._refreshing = True
        self.seed_edit.setText("" if self.model.seed_random else str(self.model.seed))
        self._refreshing = False
        self._show_plan()

    def _cancel(self) -> None:
        self.model.cancel()  # the running job, whatever row the queue has highlighted

    def _history_item(self) -> Any:
        row = self.history_list.currentRow()
        history = self.model.history
        return history[row] if 0 <= row < len(history) else None

    def _history_chosen(self, row: int) -> None:
        item = self._history_item()
        if item is not None and not self._refreshing:
            self.model.controller.fetch_history(item)

    def _reapply(self) -> None:
        item = self._history_item()
        if item is not None:
            self.model.controller.reapply(item)

    def _reuse(self) -> None:
        item = self._history_item()
        if item is not None:
            self.model.reuse(item)
            self._load_fields()

    def _open_outputs(self) -> None:
        folder = self.model.controller.outputs_folder
        if folder:
            QtGui.QDesktopServices.openUrl(QtCore.QUrl.fromLocalFile(folder))

    def _tick(self) -> None:
        if self.model.busy:
            self.progress_label.setText(self.model.controller.progress_text())

    # ---------------------------------------------------------------- model -> widgets

    def _load_fields(self) -> None:
        """The model's field values into the widgets (after Reuse)."""
        m = self.model
        self._refreshing = True
        try:
            self.prompt_edit.setPlainText(m.prompt)
            self.negative_edit.setText(m.negative_prompt)
            self.strength_spin.setValue(round(m.strength * 100))
            self.steps_spin.setValue(m.steps)
            self.seed_edit.setText("" if m.seed_random else str(m.seed))
            self.seed_lock.setChecked(not m.seed_random)
            for spin, value in zip(self.extend_spins, m.extend, strict=True):
                spin.setValue(value)
        finally:
            self._refreshing = False
        self.refresh()

    def _show_plan(self) -> None:
        m = self.model
        for label, expand in ((self.plan_label, False), (self.expand_plan, True)):
            plan = m.plan(expand)
            if label.text() != plan.sentence:  # restyling on every progress event costs Krita's UI thread
                label.setText(plan.sentence)
                label.setStyleSheet("color: #e05050" if plan.refusal else "")
        ignored = m.ignored()
        fields = {
            "prompt": (self.prompt_edit,),
            "negative_prompt": (self.negative_edit,),
            "strength": (self.strength_spin, self.strength_label),
            "steps": (self.steps_spin, self.steps_label),
            "seed": (self.seed_edit, self.seed_lock, self.seed_label),
        }
        for name, widgets in fields.items():
            for widget in widgets:
                widget.setEnabled(name not in ignored)
                default = self._tooltips.get(id(widget), (widget, widget.toolTip()))[1]
                widget.setToolTip(ignored.get(name, default))
        summary = ignored_summary(m.controller.model_info(m.model_id or None))
        self.ignored_label.setText(summary)
        self.ignored_label.setVisible(bool(summary))

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
                    self.model_combo.addItem(model_label(info), str(info.get("id")))
                    self.model_combo.setItemData(
                        self.model_combo.count() - 1, str(info.get("description", "")), Qt.ItemDataRole.ToolTipRole
                    )
            if m.model_id in ids:
                self.model_combo.setCurrentIndex(ids.index(m.model_id))
            self.batch_spin.setMaximum(max(1, m.max_batch))
            last = m.last_seed
            self.last_seed_label.setText(f"Last seed: {last}" if last is not None else "")
            self.last_seed_label.setVisible(last is not None)
            connected = m.connection == "connected"
            self.generate_button.setEnabled(connected)
            self.expand_button.setEnabled(connected)
            self.segment_box.refresh(connected)
            self.guides_box.refresh(connected)
            self.cancel_button.setEnabled(m.busy)
            self.progress_bar.setValue(round(m.controller.progress_fraction * 1000))
            self.progress_label.setText(m.controller.progress_text())
            self._show_preview()
            self.error_label.setText(m.error)
            self.error_label.setVisible(bool(m.error))
            staged = m.staged
            for widget in (
                self.previous_button,
                self.next_button,
                self.staged_label,
                self.apply_button,
                self.discard_button,
            ):
                widget.setEnabled(staged is not None)
            count = len(staged.job.results) if staged is not None else 0
            self.apply_all_button.setEnabled(count > 1)
            self.staged_label.setText(f"{staged.index + 1}/{count}" if staged is not None else "-")
            self._show_queue()
            self._show_history()
            self.outputs_button.setEnabled(bool(m.controller.outputs_folder))
            self.prompt_tools.refresh()
            if self.prompt_edit.toPlainText().strip() != m.prompt:
                self.prompt_edit.setPlainText(m.prompt)  # Describe and From PNG fill it
        finally:
            self._refreshing = False
        self._show_plan()

    def _show_queue(self) -> None:
        """Rows keep the user's highlight; nothing becomes highlighted by itself."""
        selected = self.queue_list.currentItem()
        selected_key = selected.data(Qt.ItemDataRole.UserRole) if selected is not None else None
        self.queue_list.clear()
        for entry in reversed(self.model.jobs[-50:]):
            item = QtWidgets.QListWidgetItem(entry.label())
            item.setData(Qt.ItemDataRole.UserRole, entry.ticket)
            item.setToolTip(f"{getattr(entry.canvas, 'name', '')}: {entry.request.prompt}")
            self.queue_list.addItem(item)
            if entry.ticket == selected_key:
                self.queue_list.setCurrentItem(item)
        if selected_key is None:
            self.queue_list.setCurrentRow(-1)

    def _show_history(self) -> None:
        row = self.history_list.currentRow()
        self.history_list.clear()
        for entry in self.model.history:
            item = QtWidgets.QListWidgetItem(entry.label())
            if entry.thumbnails and entry.thumbnails[0].format == "bgra8":
                item.setIcon(QtGui.QIcon(QtGui.QPixmap.fromImage(qimage_of(entry.thumbnails[0]))))
            self.history_list.addItem(item)
        if 0 <= row < self.history_list.count():
            self.history_list.setCurrentRow(row)

    def _show_preview(self) -> None:
        image = self.model.preview
        if image is None or image.format != "bgra8":
            self.preview_label.clear()
            self.preview_label.setVisible(False)
            return
        self.preview_label.setVisible(True)
        pixmap = QtGui.QPixmap.fromImage(qimage_of(image))
        width = max(64, self.preview_label.width() - 8)
        self.preview_label.setPixmap(
            pixmap.scaled(width, 160, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
        )

    def canvasChanged(self, canvas: Any) -> None:  # krita.DockWidget API
        self._show_plan()
