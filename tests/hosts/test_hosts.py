"""Probe the real hosts: version, Python, loopback TCP to this machine, pixels/selection round trips.

Each test starts the real host (Krita 5/6 under Xvfb, GIMP 3.0/3.2 headless) with a tiny probe
written into a temp folder. A host that is not provisioned FAILS with a message saying to run
tools/hosts/provision.sh -- these tests never skip.
"""

from __future__ import annotations

import json
import socket
import textwrap
import threading
import uuid

import pytest

from . import (
    ARTIFACTS_DIR,
    GIMP_LABELS,
    KRITA_LABELS,
    HostMissing,
    get_gimp,
    get_krita,
    run_gimp_batch,
    run_krita,
)

pytestmark = pytest.mark.host


class Loopback:
    """A TCP listener on 127.0.0.1 that answers `ping TOKEN\\n` with `pong TOKEN\\n`."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self.token = uuid.uuid4().hex
        self.seen: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(10)
                data = b""
                try:
                    while not data.endswith(b"\n"):
                        chunk = conn.recv(1024)
                        if not chunk:
                            break
                        data += chunk
                    line = data.decode().strip()
                    self.seen.append(line)
                    if line.startswith("ping "):
                        conn.sendall(f"pong {line[5:]}\n".encode())
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self.sock.close()
        self._thread.join(timeout=2)


@pytest.fixture
def loopback():
    lb = Loopback()
    yield lb
    lb.close()


def _require(getter, label):
    try:
        return getter(label)
    except HostMissing as exc:
        pytest.fail(str(exc), pytrace=False)


# --------------------------------------------------------------------------------------------------
# Krita

KRITA_DESKTOP = """\
[Desktop Entry]
Type=Service
ServiceTypes=Krita/PythonPlugin
X-KDE-Library=underpaint_probe
X-Python-2-Compatible=false
Name=underpaint host probe
Comment=Reports host facts for tests/hosts
"""

KRITA_PROBE = r"""
import json, os, socket, sys, traceback

from krita import Extension, Krita, Selection

try:
    from pykrita import qt_major_version
    QT_MAJOR = qt_major_version()
except Exception:  # Krita 5.1/5.2 have no pykrita.qt_major_version
    QT_MAJOR = 5
if QT_MAJOR == 6:
    from PyQt6.QtCore import QByteArray, QT_VERSION_STR, QTimer
else:
    from PyQt5.QtCore import QByteArray, QT_VERSION_STR, QTimer

W, H = 96, 64
SX, SY, SW, SH = 10, 8, 40, 24


def _write(report):
    path = os.environ["UNDERPAINT_TEST_REPORT"]
    with open(path + ".tmp", "w") as f:
        json.dump(report, f)
    os.replace(path + ".tmp", path)


def _probe():
    rep = {"stage": "start"}
    try:
        app = Krita.instance()
        rep["krita_version"] = app.version()
        rep["python_version"] = sys.version.split()[0]
        rep["qt_major"] = QT_MAJOR
        rep["qt_version"] = QT_VERSION_STR
        port = int(os.environ["PROBE_PORT"])
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(("ping " + os.environ["PROBE_TOKEN"] + "\n").encode())
                rep["tcp_reply"] = s.makefile().readline().strip()
        except OSError as exc:
            rep["tcp_reply"] = "error: %r" % (exc,)

        rep["stage"] = "document"
        doc = app.createDocument(W, H, "probe", "RGBA", "U8", "", 72.0)
        app.activeWindow().addView(doc)
        sel = Selection()
        sel.select(SX, SY, SW, SH, 255)
        doc.setSelection(sel)
        got = doc.selection()
        rep["selection"] = [got.x(), got.y(), got.width(), got.height()] if got else None
        mask = bytes(got.pixelData(SX, SY, SW, SH)) if got else b""
        rep["selection_mask_ok"] = len(mask) == SW * SH and set(mask) == {255}

        rep["stage"] = "layer"
        layer = doc.createNode("probe layer", "paintlayer")
        doc.rootNode().addChildNode(layer, None)
        # 8-bit RGBA documents hold B, G, R, A.
        data = bytes([(x * 5) % 256 if c == 0 else (y * 9) % 256 if c == 1 else 200 if c == 2 else 255
                      for y in range(SH) for x in range(SW) for c in range(4)])
        layer.setPixelData(QByteArray(data), SX, SY, SW, SH)
        doc.refreshProjection()
        doc.waitForDone()
        back = bytes(layer.pixelData(SX, SY, SW, SH))
        rep["layer_roundtrip"] = back == data
        bounds = layer.bounds()
        rep["layer_bounds"] = [bounds.x(), bounds.y(), bounds.width(), bounds.height()]
        merged = bytes(doc.pixelData(SX, SY, SW, SH))
        rep["projection_matches"] = merged == data
        rep["layer_names"] = [n.name() for n in doc.rootNode().childNodes()]
        rep["stage"] = "done"
    except Exception:
        rep["error"] = traceback.format_exc()
    _write(rep)  # Krita keeps running: the test takes a screenshot, then ends the process tree.


