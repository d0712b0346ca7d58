"""The python-fu-eval script the end-to-end tests pipe into a real headless GIMP.

One GIMP launch runs a list of ``scenarios`` (GIMP starts slowly: one launch for many scenarios).
Each opens the photo afresh, adds the hidden layers it asks for (each from a PNG, named; an argument
``{"layer": NAME}`` passes one to a procedure), makes its selection, calls the plug-in's PDB
procedures NON-INTERACTIVELY (exactly as a user's batch script would) -- a list of ``calls``, each
after an optional rectangle selection and followed by an optional dump of the selection's bytes --
and writes its own JSON report of what GIMP then holds: each call's return status, the canvas size,
the layer tree with offsets and sizes, a hash of every layer's pixels, the original layer's pixels
before and after, and the wall-clock times it started and ended (the daemon's sidecars written in
between are its results). A scenario that raises reports its traceback; the next one still runs.
"""

from __future__ import annotations

import json
from typing import Any

TEMPLATE = r"""
import gi, hashlib, json, os, time, traceback
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gio

P = json.loads(__PARAMS__)


def pixels(layer):
    w, h = layer.get_width(), layer.get_height()
    data = layer.get_buffer().get(Gegl.Rectangle.new(0, 0, w, h), 1.0, "R'G'B'A u8", Gegl.AbyssPolicy.NONE)
    return hashlib.sha256(bytes(data)).hexdigest()


def tree(items):
    out = []
    for item in items:
        _, x, y = item.get_offsets()
        entry = {"name": item.get_name(), "x": x, "y": y, "width": item.get_width(),
                 "height": item.get_height(), "group": bool(item.is_group())}
        if entry["group"]:
            entry["children"] = tree(item.get_children())
        else:
            entry["sha256"] = pixels(item)
        out.append(entry)
    return out


def run(S, report):
    image = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(P["photo"]))
    report["image"] = image
    background = image.get_layers()[0]
    report["canvas_before"] = [image.get_width(), image.get_height()]
    report["background_before"] = pixels(background)
    added = {}
    for extra in S.get("layers") or []:  # hidden, on top; the active layer stays the Background
        layer = Gimp.file_load_layer(Gimp.RunMode.NONINTERACTIVE, image, Gio.File.new_for_path(extra["png"]))
        layer.set_name(extra["name"])
        image.insert_layer(layer, None, 0)
        layer.set_visible(False)
        added[extra["name"]] = layer
    image.set_selected_layers([background])
    selection = S.get("select")
    if selection:
        x, y, w, h = selection
        image.select_ellipse(Gimp.ChannelOps.REPLACE, x, y, w, h)
        if S.get("feather"):
            Gimp.Selection.feather(image, float(S["feather"]))
    report["stage"] = "call"
    report["calls"] = []
    for call in S["calls"]:
        if call.get("select"):
            image.select_rectangle(Gimp.ChannelOps.REPLACE, *call["select"])
        proc = Gimp.get_pdb().lookup_procedure(call["procedure"])
        config = proc.create_config()
        mode = Gimp.RunMode.INTERACTIVE if P.get("interactive") else Gimp.RunMode.NONINTERACTIVE
        config.set_property("run-mode", mode)
        config.set_property("image", image)
        config.set_core_object_array("drawables", [background])
        for name, value in call["args"].items():
            config.set_property(name, added[value["layer"]] if isinstance(value, dict) else value)
        result = proc.run(config)
        status = result.index(0)
        report["status"] = getattr(status, "value_nick", str(status))
        report["success"] = status == Gimp.PDBStatusType.SUCCESS
        report["error"] = str(result.index(1)) if result.length() > 1 else None
        report["calls"].append({"status": report["status"], "error": report["error"]})
        if call.get("selection_out"):
            rect = Gegl.Rectangle.new(0, 0, image.get_width(), image.get_height())
            buffer = image.get_selection().get_buffer()
            with open(call["selection_out"], "wb") as handle:
                handle.write(bytes(buffer.get(rect, 1.0, "Y u8", Gegl.AbyssPolicy.NONE)))
    report["stage"] = "report"
    report["canvas"] = [image.get_width(), image.get_height()]
    report["selected"] = [layer.get_name() for layer in image.get_selected_layers()]
    report["layers"] = tree(image.get_layers())
    _, bx, by = background.get_offsets()
    report["background_after"] = pixels(background)
    report["background_offsets"] = [bx, by]
    report["background_size"] = [background.get_width(), background.get_height()]
    report["stage"] = "done"


for S in P["scenarios"]:
    report = {"stage": "start", "started": time.time()}
    try:
        run(S, report)
    except Exception:
        report["exception"] = traceback.format_exc()
    image = report.pop("image", None)
    if image is not None:
        image.delete()  # the next scenario starts from the photo again
    report["ended"] = time.time()
    with open(S["report"] + ".tmp", "w") as handle:
        json.dump(report, handle)
    os.replace(S["report"] + ".tmp", S["report"])
"""


def script(photo: str, scenarios: list[dict[str, Any]], *, interactive: bool = False) -> str:
    """The script that runs ``scenarios`` (each: ``report`` path, ``calls``; optional ``select``,
    ``feather``, ``layers``) one after the other on ``photo``."""
    params = {"photo": photo, "scenarios": scenarios, "interactive": interactive}
    return TEMPLATE.replace("__PARAMS__", repr(json.dumps(params)))
