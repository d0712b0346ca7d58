"""The end-to-end driver, run when UNDERPAINT_KRITA_TEST names a JSON spec (tests/krita/test_e2e.py).

Opens the spec's image, selects a rectangle, fills the docker's own widgets and clicks its Generate
button for each job, waits (on a timer, never blocking the UI thread) for the results to be pasted,
checks undo, and writes a JSON report to UNDERPAINT_TEST_REPORT. Krita is left running for the
screenshot; the test ends it.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from krita import Extension, Krita, Selection
from underpaint_krita import docker as docker_module
from underpaint_krita.qt import QT_MAJOR, QByteArray, QtCore, QtGui, QTimer, QtWidgets

UPSCALE_MODES = ("upscale", "refine_upscale", "restore")


def _tree(node: Any) -> list[dict[str, Any]]:
    out = []
    for child in node.childNodes():
        if child is None:  # a node on its way in or out while Krita still applies a stroke
            continue
        bounds = child.bounds()
        out.append(
            {
                "name": child.name(),
                "type": child.type(),
                "visible": bool(child.visible()),
                "bounds": [bounds.x(), bounds.y(), bounds.width(), bounds.height()],
                "children": _tree(child),
            }
        )
    return out


def _find(node: Any, name: str) -> Any:
    for child in node.childNodes():
        if child.name() == name:
            return child
        found = _find(child, name)
        if found is not None:
            return found
    return None


def _find_last(node: Any, name: str) -> Any:
    """The last layer named ``name`` in stacking order (bottom to top, depth first)."""
    found = None
    for child in node.childNodes():
        if child.name() == name:
            found = child
        found = _find_last(child, name) or found
    return found


def _key(node: Any) -> str:
    uid = node.uniqueId()
    return str(uid.toString()) if hasattr(uid, "toString") else str(uid)


def _preview_name(root: Any) -> str:
    return next((n.name() for n in root.childNodes() if n.name().startswith("[preview")), "")


class TestDriver(Extension):
    def __init__(self, parent: Any) -> None:
        super().__init__(parent)
        self.spec = json.loads(Path(os.environ["UNDERPAINT_KRITA_TEST"]).read_text(encoding="utf-8"))
        self.report: dict[str, Any] = {"stage": "start", "qt_major": QT_MAJOR, "python": sys.version.split()[0]}
        self.started = False
        self.timer = QTimer()
        self.timer.setInterval(50)
        self.timer.timeout.connect(self._tick)
        self.step = self._open
        self.deadline = 0.0
        self.last_tick = 0.0
        self.max_gap = 0.0
        self.job_index = 0
        self.entry: Any = None
        self.in_tick = False

    def setup(self) -> None:
        pass

    def createActions(self, window: Any) -> None:
        if not self.started:
            self.started = True
            QTimer.singleShot(300, self.timer.start)

    # ---------------------------------------------------------------- state machine

    def _tick(self) -> None:
        if self.in_tick:  # Krita's waitForDone() can run timers re-entrantly
            return
        self.in_tick = True
        try:
            self._tick_once()
        finally:
            self.in_tick = False

    def _tick_once(self) -> None:
        now = time.monotonic()
        if self.last_tick and self.step in (self._wait_job, self._live_wait):
            self.max_gap = max(self.max_gap, now - self.last_tick)
        self.last_tick = now
        try:
            self.step()
        except Exception:
            self.report["error"] = traceback.format_exc()
            self._finish()

    def _open(self) -> None:
        app = Krita.instance()
        if app.activeWindow() is None or not docker_module.DOCKERS:
            return
        self.report["krita_version"] = app.version()
        doc = app.openDocument(self.spec["image"])
        app.activeWindow().addView(doc)
        app.setActiveDocument(doc)
        doc.waitForDone()
        x, y, w, h = self.spec["selection"]
        selection = Selection()
        selection.select(x, y, w, h, 255)
        doc.setSelection(selection)
        self.doc = doc
        self.report["document"] = {
            "width": doc.width(),
            "height": doc.height(),
            "color": [doc.colorModel(), doc.colorDepth()],
        }
        self.originals = self._digests()
        self.offset = (0, 0)
        self.size = (doc.width(), doc.height())
        self.report["layers_before"] = _tree(doc.rootNode())
        dock = docker_module.DOCKERS[0]
        for other in app.dockers():  # room for the docker in the screenshot
            if other.objectName() not in (docker_module.DOCKER_ID, "KisLayerBox"):
                other.setVisible(False)
        dock.setVisible(True)
        dock.raise_()
        self.dock = dock
        root = dock.root
        self.report["size_hint"] = {
            "minimum_width": root.minimumSizeHint().width(),
            "dock_width": dock.width(),
            "horizontal_scrollbar": dock.widget().horizontalScrollBar().isVisible(),
        }
        self.report["wheel"] = self._wheel_over(dock.strength_spin)
        self.deadline = time.monotonic() + 20
        self.report["stage"] = "connecting"
        self._checkpoint()
        self.step = self._wait_connected

    def _wheel_over(self, spin: Any) -> dict[str, Any]:
        """A wheel notch over an unfocused field, delivered the way Qt delivers a real one."""
        before = spin.value()
        point = QtCore.QPointF(5, 5)
        event = QtGui.QWheelEvent(
            point,
            spin.mapToGlobal(point.toPoint()).toPointF()
            if QT_MAJOR == 6
            else QtCore.QPointF(spin.mapToGlobal(point.toPoint())),
            QtCore.QPoint(0, 0),
            QtCore.QPoint(0, -120),
            QtCore.Qt.MouseButton.NoButton,
            QtCore.Qt.KeyboardModifier.NoModifier,
            QtCore.Qt.ScrollPhase.NoScrollPhase,
            False,
        )
        QtWidgets.QApplication.sendEvent(spin, event)
        return {"before": before, "after": spin.value(), "focused": bool(spin.hasFocus())}

    def _digests(self) -> dict[str, str]:
        out = {}
        w, h = self.doc.width(), self.doc.height()
        for node in self.doc.rootNode().childNodes():
            if str(node.type()).endswith("mask"):
                continue  # the global selection mask is not a layer of the picture
            out[node.name()] = hashlib.sha256(bytes(node.pixelData(0, 0, w, h))).hexdigest()
        return out

    def _wait_connected(self) -> None:
        model = self.dock.model
        if model.connection == "connected":
            self.report["status"] = model.status
            self.report["models"] = [m.get("id") for m in model.models]
            self.job_index = 0
            self.step = self._history if self.spec.get("history_only") else self._start_job
        elif time.monotonic() > self.deadline:
            raise RuntimeError(f"docker never connected: {model.status}")

    def _start_job(self) -> None:
        jobs = self.spec["jobs"]
        if self.job_index >= len(jobs):
            segment = self.spec.get("segment")
            if segment and not self.report.get("segment"):
                self.report["segment"] = {}
                self.segment_todo = list(segment["combine"])
                self.step = self._segment_start
            elif self.spec.get("live") and "live" not in self.report:
                self.step = self._live_begin
            else:
                self.step = self._library_start if self.spec.get("library") else self._undo_check
            return
        job = jobs[self.job_index]
        dock = self.dock
        if job.get("upscale"):
            self._start_upscale(job)
            return
        if not self._layers_made(job):
            return
        styles = dock.prompt_tools.style_combo
        names = [str(styles.itemData(i) or "") for i in range(styles.count())]
        if job.get("style", "") not in names:  # the daemon's styles arrive after connecting
            if time.monotonic() > self.deadline:
                raise RuntimeError(f"no style {job.get('style')!r} in {names}")
            return
        styles.setCurrentIndex(names.index(job.get("style", "")))  # the user's pick
        lora = job.get("lora")
        loras = dock.prompt_tools.lora_combo
        if lora and loras.findData(lora["name"]) < 0:  # the daemon's LoRA list arrives after connecting
            if time.monotonic() > self.deadline:
                raise RuntimeError(f"no LoRA {lora['name']!r} in the picker")
            return
        ids = [str(dock.model_combo.itemData(i)) for i in range(dock.model_combo.count())]
        dock.model_combo.setCurrentIndex(ids.index(job["model"]))
        dock.prompt_edit.setPlainText(job.get("prompt", ""))
        dock.negative_edit.setText(job.get("negative_prompt", ""))
        dock.steps_spin.setValue(int(job.get("steps", 0)))
        dock.batch_spin.setValue(int(job.get("batch", 1)))
        dock.strength_spin.setValue(int(job.get("strength", 100)))
        dock.seed_edit.setText(str(job.get("seed", 1)))  # typing a number locks it
        if lora:
            self._pick_lora(lora)
        dock.direct_check.setChecked(not job.get("preview"))
        expand = job.get("expand")
        for spin, value in zip(dock.extend_spins, expand or (0, 0, 0, 0), strict=True):
            spin.setValue(int(value))
        if expand:
            self._deselect()
            self.report["selection_after_deselect"] = self.doc.selection() is not None
        if job.get("cancel"):  # a finished row highlighted, as in the artist's report
            dock.queue_list.setCurrentRow(dock.queue_list.count() - 1)
            self.highlighted = dock.queue_list.currentItem().text()
        self.report.setdefault("highlight_before", {})[job["name"]] = dock.queue_list.currentRow()
        if job.get("control_layer"):
            self._make_control_layer(job["control_layer"])
        if job.get("shown_copy"):
            self._shown_copy(job["shown_copy"])
        self._set_controls(job.get("controls") or [])
        self._set_references(job.get("references") or [])
        self.doc.waitForDone()
        w, h = self.doc.width(), self.doc.height()
        self.merged_before = hashlib.sha256(bytes(self.doc.pixelData(0, 0, w, h))).hexdigest()
        self.tree_before = _tree(self.doc.rootNode())
        before = len(dock.model.jobs)
        self.clicked_at = time.monotonic()
        (dock.expand_button if expand else dock.generate_button).click()  # the user's code path
        if len(dock.model.jobs) == before:
            raise RuntimeError(f"Generate made no job: {dock.model.error}")
        self.entry = dock.model.jobs[-1]
        self.deadline = time.monotonic() + float(job.get("timeout", self.spec.get("job_timeout", 40)))
        self.report["stage"] = f"job {job['name']}"
        self._checkpoint()
        self.step = self._wait_job

    def _lines(self, name: str, step: int) -> Any:
        """A paint layer (not yet in the image) of white lines every ``step`` px on transparent."""
        w, h = self.doc.width(), self.doc.height()
        white, clear = b"\xff\xff\xff\xff", b"\0\0\0\0"
        lines = b"".join(white if x % step == 0 else clear for x in range(w))
        rows = [white * w if y % step == 0 else lines for y in range(h)]
        node = self.doc.createNode(name, "paintlayer")
        node.setPixelData(QByteArray(b"".join(rows)), 0, 0, w, h)
        return node

    def _make_control_layer(self, spec: dict[str, Any]) -> None:
        """A hidden paint layer of white lines on transparent (the artist's sketch), on top."""
        node = self._lines(spec["name"], int(spec.get("step", 16)))
        node.setVisible(False)
        self.doc.rootNode().addChildNode(node, None)
        self.doc.waitForDone()

    def _layers_made(self, job: dict[str, Any]) -> bool:
        """The job's ``make_layers`` made (on its first tick) and hidden; a vector layer is drawn
        visible and hidden once Krita has rendered its shapes (on later ticks), as an artist draws
        a sketch and then hides it."""
        if not job.get("_made"):
            job["_made"] = True
            self.rendering = [self._make_layer(layer) for layer in job.get("make_layers") or []]
            self.render_deadline = time.monotonic() + 60
        while self.rendering:
            node = self.rendering[0]
            if node.visible():
                w, h = self.doc.width(), self.doc.height()
                if not any(bytes(node.projectionPixelData(0, 0, w, h))[3::4]):
                    if time.monotonic() > self.render_deadline:
                        raise RuntimeError(f"Krita never rendered the layer {node.name()}")
                    return False
                node.setVisible(False)
            self.rendering.pop(0)
        self.doc.refreshProjection()
        self.doc.waitForDone()
        return True

    def _make_layer(self, spec: dict[str, Any]) -> Any:
        """A layer on top, as the artist makes one: a group holding a paint layer of lines, a vector
        layer of shapes (an SVG; left visible until rendered), or a paint layer holding a picture (a
        reference); hidden."""
        doc, root = self.doc, self.doc.rootNode()
        if spec["kind"] == "group":
            node = doc.createGroupLayer(spec["name"])
            node.addChildNode(self._lines(spec["child"], int(spec["step"])), None)
            root.addChildNode(node, None)
        elif spec["kind"] == "vector":
            node = doc.createVectorLayer(spec["name"])
            root.addChildNode(node, None)
            shapes = node.addShapesFromSvg(spec["svg"])
            self.report.setdefault("vector_shapes", []).append(len(shapes or []))
            doc.refreshProjection()
            return node
        else:
            x, y, w, h = spec["rect"]
            pixels = bytes(  # a picture: colour bands that change across and down (BGRA)
                value for row in range(h) for col in range(w) for value in ((col * 5) % 256, (row * 7) % 256, 200, 255)
            )
            node = doc.createNode(spec["name"], "paintlayer")
            node.setPixelData(QByteArray(pixels), x, y, w, h)
            root.addChildNode(node, None)
        node.setVisible(False)
        doc.refreshProjection()
        doc.waitForDone()
        return node

    def _shown_copy(self, spec: dict[str, Any]) -> None:
        """A hidden paint layer holding what Krita shows for the top-level layer ``spec["of"]``: the
        image composed with only that layer visible (Krita's own rendering, not the layer API the
        plugin reads)."""
        doc, root = self.doc, self.doc.rootNode()
        w, h = doc.width(), doc.height()
        target = _find(root, spec["of"])
        shown = {_key(node): bool(node.visible()) for node in root.childNodes()}
        for node in root.childNodes():
            node.setVisible(_key(node) == _key(target))
        doc.refreshProjection()
        # Krita re-renders a vector layer's shapes a moment after it is shown (seen in Krita 5: the
        # image read at once was empty); wait for them, up to 10 s
        self._settle(lambda: any(bytes(doc.pixelData(0, 0, w, h))[3::4]))
        pixels = bytes(doc.pixelData(0, 0, w, h))
        for node in root.childNodes():
            node.setVisible(shown[_key(node)])
        doc.refreshProjection()
        doc.waitForDone()
        self.report.setdefault("shown", {})[spec["of"]] = sum(1 for alpha in pixels[3::4] if alpha)
        copy = doc.createNode(spec["name"], "paintlayer")
        copy.setPixelData(QByteArray(pixels), 0, 0, w, h)
        copy.setVisible(False)
        root.addChildNode(copy, None)
        doc.waitForDone()

    def _pick_lora(self, lora: dict[str, Any]) -> None:
        """The LoRA picker: choose the LoRA, its weight, click + (its tag and trigger words join the prompt)."""
        tools = self.dock.prompt_tools
        combo = tools.lora_combo
        combo.setCurrentIndex(combo.findData(lora["name"]))
        tools.lora_weight.setValue(float(lora["weight"]))
        tools.lora_add.click()
        self.report.setdefault("lora_picker", {}).update(
            {
                "rows": [combo.itemText(i) for i in range(combo.count())],
                "enabled": tools.lora_add.isEnabled(),
                "prompt": self.dock.prompt_edit.toPlainText(),
            }
        )

    def _set_references(self, references: list[dict[str, Any]]) -> None:
        """Each reference through the section's widgets: a layer picked and Add reference, or an image
        file through the file button (the file dialog's answer is the only thing given)."""
        if not references:
            return
        box = self.dock.guides_box
        chooser = QtWidgets.QFileDialog.getOpenFileName
        try:
            for reference in references:
                box.refresh(True)
                if "file" in reference:
                    path = reference["file"]
                    QtWidgets.QFileDialog.getOpenFileName = staticmethod(lambda *_args, _path=path, **_kw: (_path, ""))
                    box.file_button.click()
                else:
                    names = [box.layer_combo.itemText(i) for i in range(box.layer_combo.count())]
                    box.layer_combo.setCurrentIndex(names.index(reference["layer"]))
                    box.add_reference_button.click()
                box.refresh(True)
        finally:
            QtWidgets.QFileDialog.getOpenFileName = chooser
        rows = [r.weight for r in self.dock.model.guides.references]
        self.report.setdefault("reference_rows", []).append({"weights": rows, "error": self.dock.model.error})

    def _set_controls(self, controls: list[dict[str, Any]]) -> None:
        """Each control row through the section's widgets: pick the layer, Add control layer, then
        its kind, strength and range."""
        if not controls:
            return
        box = self.dock.guides_box
        for control in controls:
            box.refresh(True)
            names = [box.layer_combo.itemText(i) for i in range(box.layer_combo.count())]
            box.layer_combo.setCurrentIndex(names.index(control["layer"]))
            box.add_control_button.click()
            box.refresh(True)
            row = box.row_widgets[-1]
            row["kind"].setCurrentIndex(row["kind"].findData(control["kind"]))
            row["strength"].setValue(int(control.get("strength", 100)))
            row["start"].setValue(int(control.get("start", 0)))
            row["end"].setValue(int(control.get("end", 100)))
            row["preprocess"].setChecked(bool(control.get("preprocess", False)))
        self.report.setdefault("guide_rows", []).append([c.job_item() for c in self.dock.model.guides.controls])

    def _start_upscale(self, job: dict[str, Any]) -> None:
        """The docker's Upscale and restore section: factor, upscaler, the selection (or none), its button."""
        box = self.dock.upscale_box
        spec = job["upscale"]
        action = spec.get("action", "upscale")
        if "factor" in spec:
            box.factor_spin.setValue(float(spec["factor"]))
        role = {"upscale": "upscaler", "refine_upscale": "refiner", "restore": "restorer"}[action]
        picks = {role: job["model"]} | ({"upscaler": spec["upscaler"]} if "upscaler" in spec else {})
        for which, model_id in picks.items():
            combo = box.combos[which]
            combo.setCurrentIndex([str(combo.itemData(i)) for i in range(combo.count())].index(model_id))
        if action == "refine_upscale":
            box.strength_spin.setValue(int(spec["strength"]))
            box.steps_spin.setValue(int(spec.get("steps", 0)))
            box.prompt_edit.setText(spec["prompt"])
        region = spec.get("select")
        if region:
            selection = Selection()
            selection.select(*region, 255)
            self.doc.setSelection(selection)
        else:
            self._deselect()
        self.doc.waitForDone()
        self.tree_before = _tree(self.doc.rootNode())
        self.size_before = [self.doc.width(), self.doc.height()]
        self.merged_before = hashlib.sha256(bytes(self.doc.pixelData(0, 0, *self.size_before))).hexdigest()
        self.full_before = bytes(self.doc.pixelData(0, 0, *self.size_before)) if action == "restore" else b""
        before = len(self.dock.model.jobs)
        self.clicked_at = time.monotonic()
        box.buttons[action].click()  # the user's code path
        if len(self.dock.model.jobs) == before:
            raise RuntimeError(f"Upscale made no job: {self.dock.model.error}")
        self.entry = self.dock.model.jobs[-1]
        self.deadline = time.monotonic() + float(job.get("timeout", self.spec.get("job_timeout", 40)))
        self.report["stage"] = f"job {job['name']}"
        self._checkpoint()
        self.step = self._wait_job

    def _restored(self, select: list[int], band: int) -> dict[str, int]:
        """How many pixels of the image Krita shows changed: inside the selected rectangle, outside it,
        and farther than ``band`` px from it (the soft mask's ramp may reach a little outside)."""
        self.doc.waitForDone()
        w, h = self.doc.width(), self.doc.height()
        after = bytes(self.doc.pixelData(0, 0, w, h))
        x, y, sw, sh = select
        outside = inside = beyond = 0
        for row in range(h):
            old, new = self.full_before[row * w * 4 : (row + 1) * w * 4], after[row * w * 4 : (row + 1) * w * 4]
            if old == new:
                continue
            for col in range(w):
                if old[col * 4 : col * 4 + 4] != new[col * 4 : col * 4 + 4]:
                    if x <= col < x + sw and y <= row < y + sh:
                        inside += 1
                        continue
                    outside += 1
                    if not (x - band <= col < x + sw + band and y - band <= row < y + sh + band):
                        beyond += 1
        return {"outside_changed_px": outside, "inside_changed_px": inside, "beyond_band_changed_px": beyond}

    def _undo_upscale(self) -> dict[str, Any]:
        """Two undos: the result layer goes, then the document's scaling; two redos bring both back."""
        states, steps = [], []
        for name in ("edit_undo", "edit_undo", "edit_redo", "edit_redo"):
            steps.append(self._undo_step(name))
            states.append(self._undo_state())
        return {"states": states, "steps": steps}

    def _undo_state(self) -> dict[str, Any]:
        """The size and the top-level layers' names: read while Krita undoes, when ``childNodes()`` may
        hold a None for a node on its way in or out (seen in Krita 5 under load)."""
        nodes = [n for n in self.doc.rootNode().childNodes() if n is not None]
        names = [n.name() for n in nodes if not str(n.type()).endswith("mask")]
        return {"size": [self.doc.width(), self.doc.height()], "layers": names}

    def _undo_step(self, name: str) -> dict[str, Any]:
        """Krita's Undo or Redo, which must change the size or the layers, waited for. One that changed
        nothing for 10 s while its action still names the same command was lost (Krita takes an undo
        that arrives while a stroke runs as "cancel that stroke"), so it is triggered again; the
        step's label (Krita's name for the command) and its triggers go into the report."""
        action = Krita.instance().action(name)
        was, label = self._undo_state(), action.text()
        triggers = 0
        while triggers < 3:
            action.trigger()
            triggers += 1
            if self._settle(lambda: self._undo_state() != was) or action.text() != label:
                break
        return {"action": name, "label": label, "triggers": triggers}

    def _deselect(self) -> None:
        """No selection (Krita 6 ignores the Deselect action triggered from a script: the restore's
        selection stayed). ``setSelection(None)`` deselects the global selection, as a stroke."""
        self.doc.setSelection(None)

        def deselected() -> bool:
            selection = self.doc.selection()
            return selection is None or selection.width() <= 0 or selection.height() <= 0

        if not self._settle(deselected):
            sel = self.doc.selection()
            raise RuntimeError(
                f"Deselect left a selection {sel.x(), sel.y(), sel.width(), sel.height()} "
                f"on {self.doc.width()}x{self.doc.height()}"
            )

    def _settle(self, done: Any, timeout: float = 10.0) -> bool:
        """Let Krita finish what an action started (its strokes and the signals after them) until
        ``done()``, then until it is quiet: an undo or redo triggered while a stroke still runs is
        taken as "cancel the stroke" and lost. False when ``done()`` did not happen within ``timeout``
        seconds (the check then fails)."""
        deadline = time.monotonic() + timeout
        while not done() and time.monotonic() < deadline:
            self.doc.waitForDone()
            QtWidgets.QApplication.processEvents()
            time.sleep(0.02)
        quiet_until = time.monotonic() + 0.3
        while time.monotonic() < quiet_until:
            self.doc.waitForDone()
            QtWidgets.QApplication.processEvents()
            time.sleep(0.02)
        self.doc.waitForDone()
        return bool(done())

    def _wait_job(self) -> None:
        entry = self.entry
        self._checkpoint()
        job = self.spec["jobs"][self.job_index]
        if job.get("cancel") and not entry.done:
            if entry.state == "running" and entry.step >= 1 and not entry.cancel_requested:
                self.report["cancel_clicked_at_step"] = entry.step
                self.dock.cancel_button.click()
            elif time.monotonic() > self.deadline:
                raise RuntimeError(f"job did not end: {entry.label()}")
            return
        if job.get("preview") and entry.settled and self.dock.model.staged is not None:
            self._preview(job, entry)
            return
        if not entry.settled:
            if time.monotonic() > self.deadline:
                raise RuntimeError(f"job did not end: {entry.label()} error={self.dock.model.error}")
            return
        readback, pasted = [], []
        for item in entry.pasted:  # what the plugin pasted, read back from Krita's layer
            width, height = item.image.width, item.image.height
            node = _find_last(self.doc.rootNode(), item.name)  # the newest of that name (two upscales)
            data = bytes(node.pixelData(item.x, item.y, width, height)) if node else b""
            readback.append(hashlib.sha256(data).hexdigest())
            digest = hashlib.sha256(bytes(item.image.data)).hexdigest()  # bgra8, as the plugin asks
            pasted.append(
                {"name": item.name, "x": item.x, "y": item.y, "width": width, "height": height, "sha256": digest}
            )
        landing = entry.landing
        if landing is not None and landing.landed:  # an upscale: its tiles went into Krita's layer one by one
            node = _find_last(self.doc.rootNode(), landing.name)
            rect = (landing.x, landing.y, landing.width, landing.height)
            readback.append(hashlib.sha256(bytes(node.pixelData(*rect)) if node else b"").hexdigest())
            pasted.append(
                {
                    "name": landing.name,
                    "x": landing.x,
                    "y": landing.y,
                    "width": landing.width,
                    "height": landing.height,
                    "sha256": None,
                }
            )  # the plugin never held the whole layer
        self.report.setdefault("jobs", {})[job["name"]] = {
            "state": entry.state,
            "mode": entry.mode,
            "seed": entry.seed,
            "error": self.dock.model.error,
            "seconds": round(time.monotonic() - self.clicked_at, 2),
            "results": [
                {"layer": {k: v for k, v in r.message["layer"].items() if k != "image"}, "canvas": r.message["canvas"]}
                for r in entry.results
            ],
            "pasted": pasted,
            "readback_sha256": readback,
            "doc_size": [self.doc.width(), self.doc.height()],
            "job_id": entry.job_id,
        }
        record = self.report["jobs"][job["name"]]
        if entry.results:
            params = entry.results[0].message["params"]
            keys = ("mode", "model", "prompt", "style", "user_prompt", "seed", "strength", "loras", "upscale")
            record["params"] = {key: params.get(key) for key in keys}
            record["output"] = entry.results[0].message.get("output")
        if entry.results:
            canvas = entry.results[0].message["canvas"]
            self.offset = (self.offset[0] - canvas["x"], self.offset[1] - canvas["y"])
        record["originals_unchanged"] = self._originals_unchanged()
        record["result_seeds"] = [r.seed for r in entry.results]
        record["last_seed_text"] = self.dock.last_seed_label.text()
        record["tree_before"] = self.tree_before
        record["highlight_after"] = self.dock.queue_list.currentRow()
        record["progress_text"] = self.dock.progress_label.text()
        record["progress_value"] = self.dock.progress_bar.value()
        record["layers"] = _tree(self.doc.rootNode())
        if job.get("undo_check"):
            record["undo"] = self._undo_redo()
        record["merged_before"] = self.merged_before
        record["guide_params"] = [
            {key: r.message["params"].get(key) for key in ("seed", "controls", "references", "engine_params")}
            for r in entry.results
        ]
        if job.get("controls") or job.get("references"):
            box = self.dock.guides_box
            record["guides_hint"] = box.hint.text()
            while box.row_widgets:  # the rows go, as the artist removes them
                box.row_widgets[0]["remove"].click()
                box.refresh(True)
            guides = self.dock.model.guides
            record["rows_after_remove"] = len(guides.controls) + len(guides.references)
        if job.get("drop_control_layer"):
            _find(self.doc.rootNode(), job["drop_control_layer"]).remove()
            self.doc.waitForDone()
        action = (job.get("upscale") or {}).get("action", "upscale")
        if job.get("upscale") and action == "restore":
            record["restored"] = self._restored(job["upscale"]["select"], int(job["upscale"]["band"]))
        elif job.get("upscale"):
            record["size_before"] = self.size_before
            record["undo_upscale"] = self._undo_upscale()
        for _ in range(int(job.get("undo_after", 0))):  # the image as it was, for the next job to start from
            self._undo_step("edit_undo")
        if job.get("undo_after"):
            w, h = self.doc.width(), self.doc.height()
            record["merged_after_undo"] = hashlib.sha256(bytes(self.doc.pixelData(0, 0, w, h))).hexdigest()
        self.job_index += 1
        self.step = self._start_job

    def _segment_start(self) -> None:
        """Draw the box as a rectangular selection, pick the combine mode, click Refine selection."""
        if not self.segment_todo:  # the last mask (replace) is the selection: inpaint it
            self.spec["jobs"].append(self.spec["segment"]["inpaint"])
            self.spec["jobs"].extend(self.spec["segment"].get("then", []))
            self.step = self._start_job
            return
        combine = self.segment_todo.pop(0)
        spec, box = self.spec["segment"], self.spec["segment"]["box"]
        selection = Selection()
        selection.select(*box, 255)
        self.doc.setSelection(selection)
        self.doc.waitForDone()
        panel = self.dock.segment_box
        ids = [str(panel.model_combo.itemData(i)) for i in range(panel.model_combo.count())]
        panel.model_combo.setCurrentIndex(ids.index(spec["model"]))
        modes = [str(panel.combine_combo.itemData(i)) for i in range(panel.combine_combo.count())]
        panel.combine_combo.setCurrentIndex(modes.index(combine))
        self.report["segment"]["models"] = ids
        before = len(self.dock.model.jobs)
        panel.refine_button.click()  # the user's code path
        if len(self.dock.model.jobs) == before:
            raise RuntimeError(f"Refine selection made no job: {self.dock.model.error}")
        self.entry = self.dock.model.jobs[-1]
        self.combine = combine
        self.deadline = time.monotonic() + float(self.spec.get("job_timeout", 40))
        self.report["stage"] = f"segment {combine}"
        self._checkpoint()
        self.step = self._segment_wait

    def _segment_wait(self) -> None:
        """The selection now, over the whole image, against the daemon's mask at its placement
        combined with the box by the chosen mode."""
        entry = self.entry
        if not entry.settled:
            if time.monotonic() > self.deadline:
                raise RuntimeError(f"segment did not end: {entry.label()} error={self.dock.model.error}")
            return
        self.doc.waitForDone()
        record: dict[str, Any] = {"state": entry.state, "error": self.dock.model.error, "label": entry.label()}
        if entry.results:
            from underpaint_protocol.segment import segment_mask

            result = entry.results[-1]
            mask = segment_mask(result.message, result.image, self.combine)
            w, h = self.doc.width(), self.doc.height()
            bx, by, bw, bh = self.spec["segment"]["box"]
            selection = self.doc.selection()
            got = bytes(selection.pixelData(0, 0, w, h)) if selection is not None else bytes(w * h)
            rules = {"replace": lambda a, b: b, "add": max, "subtract": lambda a, b: max(0, a - b), "intersect": min}
            rule = rules[self.combine]
            worst, wrong, inside = 0, 0, 0
            for y in range(h):
                for x in range(w):
                    a = 255 if bx <= x < bx + bw and by <= y < by + bh else 0
                    mx, my = x - mask.x, y - mask.y
                    b = mask.data[my * mask.width + mx] if 0 <= mx < mask.width and 0 <= my < mask.height else 0
                    inside += b > 127
                    diff = abs(got[y * w + x] - rule(a, b))
                    worst = max(worst, diff)
                    wrong += diff > 1
            record.update(
                {
                    "mask": [mask.x, mask.y, mask.width, mask.height],
                    "mask_selected_px": inside,
                    "max_diff": worst,
                    "wrong_px": wrong,
                    "selected_px": sum(1 for v in got if v > 127),
                    "soft_px": sum(1 for v in got if 0 < v < 255),
                }
            )
        self.report["segment"][self.combine] = record
        self.step = self._segment_start

    def _preview(self, job: dict[str, Any], entry: Any) -> None:
        """Step through the batch in the preview layer, then click Apply, Apply all or Discard; undo once."""
        dock = self.dock
        names = [_preview_name(self.doc.rootNode())]
        dock.next_button.click()
        names.append(_preview_name(self.doc.rootNode()))
        with_preview = _tree(self.doc.rootNode())
        buttons = {"apply": dock.apply_button, "apply_all": dock.apply_all_button, "discard": dock.discard_button}
        buttons[job["preview"]].click()
        self.preview_record = {"state": entry.state, "preview_names": names, "with_preview": with_preview}
        self.deadline = time.monotonic() + 10
        self.step = self._preview_landed

    def _preview_landed(self) -> None:
        """The layers once Krita has carried out the click (its node changes may land a tick later)."""
        self.doc.waitForDone()
        job, entry = self.spec["jobs"][self.job_index], self.entry
        tree = _tree(self.doc.rootNode())
        landed = [n for n in tree if n["name"] not in {m["name"] for m in self.tree_before}]
        waiting = any(n["name"].startswith("[preview") for n in tree) or (job["preview"] != "discard" and not landed)
        if waiting and time.monotonic() < self.deadline:
            return
        record = {
            **self.preview_record,
            "before": self.tree_before,
            "after": tree,
            "pasted": [p.name for p in entry.pasted],
            "result_names": [r.message["layer"]["name"] for r in entry.results],
            "undo": self._undo_redo(),
        }
        self.report.setdefault("previews", {})[job["name"]] = record
        self.job_index += 1
        self.step = self._start_job

    def _history(self) -> None:
        """After a restart: the history list fills from the daemon; one item is fetched and re-applied."""
        dock = self.dock
        model = dock.model
        if not getattr(self, "history_asked", False):
            self.history_asked = True
            self.tree_before = _tree(self.doc.rootNode())
            dock.history_refresh.click()
            return
        if not model.history:
            if time.monotonic() > self.deadline + 20:
                raise RuntimeError(f"history stayed empty: {model.error}")
            return
        # the newest generation (the upscales, run last, carry no prompt or seed to reuse)
        row = next(i for i, h in enumerate(model.history) if h.summary.get("mode") not in UPSCALE_MODES)
        item = model.history[row]
        if not self._history_fetched(row, 40, "history item"):
            return
        dock.reapply_button.click()
        dock.reuse_button.click()
        dock.widget().ensureWidgetVisible(dock.history_list)  # the screenshot shows the list
        self.report["history"] = {
            "rows": [dock.history_list.item(i).text() for i in range(dock.history_list.count())],
            "icons": [not dock.history_list.item(i).icon().isNull() for i in range(dock.history_list.count())],
            "job_ids": [h.job_id for h in model.history],
            "row": row,
            "seed": item.results[0].seed,
            "seed_field": dock.seed_edit.text(),
            "prompt_field": dock.prompt_edit.toPlainText(),
            "before": self.tree_before,
            "after": _tree(self.doc.rootNode()),
            "client_id_kept": bool(model.controller.client_id),
            "outputs_enabled": dock.outputs_button.isEnabled(),
        }
        self.step = self._history_upscale

    def _history_fetched(self, row: int, slack: float, what: str) -> bool:
        """Whether history ``row`` has its results and their fetch has ended (a Re-apply while it still
        runs is refused: "being fetched already"); until then the row is clicked (the user's way to
        fetch it), failing ``slack`` seconds past the deadline."""
        model = self.dock.model
        item = model.history[row]
        if item.results and not item.fetching:
            return True
        if self.dock.history_list.currentRow() != row:
            self.dock.history_list.setCurrentRow(row)
        if time.monotonic() > self.deadline + slack:
            raise RuntimeError(f"{what} never fetched: {model.error}")
        return False

    def _history_upscale(self) -> None:
        """The newest classical upscale of the history: its thumbnail made tile by tile, then Re-apply
        streams its tiles from the daemon again into one new layer (the document is not scaled)."""
        dock, model = self.dock, self.dock.model
        row = next(i for i, h in enumerate(model.history) if h.summary.get("mode") == "upscale")
        item = model.history[row]
        if not self._history_fetched(row, 60, "the upscale's history item"):
            return
        if not getattr(self, "upscale_reapplied", False):
            self.upscale_reapplied = True
            self.upscale_before = _tree(self.doc.rootNode())
            dock.reapply_button.click()
            self.upscale_click_error = model.error  # a refusal shows at once; a later call may clear it
            return
        if item.fetching:  # the tiles are streaming in
            if time.monotonic() > self.deadline + 120:
                raise RuntimeError(f"the upscale's re-apply never ended: {model.error}")
            return
        self.doc.waitForDone()
        result = item.results[0]
        self.report["history_upscale"] = {
            "icon": not dock.history_list.item(row).icon().isNull(),
            "thumbnail_only": result.thumbnail_only,
            "thumbnail": [result.image.width, result.image.height],
            "layer": {key: result.message["layer"][key] for key in ("name", "x", "y", "width", "height")},
            "tiles": result.message["upscale"]["tiles"],
            "error": self.upscale_click_error or model.error,
            "before": self.upscale_before,
            "after": _tree(self.doc.rootNode()),
            "doc_size": [self.doc.width(), self.doc.height()],
        }
        self.step = self._undo_check

    def _library_start(self) -> None:
        """The prompt row: Describe on a selection fills the prompt field (the daemon's tiny interrogator)."""
        library = self.spec["library"]
        selection = Selection()
        selection.select(*library["describe_box"], 255)
        self.doc.setSelection(selection)
        self.doc.waitForDone()
        self.dock.prompt_edit.setPlainText("")
        self.dock.prompt_tools.describe_button.click()
        self.deadline = time.monotonic() + float(self.spec.get("job_timeout", 40))
        self.report["stage"] = "describe"
        self._checkpoint()
        self.step = self._library_described

    def _library_described(self) -> None:
        dock = self.dock
        if not dock.prompt_edit.toPlainText() and not dock.model.error:
            if time.monotonic() > self.deadline:
                raise RuntimeError("Describe never filled the prompt")
            return
        self.report["described"] = {"prompt": dock.prompt_edit.toPlainText(), "error": dock.model.error}
        styled = self.report["jobs"]["styled"]["output"]
        if not os.path.isfile(styled):  # saved in the background after the result
            return
        reused = []
        chooser = QtWidgets.QFileDialog.getOpenFileName
        try:
            for path in (styled, self.spec["library"]["a1111_png"]):
                # the file dialog's answer; the rest is the From PNG button's own code path
                QtWidgets.QFileDialog.getOpenFileName = staticmethod(lambda *_args, _path=path, **_kw: (_path, ""))
                dock.prompt_tools.reuse_button.click()
                combo = dock.prompt_tools.style_combo
                reused.append(
                    {
                        "prompt": dock.prompt_edit.toPlainText(),
                        "negative": dock.negative_edit.text(),
                        "seed": dock.seed_edit.text(),
                        "steps": dock.steps_spin.value(),
                        "style": str(combo.itemData(combo.currentIndex()) or ""),
                        "error": dock.model.error,
                    }
                )
        finally:
            QtWidgets.QFileDialog.getOpenFileName = chooser
        self.report["reused_png"] = reused
        self.step = self._undo_check

    # ---------------------------------------------------------------- live painting

    def _live_begin(self) -> None:
        """Select the live region, paint on a new layer of its own, click Live on."""
        spec, dock = self.spec["live"], self.dock
        ids = [str(dock.model_combo.itemData(i)) for i in range(dock.model_combo.count())]
        dock.model_combo.setCurrentIndex(ids.index(spec["model"]))
        dock.prompt_edit.setPlainText(spec["prompt"])
        dock.steps_spin.setValue(int(spec.get("steps", 0)))
        dock.strength_spin.setValue(int(spec["strength"]))
        dock.seed_edit.setText(str(spec["seed"]))
        selection = Selection()
        selection.select(*spec["select"], 255)
        self.doc.setSelection(selection)
        self.live_originals = self._live_digests()
        strokes = self.doc.createNode("Strokes", "paintlayer")
        root = self.doc.rootNode()
        root.addChildNode(strokes, root.childNodes()[-1])
        self.doc.setActiveNode(strokes)
        self.doc.waitForDone()
        self.strokes = strokes
        self.tree_before = _tree(self.doc.rootNode())
        self.live_record: dict[str, Any] = {"before": self.tree_before}
        dock.live_box.live_button.click()  # the user's code path
        live = dock.model.controller.live
        if live.state != "starting":
            raise RuntimeError(f"Live did not start: {dock.model.error}")
        self.live_phase = "first"
        self.deadline = time.monotonic() + float(self.spec.get("job_timeout", 40))
        self.report["stage"] = "live first"
        self._checkpoint()
        self.step = self._live_wait

    def _live_digests(self) -> dict[str, str]:
        w, h = self.doc.width(), self.doc.height()
        return {
            node_key: hashlib.sha256(bytes(node.pixelData(0, 0, w, h))).hexdigest()
            for node_key, node in self._layers().items()
        }

    def _layers(self) -> dict[str, Any]:
        out, stack = {}, list(self.doc.rootNode().childNodes())
        while stack:
            node = stack.pop()
            if not str(node.type()).endswith("mask"):
                uid = node.uniqueId()
                out[str(uid.toString()) if hasattr(uid, "toString") else str(uid)] = node
            stack.extend(node.childNodes())
        return out

    def _live_layers(self) -> list[dict[str, Any]]:
        return [n for n in _tree(self.doc.rootNode()) if n["name"].startswith("Live")]

    def _live_wait(self) -> None:
        """first result -> paint a stroke -> a newer result in the same layer -> Apply -> Live off."""
        dock, record = self.dock, self.live_record
        live = dock.model.controller.live
        self._checkpoint()
        if time.monotonic() > self.deadline:
            raise RuntimeError(f"live stuck in {self.live_phase}: {live.status()} error={dock.model.error}")
        if self.live_phase == "first":
            if live.layer is None:
                if live.state == "off":
                    raise RuntimeError(f"Live ended: {live.note} error={dock.model.error}")
                return
            if live.handle is None or self._live_layer_digest(live) == "differs":
                return  # the result is still being shown (Krita runs timers inside its waits)
            self.doc.waitForDone()
            record["started"] = {k: v for k, v in live.started_message.items() if k != "type"}
            record["first"] = {
                "seq": live.layer.seq,
                "frames": live.frames_sent,
                "bytes": live.bytes_sent,
                "live_layers": self._live_layers(),
                "key": _key(live.handle),
                "layer_sha256": self._live_layer_digest(live),
            }
            x, y, w, h = self.spec["live"]["stroke"]
            self.strokes.setPixelData(bytes([40, 40, 220, 255]) * (w * h), x, y, w, h)  # a red dab (BGRA)
            self.doc.refreshProjection()
            self.live_phase = "stroke"
        elif self.live_phase == "stroke":
            first = record["first"]
            if live.layer is None or live.layer.seq <= first["seq"] or live.frames_sent <= first["frames"]:
                return
            if self._live_layer_digest(live) == "differs":
                return  # the newer result is still being written into the layer
            self.doc.waitForDone()
            record["stroke"] = {
                "seq": live.layer.seq,
                "frames": live.frames_sent,
                "frame_bytes": live.bytes_sent - first["bytes"],
                "live_layers": self._live_layers(),
                "key": _key(live.handle),
                "layer_sha256": self._live_layer_digest(live),
                "status": dock.live_box.status_label.text(),
                "dropped": live.dropped,
            }
            with_live = _tree(self.doc.rootNode())
            dock.live_box.apply_button.click()
            self.doc.waitForDone()
            after_apply = _tree(self.doc.rootNode())
            record["apply"] = {"with_live": with_live, "after": after_apply, "undo": self._undo_redo()}
            dock.live_box.live_button.click()  # Live off
            record["check_ms"] = list(dock.live_box.check_ms)
            self.live_phase = "stopping"
        elif self.live_phase == "stopping":
            if live.state != "off" or live.handle is not None:
                return
            self.doc.waitForDone()
            now = self._live_digests()
            record["stopped"] = {
                "state": live.state,
                "note": live.note,
                "button_checked": dock.live_box.live_button.isChecked(),
                "after": _tree(self.doc.rootNode()),
                "originals_unchanged": all(now.get(k) == v for k, v in self.live_originals.items()),
                "strokes_key": _key(self.strokes),
            }
            self.report["live"] = record
            self.step = self._start_job  # what follows (the prompt library), else the undo check

    def _live_layer_digest(self, live: Any) -> str:
        layer = live.layer
        if live.handle is None:
            return "differs"
        data = bytes(live.handle.pixelData(layer.x, layer.y, layer.image.width, layer.image.height))
        return hashlib.sha256(data).hexdigest() if data == bytes(layer.image.data) else "differs"

    def _undo_redo(self) -> dict[str, Any]:
        """One undo and one redo of what was just added or removed, each waited for (``_undo_step``)."""
        before = _tree(self.doc.rootNode())
        undo = self._undo_step("edit_undo")
        after_undo = _tree(self.doc.rootNode())
        redo = self._undo_step("edit_redo")
        after_redo = _tree(self.doc.rootNode())
        return {"before": before, "after_undo": after_undo, "after_redo": after_redo, "steps": [undo, redo]}

    def _originals_unchanged(self) -> bool:
        """Each original layer's pixels, where the original canvas now sits, are byte-identical."""
        x, y = self.offset
        w, h = self.size
        for node in self.doc.rootNode().childNodes():
            if node.name() in self.originals:
                digest = hashlib.sha256(bytes(node.pixelData(x, y, w, h))).hexdigest()
                if digest != self.originals[node.name()]:
                    return False
        return True

    def _undo_check(self) -> None:
        self.report["layers_after"] = _tree(self.doc.rootNode())
        self.report["max_ui_gap_s"] = round(self.max_gap, 3)
        self._finish()

    def _checkpoint(self) -> None:
        """Where the run is, beside the report (which the test waits for): shows where a stuck run stopped."""
        model = self.dock.model
        status = {"stage": self.report["stage"], "connection": model.connection, "status": model.status}
        status["jobs"] = [job.label() for job in model.jobs]
        with open(os.environ["UNDERPAINT_TEST_REPORT"] + ".progress", "w", encoding="utf-8") as handle:
            json.dump(status, handle)

    def _finish(self) -> None:
        self.timer.stop()
        self.report.setdefault("stage", "done")
        if "error" not in self.report:
            self.report["stage"] = "done"
        path = os.environ["UNDERPAINT_TEST_REPORT"]
        with open(path + ".tmp", "w", encoding="utf-8") as handle:
            json.dump(self.report, handle, indent=1)
        os.replace(path + ".tmp", path)