class ProbeExtension(Extension):
    def __init__(self, parent):
        super().__init__(parent)
        self._started = False

    def setup(self):
        pass

    def createActions(self, window):
        if not self._started:
            self._started = True
            QTimer.singleShot(500, _probe)


Krita.instance().addExtension(ProbeExtension(Krita.instance()))
"""


@pytest.mark.parametrize("label", KRITA_LABELS)
def test_krita_probe(label, tmp_path, loopback):
    host = _require(get_krita, label)
    pykrita = tmp_path / "pykrita"
    (pykrita / "underpaint_probe").mkdir(parents=True)
    (pykrita / "underpaint_probe.desktop").write_text(KRITA_DESKTOP)
    (pykrita / "underpaint_probe" / "__init__.py").write_text(KRITA_PROBE)
    shot = ARTIFACTS_DIR / f"hosts-{label}-probe.png"
    shot.unlink(missing_ok=True)

    run = run_krita(
        host,
        tmp_path / "home",
        timeout=150,
        pykrita_dir=pykrita,
        screenshot=shot,
        env={"PROBE_PORT": str(loopback.port), "PROBE_TOKEN": loopback.token},
    )
    rep = run.report
    print(f"{label}: {json.dumps(rep)} ({run.elapsed:.1f} s, {run.display})")
    assert "error" not in rep, rep["error"] + run.output()
    assert rep["stage"] == "done"
    major = host.major
    assert rep["krita_version"].startswith(f"{major}."), rep["krita_version"]
    assert rep["qt_major"] == (6 if major == 6 else 5)
    assert rep["tcp_reply"] == f"pong {loopback.token}"
    assert f"ping {loopback.token}" in loopback.seen
    assert rep["selection"] == [10, 8, 40, 24]
    assert rep["selection_mask_ok"]
    assert rep["layer_roundtrip"]
    assert rep["layer_bounds"] == [10, 8, 40, 24]
    assert rep["projection_matches"]
    assert "probe layer" in rep["layer_names"]
    assert shot.is_file() and shot.stat().st_size > 1000


# --------------------------------------------------------------------------------------------------
# GIMP

GIMP_PLUGIN = r"""#!/usr/bin/env python3
import json, sys

import gi
gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp, GLib, GObject


def run(procedure, run_mode, image, drawables, config, data):
    name = config.get_property("layer-name")
    report = config.get_property("report-path")
    layer = Gimp.Layer.new(image, name, 4, 3, Gimp.ImageType.RGBA_IMAGE, 100.0, Gimp.LayerMode.NORMAL)
    image.insert_layer(layer, None, 0)
    layer.set_offsets(5, 6)
    buf = layer.get_buffer()
    buf.set(Gegl.Rectangle.new(0, 0, 4, 3), "R'G'B'A u8", bytes([1, 2, 3, 255] * 12))
    buf.flush()
    with open(report, "w") as f:
        json.dump({"python_version": sys.version.split()[0], "run_mode": int(run_mode),
                   "drawables": [d.get_name() for d in drawables]}, f)
    return procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, GLib.Error())


class Probe(Gimp.PlugIn):
    def do_query_procedures(self):
        return ["underpaint-probe"]

    def do_create_procedure(self, name):
        proc = Gimp.ImageProcedure.new(self, name, Gimp.PDBProcType.PLUGIN, run, None)
        proc.set_image_types("*")
        proc.set_menu_label("underpaint probe")
        proc.add_menu_path("<Image>/Filters/Development")
        proc.set_documentation("tests/hosts probe", "adds a layer and writes a report", name)
        proc.set_attribution("underpaint", "underpaint", "2026")
        proc.add_string_argument("layer-name", "Layer name", None, "probe", GObject.ParamFlags.READWRITE)
        proc.add_string_argument("report-path", "Report path", None, "", GObject.ParamFlags.READWRITE)
        return proc


Gimp.main(Probe.__gtype__, sys.argv)
"""

GIMP_SCRIPT = r"""
import json, socket, sys, traceback
import gi
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp

rep = {"stage": "start"}
try:
    rep["gimp_version"] = Gimp.version()
    rep["python_version"] = sys.version.split()[0]
    try:
        with socket.create_connection(("127.0.0.1", PORT), timeout=5) as s:
            s.sendall(("ping " + TOKEN + "\n").encode())
            rep["tcp_reply"] = s.makefile().readline().strip()
    except OSError as exc:
        rep["tcp_reply"] = "error: %r" % (exc,)

    rep["stage"] = "image"
    W, H = 96, 64
    image = Gimp.Image.new(W, H, Gimp.ImageBaseType.RGB)
    layer = Gimp.Layer.new(image, "background", W, H, Gimp.ImageType.RGBA_IMAGE, 100.0,
                           Gimp.LayerMode.NORMAL)
    image.insert_layer(layer, None, 0)
    data = bytes([(x * 3) % 256 if c == 0 else (y * 4) % 256 if c == 1 else 77 if c == 2 else 255
                  for y in range(H) for x in range(W) for c in range(4)])
    buf = layer.get_buffer()
    buf.set(Gegl.Rectangle.new(0, 0, W, H), "R'G'B'A u8", data)
    buf.flush()
    back = bytes(layer.get_buffer().get(Gegl.Rectangle.new(0, 0, W, H), 1.0, "R'G'B'A u8",
                                        Gegl.AbyssPolicy.CLAMP))
    rep["layer_roundtrip"] = back == data

    rep["stage"] = "selection"
    image.select_rectangle(Gimp.ChannelOps.REPLACE, 10, 8, 40, 24)
    b = Gimp.Selection.bounds(image)
    rep["selection_bounds"] = [bool(b[0]), bool(b[1]), b[2], b[3], b[4], b[5]]
    mask = bytes(image.get_selection().get_buffer().get(Gegl.Rectangle.new(0, 0, W, H), 1.0, "Y u8",
                                                        Gegl.AbyssPolicy.CLAMP))
    inside = [mask[y * W + x] for y in range(8, 32) for x in range(10, 50)]
    rep["selection_inside_255"] = set(inside) == {255}
    rep["selection_count"] = sum(1 for v in mask if v == 255)

    rep["stage"] = "pdb"
    proc = Gimp.get_pdb().lookup_procedure("underpaint-probe")
    rep["procedure_found"] = proc is not None
    cfg = proc.create_config()
    cfg.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
    cfg.set_property("image", image)
    cfg.set_core_object_array("drawables", [layer])
    cfg.set_property("layer-name", "from plug-in")
    cfg.set_property("report-path", PLUGIN_REPORT)
    result = proc.run(cfg)
    rep["pdb_status"] = result.index(0).value_nick
    layers = image.get_layers()
    rep["layers"] = [(l.get_name(), list(l.get_offsets())[1:], l.get_width(), l.get_height())
                     for l in layers]
    rep["original_unchanged"] = bytes(layer.get_buffer().get(
        Gegl.Rectangle.new(0, 0, W, H), 1.0, "R'G'B'A u8", Gegl.AbyssPolicy.CLAMP)) == data
    rep["stage"] = "done"
except Exception:
    rep["error"] = traceback.format_exc()
with open(REPORT + ".tmp", "w") as f:
    json.dump(rep, f)
import os
os.replace(REPORT + ".tmp", REPORT)
"""


@pytest.mark.parametrize("label", GIMP_LABELS)
def test_gimp_probe(label, tmp_path, loopback):
    host = _require(get_gimp, label)
    plugin = tmp_path / "plugins" / "underpaint_probe"
    plugin.mkdir(parents=True)
    (plugin / "underpaint_probe.py").write_text(GIMP_PLUGIN)
    report = tmp_path / "report.json"
    plugin_report = tmp_path / "plugin-report.json"
    header = textwrap.dedent(f"""\
        PORT = {loopback.port}
        TOKEN = {loopback.token!r}
        REPORT = {str(report)!r}
        PLUGIN_REPORT = {str(plugin_report)!r}
        """)
    run = run_gimp_batch(host, header + GIMP_SCRIPT, [plugin], timeout=150, config_dir=tmp_path / "cfg")
    assert report.is_file(), f"the batch script wrote no report\n{run.output()}"
    rep = json.loads(report.read_text())
    print(f"{label}: {json.dumps(rep)} ({run.elapsed:.1f} s)")
    assert "error" not in rep, rep["error"] + run.output()
    assert rep["stage"] == "done"
    assert rep["gimp_version"].startswith(host.series + "."), rep["gimp_version"]
    assert rep["tcp_reply"] == f"pong {loopback.token}"
    assert rep["layer_roundtrip"]
    assert rep["selection_bounds"] == [True, True, 10, 8, 50, 32]
    assert rep["selection_inside_255"] and rep["selection_count"] == 40 * 24
    assert rep["procedure_found"]
    assert rep["pdb_status"] == "success", rep
    assert rep["layers"][0] == ["from plug-in", [5, 6], 4, 3], rep["layers"]
    assert rep["original_unchanged"]
    assert plugin_report.is_file(), f"the plug-in wrote no report\n{run.output()}"
    prep = json.loads(plugin_report.read_text())
    assert prep["run_mode"] == 1  # Gimp.RunMode.NONINTERACTIVE
    assert prep["drawables"] == ["background"]
    assert prep["python_version"] == rep["python_version"]
