"""Drives the real panel inside GIMP for the panel end-to-end test (never shipped with the plug-in).

The test installs the ``underpaint_driver`` plug-in (this folder) beside the real one and sets
UNDERPAINT_PANEL_TEST to a JSON spec; its procedure opens the real panel and calls :func:`drive`.
Everything happens on the panel's GTK main loop, through its widgets: wait for the connection
(server remembered in the settings file); measure the layout at the default size and save a
screenshot; wheel over a field; pick a model and see which fields it ignores; Generate a long job
and Cancel it while it runs; Generate with a locked seed above 2^31; set the Expand sides and click
Expand with a random seed; Refine selection; an inpaint without and with a control layer, without and
with the LoRA picked in the prompt library, without and with a reference layer; Live on a selection
with a dab painted on a layer of its own, Apply, Live off; the prompt library (save the prompt as a
style, Generate with it, Prompt from image, Reuse parameters… through its file chooser and from PNGs);
Restore on a selection; Refine-upscale of the whole image; write a report and close the window.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import traceback
from dataclasses import asdict
from typing import Any

import gi

gi.require_version("Gdk", "3.0")
gi.require_version("GdkPixbuf", "2.0")
gi.require_version("Gegl", "0.4")
gi.require_version("Gimp", "3.0")
from gi.repository import Gdk, GdkPixbuf, Gegl, Gimp, GLib, Gtk  # noqa: E402

from underpaint_protocol.jobs import Bounds, placement  # noqa: E402


def _bottom(widget: Gtk.Widget, window: Gtk.Window) -> int:
    """The widget's lower edge in window coordinates (-1 when it is not shown)."""
    if not widget.get_mapped():
        return -1
    _, y = widget.translate_coordinates(window, 0, 0)
    return int(y + widget.get_allocated_height())


def _wheel(widget: Gtk.Widget, direction: Gdk.ScrollDirection) -> None:
    """A wheel notch over ``widget``, delivered as GTK delivers it: to the widget, then its parents."""
    event = Gdk.Event.new(Gdk.EventType.SCROLL)
    event.scroll.window = widget.get_window()
    event.scroll.direction = direction
    event.scroll.x = event.scroll.y = 4.0
    event.scroll.time = Gtk.get_current_event_time()
    seat = Gdk.Display.get_default().get_default_seat()
    event.set_device(seat.get_pointer())
    Gtk.propagate_event(widget, event)


def layout(panel: Any, report: dict[str, Any], screenshot: str) -> None:
    window = panel.window
    width, height = window.get_default_size()
    content = panel.scroller.get_child()
    minimum, natural = content.get_preferred_height_for_width(width)
    report["layout"] = {
        "default_size": [width, height],
        "size": list(window.get_size()),
        "content_min_height": minimum,
        "content_natural_height": natural,
        "window_min_width": window.get_preferred_width()[0],
        "progress_bottom": _bottom(panel.progress, window),
        "status_bottom": _bottom(panel.status, window),
        "preview_bottom": _bottom(panel.preview_image, window),
        "scroll_range": panel.scroller.get_vadjustment().get_upper() - panel.scroller.get_vadjustment().get_page_size(),
    }
    gdk_window = window.get_window()
    pixbuf = Gdk.pixbuf_get_from_window(gdk_window, 0, 0, gdk_window.get_width(), gdk_window.get_height())
    pixbuf.savev(screenshot, "png", [], [])


def wheel(panel: Any, report: dict[str, Any]) -> None:
    """Shrink the window so the panel scrolls; the wheel over an unfocused field scrolls the panel and
    leaves the value; over the focused field it changes the value (so the synthetic wheel works)."""
    adjustment = panel.scroller.get_vadjustment()
    before = (panel.strength.get_value(), panel.batch.get_value(), adjustment.get_value())
    panel.generate.grab_focus()
    _wheel(panel.strength, Gdk.ScrollDirection.DOWN)
    _wheel(panel.batch, Gdk.ScrollDirection.UP)
    _wheel(panel.model, Gdk.ScrollDirection.DOWN)
    after = (panel.strength.get_value(), panel.batch.get_value(), adjustment.get_value())
    focus = Gdk.Event.new(Gdk.EventType.FOCUS_CHANGE)  # no window manager under Xvfb: say the panel is active
    focus.focus_change.in_ = True
    focus.focus_change.window = panel.window.get_window()
    panel.window.event(focus)
    panel.strength.grab_focus()
    report["strength_has_focus"] = panel.strength.has_focus()
    _wheel(panel.strength, Gdk.ScrollDirection.DOWN)
    report["wheel"] = {
        "before": before,
        "after": after,
        "focused_strength": panel.strength.get_value(),
        "model_unchanged": panel.model.get_active_id() == report.get("model_before_wheel"),
    }


def make_control_layer(image: Any, name: str, step: int = 12) -> None:
    """A hidden layer of white lines on transparent (the artist's sketch) on top; the user's selected
    layers stay selected."""
    w, h = image.get_width(), image.get_height()
    white, clear = b"\xff\xff\xff\xff", b"\0\0\0\0"
    lines = b"".join(white if x % step == 0 else clear for x in range(w))
    rows = [white * w if y % step == 0 else lines for y in range(h)]
    selected = list(image.get_selected_layers())
    layer = Gimp.Layer.new(image, name, w, h, Gimp.ImageType.RGBA_IMAGE, 100.0, Gimp.LayerMode.NORMAL)
    image.insert_layer(layer, None, 0)
    buffer = layer.get_buffer()
    buffer.set(Gegl.Rectangle.new(0, 0, w, h), "R'G'B'A u8", b"".join(rows))
    buffer.flush()
    layer.set_visible(False)
    image.set_selected_layers(selected)


def make_reference_layer(image: Any, name: str, side: int = 96) -> None:
    """A hidden picture (red to blue across, a green band) on top, to pick as a reference; the user's
    selected layers stay selected."""
    pixels = bytearray()
    for y in range(side):
        for x in range(side):
            band = 255 if side // 3 <= y < 2 * side // 3 else 0
            pixels += bytes([255 * (side - x) // side, band, 255 * x // side, 255])
    selected = list(image.get_selected_layers())
    layer = Gimp.Layer.new(image, name, side, side, Gimp.ImageType.RGBA_IMAGE, 100.0, Gimp.LayerMode.NORMAL)
    image.insert_layer(layer, None, 0)
    buffer = layer.get_buffer()
    buffer.set(Gegl.Rectangle.new(0, 0, side, side), "R'G'B'A u8", bytes(pixels))
    buffer.flush()
    layer.set_visible(False)
    image.set_selected_layers(selected)


UPSCALE_MODES = ("upscale", "refine_upscale")


def layer_pixels(layer: Any) -> bytes:
    w, h = layer.get_width(), layer.get_height()
    return bytes(layer.get_buffer().get(Gegl.Rectangle.new(0, 0, w, h), 1.0, "R'G'B'A u8", Gegl.AbyssPolicy.NONE))


def rgba(image: Any) -> bytes:
    """A result's pixels as R'G'B'A bytes (what GIMP's layer holds)."""
    data = bytearray(image.data)
    if image.format == "bgra8":
        data[0::4], data[2::4] = data[2::4], data[0::4]
    elif image.format != "rgba8":
        raise ValueError(f"a {image.format} result")
    return bytes(data)


def answer_file_chooser(path: str, record: dict[str, Any]) -> None:
    """While the panel's modal file chooser runs (its own main loop), pick ``path`` in it as the user
    would (the file in its folder, then Open); gives up with Cancel after 30 s."""
    started = time.monotonic()

    def poll() -> bool:
        dialogs = [w for w in Gtk.Window.list_toplevels() if isinstance(w, Gtk.FileChooserDialog) and w.get_visible()]
        late = time.monotonic() - started > 30
        if not dialogs:
            if late:
                record["error"] = "no file chooser appeared"
            return not late
        dialog = dialogs[0]
        if "title" not in record:
            record["title"] = dialog.get_title()
            dialog.set_filename(path)
            return True
        if dialog.get_filename() != path:
            if late:
                record["error"] = f"the chooser did not select {path}: {dialog.get_filename()}"
                dialog.response(Gtk.ResponseType.CANCEL)
            return not late
        record["chosen"] = dialog.get_filename()
        dialog.response(Gtk.ResponseType.ACCEPT)
        return False

    GLib.timeout_add(100, poll)


def drive(panel: Any, spec_path: str) -> None:
    with open(spec_path) as handle:
        spec = json.load(handle)
    report: dict[str, Any] = {"steps": [], "states": []}
    started = time.monotonic()
    if spec.get("history_only"):  # a restarted GIMP: the history of the earlier session
        plan = ["connect", "history", "history_upscale", "history_reapplied", "finish"]
    elif spec.get("live_only"):  # the live scenario alone (a quick check of live painting)
        plan = ["connect", "live_on", "live_first", "live_stroke", "live_off", "finish"]
    else:
        plan = ["connect", "layout", "shrink", "wheel", "fields", "cancel", "wait", "generate", "wait", "staged"]
        plan += ["step", "apply", "expand", "wait", "discard", "land", "wait", "history", "reuse"]
        plan += ["segment", "segment_wait", "control_off", "control_wait", "control_on", "control_wait"]
        plan += ["lora_off", "job_wait", "lora_on", "job_wait", "reference_off", "job_wait", "reference_on", "job_wait"]
        plan += ["live_on", "live_first", "live_stroke", "live_off"]
        plan += ["library", "style_saved", "style_wait", "describe", "described", "reuse_dialog", "reuse_png"]
        plan += ["restore", "job_wait", "refine_upscale", "job_wait", "finish"]
    stage = {"index": 0, "jobs": 0, "since": time.monotonic()}

    def record_state() -> None:
        text = panel.state.get_text()
        if not report["states"] or report["states"][-1] != text:
            report["states"].append(text)

    def finish() -> None:
        report["seconds"] = time.monotonic() - started
        report["settings_file"] = panel.settings.server
        with open(spec["report"] + ".tmp", "w") as handle:
            json.dump(report, handle)
        os.replace(spec["report"] + ".tmp", spec["report"])
        panel.window.close()

    def layer_names() -> list[str]:
        return [str(layer.get_name()) for layer in panel.canvas.image.get_layers()]

    def fields() -> dict[str, Any]:
        """The fields "reuse parameters" fills."""
        return {
            "prompt": panel.request(expand=False).prompt,
            "negative": panel.negative.get_text(),
            "style": panel.prompt_library.style.get_active_id(),
            "seed": panel.seed.get_text(),
            "locked": panel.seed_lock.get_active(),
            "steps": None if panel.model_steps.get_active() else panel.steps.get_value(),
        }

    def merged() -> Any:
        image = panel.canvas.image
        return panel.canvas.read_image(Bounds(0, 0, image.get_width(), image.get_height()))

    def guided_setup(prompt: str, seed: int) -> None:
        """One small inpaint, the same each time: the selection, model, locked seed, one image, few steps."""
        panel.canvas.image.select_rectangle(Gimp.ChannelOps.REPLACE, *spec["guided_select"])
        panel.model.set_active_id(spec["model"])
        panel.seed_lock.set_active(True)
        panel.seed.set_text(str(seed))
        panel.batch.set_value(1)
        panel.model_steps.set_active(False)
        panel.steps.set_value(spec["steps"])
        panel.set_prompt(prompt)

    def start_job(key: str, click: Any) -> None:
        """Click a button that starts a job; ``job_wait`` records it under ``key``."""
        panel._refresh()
        stage["merged"] = hashlib.sha256(bytes(merged().data)).hexdigest()
        stage["jobs"] = len(panel.controller.jobs)
        stage["key"] = key
        click()
        if len(panel.controller.jobs) == stage["jobs"]:
            raise RuntimeError(f"{key} made no job: {panel.controller.error}")

    def job_settled(job: Any) -> None:
        """Record the job (its results, where they were placed, the layers GIMP holds for them); the
        LoRA and reference jobs' layers go again (the image as it was for the next job)."""
        key, image = stage.pop("key"), panel.canvas.image
        record: dict[str, Any] = {
            "state": job.state,
            "error": job.error or panel.controller.error,
            "job_id": job.job_id,
            "mode": job.mode,
            "merged_before": stage["merged"],
            "params": [r.message["params"] for r in job.results],
            "placed": [asdict(placement(r.message, *job.size)) for r in job.results],
            "result_sha256": [hashlib.sha256(rgba(r.image)).hexdigest() for r in job.results],
            "layers": [
                {
                    "name": str(handle.get_name()),
                    "bounds": [*handle.get_offsets()[1:], handle.get_width(), handle.get_height()],
                    "sha256": hashlib.sha256(layer_pixels(handle)).hexdigest(),
                }
                for handle in job.handles
                if handle.is_valid()
            ],
            "canvas": [image.get_width(), image.get_height()],
            "names": layer_names(),
        }
        report.setdefault("jobs", {})[key] = record
        if key.startswith(("lora", "reference")):
            for handle in job.handles:
                if handle.is_valid():
                    image.remove_layer(handle)
        if key == "reference_on":
            section = panel.guides
            while section.row_widgets:
                section.row_widgets[0]["remove"].clicked()
            report["reference_rows_after_remove"] = len(section.fields.references)
            for layer in image.get_layers():
                if layer.get_name() == spec["reference"]["layer"]:
                    image.remove_layer(layer)
        if key == "restore" and job.results:
            record.update(restored(job.results[0], job.handles[0], stage.pop("merged_bytes"), merged().data))

    def restored(result: Any, handle: Any, before: bytes, after: bytes) -> dict[str, Any]:
        """Rows of the merged image that changed outside the result layer and inside the selection; the
        layer's alpha over the selection and on its outermost ring (the soft edge beyond the selection)."""
        _, lx, ly = handle.get_offsets()
        lw, lh = handle.get_width(), handle.get_height()
        x, y, w, h = spec["restore"]["select"]
        width = panel.canvas.image.get_width()
        outside = inside = 0
        for row in range(panel.canvas.image.get_height()):
            a = before[row * width * 4 : (row + 1) * width * 4]
            b = after[row * width * 4 : (row + 1) * width * 4]
            if ly <= row < ly + lh:
                outside += a[: lx * 4] != b[: lx * 4] or a[(lx + lw) * 4 :] != b[(lx + lw) * 4 :]
            else:
                outside += a != b
            if y <= row < y + h:
                inside += a[x * 4 : (x + w) * 4] != b[x * 4 : (x + w) * 4]
        alpha = rgba(result.image)[3::4]
        rw, rh = result.image.width, result.image.height
        ring = [alpha[i] for i in range(rw)] + [alpha[(rh - 1) * rw + i] for i in range(rw)]
        ring += [alpha[j * rw] for j in range(rh)] + [alpha[j * rw + rw - 1] for j in range(rh)]
        selected = [alpha[(j - ly) * rw + (i - lx)] for j in range(y, y + h) for i in range(x, x + w)]
        return {
            "rows_changed": {"outside_layer": outside, "inside_selection": inside},
            "alpha": {"selection_min": min(selected), "ring_max": max(ring)},
        }

    live_record: dict[str, Any] = {}

    def digests() -> dict[int, str]:
        image = panel.canvas.image
        out = {}
        for layer in image.get_layers():
            w, h = layer.get_width(), layer.get_height()
            data = layer.get_buffer().get(Gegl.Rectangle.new(0, 0, w, h), 1.0, "R'G'B'A u8", Gegl.AbyssPolicy.NONE)
            out[layer.get_id()] = hashlib.sha256(bytes(data)).hexdigest()
        return out

    def live_layer_digest(live: Any) -> str:
        layer, handle = live.layer, live.handle
        w, h = handle.get_width(), handle.get_height()
        data = bytes(handle.get_buffer().get(Gegl.Rectangle.new(0, 0, w, h), 1.0, "R'G'B'A u8", Gegl.AbyssPolicy.NONE))
        return hashlib.sha256(data).hexdigest() if data == bytes(layer.image.data) else "differs"

    def live_step(step: str) -> bool:
        """Live on a selection: the first picture, a dab on a layer of its own, a newer picture in the
        same layer, Apply (one undo step), Live off; False while waiting."""
        image, section, live = panel.canvas.image, panel.live, panel.controller.live
        spec_live = spec["live"]
        if step == "live_on":
            live_record["originals"] = digests()
            image.select_rectangle(Gimp.ChannelOps.REPLACE, *spec_live["select"])
            strokes = Gimp.Layer.new(
                image,
                "Strokes",
                image.get_width(),
                image.get_height(),
                Gimp.ImageType.RGBA_IMAGE,
                100.0,
                Gimp.LayerMode.NORMAL,
            )
            image.insert_layer(strokes, None, 0)
            image.set_selected_layers([strokes])
            stage["strokes"] = strokes
            live_record["before"] = [str(layer.get_name()) for layer in image.get_layers()]
            panel.model.set_active_id(spec_live["model"])  # the other fields as the earlier steps left them
            if spec.get("live_only"):
                panel.seed_lock.set_active(True)
                panel.seed.set_text(str(spec["seed"]))
                panel.model_steps.set_active(False)
                panel.steps.set_value(2)
            live_record["seed_field"] = panel.seed.get_text() if panel.seed_lock.get_active() else None
            section.expander.set_expanded(True)
            was_active = section.toggle.get_active()
            section.toggle.set_active(True)  # the user's click
            live = panel.controller.live  # the session Live started (it replaces the one before)
            if live.state != "starting":
                raise RuntimeError(
                    f"Live did not start: state={live.state} note={live.note!r} toggle was active={was_active} "
                    f"sensitive={section.toggle.get_sensitive()} error={panel.controller.error!r}"
                )
            return True
        if step == "live_first":
            if live.layer is None:
                if live.state == "off":
                    raise RuntimeError(f"Live ended: {live.note} {panel.controller.error}")
                return False
            live_record["started"] = {k: v for k, v in live.started_message.items() if k != "type"}
            live_record["first"] = {
                "seq": live.layer.seq,
                "frames": live.frames_sent,
                "bytes": live.bytes_sent,
                "layers": [str(layer.get_name()) for layer in image.get_layers()],
                "live_id": live.handle.get_id(),
                "bounds": [*live.handle.get_offsets()[1:], live.handle.get_width(), live.handle.get_height()],
                "layer_sha256": live_layer_digest(live),
            }
            x, y, w, h = spec_live["stroke"]
            strokes = stage["strokes"]
            buffer = strokes.get_buffer()
            buffer.set(Gegl.Rectangle.new(x, y, w, h), "R'G'B'A u8", bytes([220, 40, 40, 255]) * (w * h))
            buffer.flush()
            strokes.update(x, y, w, h)
            return True
        if step == "live_stroke":
            first = live_record["first"]
            if live.layer is None or live.layer.seq <= first["seq"] or live.frames_sent <= first["frames"]:
                return False
            live_record["stroke"] = {
                "seq": live.layer.seq,
                "frames": live.frames_sent,
                "frame_bytes": live.bytes_sent - first["bytes"],
                "layers": [str(layer.get_name()) for layer in image.get_layers()],
                "live_id": live.handle.get_id(),
                "layer_sha256": live_layer_digest(live),
                "status": section.status.get_text(),
            }
            with_live = [str(layer.get_name()) for layer in image.get_layers()]
            section.apply.clicked()
            after = [str(layer.get_name()) for layer in image.get_layers()]
            live_record["apply"] = {"with_live": with_live, "after": after}
            section.toggle.set_active(False)  # Live off
            live_record["check_ms"] = list(section.check_ms)
            return True
        if step == "live_off":
            if live.state != "off" or live.handle is not None:
                return False
            now = digests()
            live_record["stopped"] = {
                "state": live.state,
                "note": live.note,
                "toggle": section.toggle.get_active(),
                "layers": [str(layer.get_name()) for layer in image.get_layers()],
                "originals_unchanged": all(now.get(k) == v for k, v in live_record["originals"].items()),
            }
            live_record.pop("originals")
            report["live"] = live_record
        return True

    def tick() -> bool:
        try:
            record_state()
            step = plan[stage["index"]]
            if time.monotonic() - stage["since"] > 300:  # generous: tiny jobs take minutes on a loaded machine
                report["error"] = f"stuck at {step}"
                finish()
                return False
            if step == "connect":
                if panel.controller.connection != "connected" or not panel.model.get_active_id():
                    return True
                report["server_shown"] = panel.server.get_text()
                report["models"] = [row[1] for row in panel.model.get_model()]
                report["connection_expanded"] = panel.connection.get_expanded()
            elif step == "layout":
                if time.monotonic() - stage["since"] < 0.5:  # let the window settle at its default size
                    return True
                layout(panel, report, spec["screenshot"])
            elif step == "shrink":
                panel.window.resize(panel.window.get_size()[0], 360)
            elif step == "wheel":
                if time.monotonic() - stage["since"] < 0.5:
                    return True
                report["model_before_wheel"] = panel.model.get_active_id()
                wheel(panel, report)
                panel.window.resize(*panel.window.get_default_size())
            elif step == "fields":
                panel.model.set_active_id("classical")
                panel._refresh()
                report["classical"] = {
                    "prompt": panel.prompt.get_sensitive(),
                    "strength": panel.strength.get_sensitive(),
                    "steps": panel.model_steps.get_sensitive(),
                    "batch": panel.batch.get_sensitive(),
                    "hint": panel.ignored_hint.get_text() if panel.ignored_hint.get_visible() else "",
                }
                panel.model.set_active_id(spec["model"])
                panel._refresh()
                report["diffusion"] = {
                    "prompt": panel.prompt.get_sensitive(),
                    "hint_visible": panel.ignored_hint.get_visible(),
                }
                panel.prompt.get_buffer().set_text(spec["prompt"])
                panel.seed_lock.set_active(True)
                panel.seed.set_text(str(spec["seed"]))
                panel.batch.set_value(4)
                panel.model_steps.set_active(False)
                panel.steps.set_value(200)  # long enough to be cancelled while it runs
                panel.strength.set_value(100)
            elif step == "cancel":
                if stage.get("clicked") is None:
                    panel.generate.clicked()
                    stage["clicked"] = 1
                    return True
                job = panel.controller.jobs[-1]
                if job.state != "running" or job.step < 1:
                    if job.done:
                        report["error"] = f"the long job ended before Cancel: {job.state} {job.error}"
                        finish()
                        return False
                    return True
                report["cancel_progress_text"] = panel.progress.get_text()
                panel.cancel.clicked()
                report["layers_before_cancel"] = len(panel.canvas.image.get_layers())
            elif step == "generate":
                report["layers_after_cancel"] = len(panel.canvas.image.get_layers())
                panel.batch.set_value(spec["batch"])
                panel.steps.set_value(spec["steps"])
                report["mode_hint"] = panel.mode_hint.get_text()
                panel.generate.clicked()
                report["cancel_sensitive_while_running"] = panel.cancel.get_sensitive()
            elif step == "wait":
                jobs = panel.controller.jobs
                if len(jobs) <= stage["jobs"] or not jobs[-1].settled:
                    return True
                job = jobs[-1]
                stage["jobs"] = len(jobs)
                report["steps"].append(
                    {
                        "mode": job.mode,
                        "state": job.state,
                        "error": job.error,
                        "results": len(job.pasted),
                        "seed": job.seed,
                        "progress_text": panel.progress.get_text(),
                        "status_text": panel.status.get_text(),
                        "fraction": panel.progress.get_fraction(),
                        "preview": panel.preview_image.get_storage_type() == Gtk.ImageType.PIXBUF,
                        "seed_shown": panel.seed.get_text(),
                        "seed_editable": panel.seed.get_sensitive(),
                    }
                )
            elif step == "staged":
                staged = panel.controller.staged
                report["staged"] = {
                    "row": panel.staged_row.get_visible(),
                    "label": panel.staged_label.get_text(),
                    "layers": layer_names(),
                    "pasted": len(staged.job.pasted) if staged else -1,
                }
                panel.next_result.clicked()
            elif step == "step":
                report["stepped"] = {"label": panel.staged_label.get_text(), "layers": layer_names()}
                panel.apply.clicked()
            elif step == "apply":
                report["applied"] = {"layers": layer_names(), "row": panel.staged_row.get_visible()}
            elif step == "expand":
                for side, value in spec["expand"].items():
                    panel.sides[side].set_value(value)
                panel.batch.set_value(1)
                panel.seed_lock.set_active(False)  # random: the panel shows the seed it got
                panel.expand.clicked()
            elif step == "discard":
                report["expand_staged"] = {"layers": layer_names(), "row": panel.staged_row.get_visible()}
                panel.discard.clicked()
                report["discarded"] = {
                    "layers": layer_names(),
                    "row": panel.staged_row.get_visible(),
                    "size": [panel.canvas.image.get_width(), panel.canvas.image.get_height()],
                }
            elif step == "land":
                panel.more.set_expanded(True)
                panel.land_directly.set_active(True)
                panel.model.set_active_id("classical")
                panel.generate.clicked()
            elif step == "history":
                if not panel.history_expander.get_expanded():
                    panel.history_expander.set_expanded(True)
                history = panel.controller.history
                wanted = spec.get("history_at_least", 3)
                # thumbnails in and their fetches ended (a Re-apply while one runs is refused)
                if len(history) < wanted or not all(item.thumbnails and not item.fetching for item in history[:wanted]):
                    return True
                rows = panel.history.get_children()
                report["history"] = {
                    "labels": [item.label() for item in history],
                    "job_ids": [item.job_id for item in history],
                    "seeds": [item.results[0].seed if item.results else None for item in history],
                    "rows": len(rows),
                    "thumbnails": [len(item.thumbnails) for item in history],
                    "outputs_folder": panel.controller.outputs_folder,
                    "outputs_button": panel.outputs.get_sensitive(),
                    "client_id": panel.controller.client_id,
                }
            elif step == "reuse":
                history = panel.controller.history
                inpaint = next(
                    item
                    for item in history
                    if item.summary.get("model") == "tiny-random" and item.summary.get("mode") == "inpaint"
                )
                panel.seed_lock.set_active(False)
                panel.seed.set_text("")
                panel.reuse(inpaint, 1)
                report["reused"] = {
                    "seed": panel.seed.get_text(),
                    "locked": panel.seed_lock.get_active(),
                    "model": panel.model.get_active_id(),
                    "steps": panel.steps.get_value(),
                    "model_steps": panel.model_steps.get_active(),
                }
                before = layer_names()
                panel.controller.reapply(inpaint, 1)
                report["reapplied"] = {"before": before, "after": layer_names(), "error": panel.controller.error}
            elif step == "segment":  # a drawn box, Refine selection in the panel's own section
                image = panel.canvas.image
                image.select_rectangle(Gimp.ChannelOps.REPLACE, *spec["segment_box"])
                section = panel.segment
                section.expander.set_expanded(True)
                report["segment_models"] = [row[0] for row in section.model.get_model()]
                section.model.set_active_id("refine")
                section.combine.set_active_id("replace")
                stage["jobs"] = len(panel.controller.jobs)
                section.refine.clicked()
                if len(panel.controller.jobs) == stage["jobs"]:
                    raise RuntimeError(f"Refine selection made no job: {panel.controller.error}")
            elif step == "segment_wait":
                job = panel.controller.jobs[-1]
                if not job.settled:
                    return True
                record: dict[str, Any] = {"state": job.state, "error": panel.controller.error, "job_id": job.job_id}
                if job.results:
                    from underpaint_protocol.segment import segment_mask

                    mask = segment_mask(job.results[-1].message, job.results[-1].image, "replace")
                    image = panel.canvas.image
                    w, h = image.get_width(), image.get_height()
                    got = bytes(
                        image.get_selection()
                        .get_buffer()
                        .get(Gegl.Rectangle.new(0, 0, w, h), 1.0, "Y u8", Gegl.AbyssPolicy.NONE)
                    )
                    wrong = 0
                    for y in range(h):
                        for x in range(w):
                            mx, my = x - mask.x, y - mask.y
                            inside = 0 <= mx < mask.width and 0 <= my < mask.height
                            wrong += abs(got[y * w + x] - (mask.data[my * mask.width + mx] if inside else 0)) > 1
                    record.update({"wrong_px": wrong, "selected_px": sum(1 for v in got if v > 127)})
                report["segment"] = record
            elif step in ("control_off", "control_on"):  # the same seed without, then with a control layer
                image = panel.canvas.image
                if step == "control_off":
                    make_control_layer(image, spec["control"]["layer"])
                    image.select_rectangle(Gimp.ChannelOps.REPLACE, *spec["control"]["select"])  # small: quick
                section = panel.guides
                section.expander.set_expanded(True)
                panel.model.set_active_id(spec["model"])
                panel.seed_lock.set_active(True)
                panel.seed.set_text(str(spec["control"]["seed"]))
                panel.batch.set_value(1)
                panel.model_steps.set_active(False)
                panel.steps.set_value(spec["steps"])
                if step == "control_on":
                    control = spec["control"]
                    section.refresh()
                    names = [row[0] for row in section.layer.get_model()]
                    section.layer.set_active(names.index(control["layer"]))
                    section.add_control.clicked()
                    row = section.row_widgets[-1]
                    row["kind"].set_active_id(control["kind"])
                    row["strength"].set_value(control["strength"])
                    row["end"].set_value(control["end"])
                    row["preprocess"].set_active(False)  # the lines are the canny input as they are
                    report["control_rows"] = [c.job_item() for c in section.fields.controls]
                    report["control_hint"] = section.hint.get_text()
                panel._refresh()
                stage["merged"] = hashlib.sha256(bytes(merged().data)).hexdigest()
                stage["jobs"] = len(panel.controller.jobs)
                report.setdefault("control_plan", []).append(panel.mode_hint.get_text())
                panel.generate.clicked()
                if len(panel.controller.jobs) == stage["jobs"]:
                    raise RuntimeError(f"Generate made no job: {panel.controller.error}")
            elif step == "control_wait":
                job = panel.controller.jobs[-1]
                if not job.settled:
                    return True
                report.setdefault("control_jobs", []).append(
                    {
                        "state": job.state,
                        "error": job.error or panel.controller.error,
                        "job_id": job.job_id,
                        "mode": job.mode,
                        "merged_before": stage["merged"],
                        "params": [
                            {k: r.message["params"].get(k) for k in ("seed", "controls", "engine_params")}
                            for r in job.results
                        ],
                        "result_sha256": [hashlib.sha256(bytes(r.image.data)).hexdigest() for r in job.results],
                    }
                )
                image = panel.canvas.image
                for handle in job.handles:  # the image as it was, for the next job and the final checks
                    if handle.is_valid():
                        image.remove_layer(handle)
                if len(report["control_jobs"]) == 2:
                    section = panel.guides
                    while section.row_widgets:
                        section.row_widgets[0]["remove"].clicked()
                    report["control_rows_after_remove"] = len(section.fields.controls)
                    for layer in image.get_layers():
                        if layer.get_name() == spec["control"]["layer"]:
                            image.remove_layer(layer)
            elif step == "library":  # the prompt library: save the prompt as a style with the panel's Save
                section = panel.prompt_library
                section.expander.set_expanded(True)
                if len(section.prompts.styles) < 2:
                    return True
                panel.model.set_active_id("classical")
                panel.set_prompt("e2e look of {prompt}")
                section.style_name.set_text(spec["style"])
                section.save.clicked()
            elif step == "style_saved":
                section = panel.prompt_library
                if section.prompts.style != spec["style"]:
                    if panel.controller.error:
                        raise RuntimeError(f"saving the style failed: {panel.controller.error}")
                    return True
                report["style_saved"] = {
                    "active": section.style.get_active_id(),
                    "listed": [row[0] for row in section.style.get_model()],
                    "rename": section.rename.get_sensitive(),
                }
                panel.set_prompt(spec["styled_prompt"])
                stage["jobs"] = len(panel.controller.jobs)
                panel.generate.clicked()  # results land directly (set above)
            elif step == "style_wait":
                jobs = panel.controller.jobs
                if len(jobs) <= stage["jobs"] or not jobs[-1].settled:
                    return True
                job = jobs[-1]
                params = job.results[0].message["params"] if job.results else {}
                output = job.results[0].message.get("output") if job.results else None
                if output and not os.path.isfile(output):  # saved in the background after the result
                    return True
                report["styled"] = {
                    "state": job.state,
                    "error": job.error,
                    "job_id": job.job_id,
                    "params": {key: params.get(key) for key in ("prompt", "style", "user_prompt")},
                    "output": output,
                }
            elif step == "describe":
                panel.canvas.image.select_rectangle(Gimp.ChannelOps.REPLACE, *spec["describe_box"])
                panel.set_prompt("")
                panel.prompt_library.describe.clicked()
            elif step == "described":
                prompt = panel.request(expand=False).prompt
                if not prompt and not panel.controller.error:
                    return True
                report["described"] = {"prompt": prompt, "error": panel.controller.error}
            elif step == "reuse_png":
                section = panel.prompt_library
                reused = []
                for path in (report["styled"]["output"], spec["a1111_png"]):
                    reused.append({"ok": section.reuse_file(path), **fields()})
                report["reused_png"] = reused
            elif step in ("lora_off", "lora_on"):  # the same seed without, then with the picker's LoRA
                lora = spec["lora"]
                section = panel.prompt_library
                section.expander.set_expanded(True)
                if step == "lora_on":
                    if not section.prompts.loras:
                        return True
                    report["lora_picker"] = {
                        "rows": [[row[0], row[1]] for row in section.lora.get_model()],
                        "add_sensitive": section.add_lora.get_sensitive(),
                    }
                guided_setup(lora["prompt"], lora["seed"])
                if step == "lora_on":
                    section.lora.set_active_id(lora["name"])
                    section.lora_weight.set_value(lora["weight"])
                    section.add_lora.clicked()
                    report["lora_prompt"] = panel.request(expand=False).prompt
                start_job(step, panel.generate.clicked)
            elif step in ("reference_off", "reference_on"):  # the same seed without, then with a reference layer
                reference = spec["reference"]
                image = panel.canvas.image
                if step == "reference_off":
                    make_reference_layer(image, reference["layer"])
                guided_setup(reference["prompt"], reference["seed"])
                if step == "reference_on":
                    section = panel.guides
                    section.expander.set_expanded(True)
                    section.refresh()
                    names = [row[0] for row in section.layer.get_model()]
                    section.layer.set_active(names.index(reference["layer"]))
                    section.add_reference.clicked()
                    report["reference_rows"] = [r.job_item() for r in section.fields.references]
                start_job(step, panel.generate.clicked)
            elif step == "restore":  # Restore on a selection with the restore model
                image = panel.canvas.image
                report["before_upscale"] = {
                    "canvas": [image.get_width(), image.get_height()],
                    "layers": layer_names(),
                    "background": hashlib.sha256(layer_pixels(image.get_layers()[-1])).hexdigest(),
                    "selected": [str(layer.get_name()) for layer in image.get_selected_layers()],
                }
                image.select_rectangle(Gimp.ChannelOps.REPLACE, *spec["restore"]["select"])
                section = panel.upscale
                section.expander.set_expanded(True)
                section.combos["restorer"].set_active_id(spec["restore"]["model"])
                stage["merged_bytes"] = merged().data
                start_job(step, section.buttons["restore"].clicked)
            elif step == "refine_upscale":  # Refine-upscale of the whole image
                image = panel.canvas.image
                Gimp.Selection.none(image)
                upscale, section = spec["refine_upscale"], panel.upscale
                section.factor.set_value(upscale["factor"])
                section.combos["upscaler"].set_active_id(upscale["upscaler"])
                section.combos["refiner"].set_active_id(upscale["model"])
                section.strength.set_value(upscale["strength"])
                section.steps.set_value(upscale["steps"])
                section.prompt.set_text(upscale["prompt"])
                source = merged()  # what the job reads: the test upscales it plainly to compare
                GdkPixbuf.Pixbuf.new_from_bytes(
                    GLib.Bytes.new(bytes(source.data)),
                    GdkPixbuf.Colorspace.RGB,
                    True,
                    8,
                    source.width,
                    source.height,
                    source.width * 4,
                ).savev(upscale["source"], "png", [], [])
                start_job(step, section.buttons["refine_upscale"].clicked)
            elif step == "job_wait":
                job = panel.controller.jobs[-1]
                if not job.settled:
                    return True
                job_settled(job)
            elif step == "reuse_dialog":  # Reuse parameters… through the panel's file chooser
                chooser: dict[str, Any] = {}
                answer_file_chooser(spec["a1111_dialog_png"], chooser)
                panel.prompt_library.from_png.clicked()  # returns once the chooser is answered
                report["reused_dialog"] = {"chooser": chooser, **fields()}
            elif step in ("live_on", "live_first", "live_stroke", "live_off"):
                if not live_step(step):
                    return True
            elif step == "history_upscale":  # the newest upscale of the history, re-applied: streamed again
                upscaled = next(item for item in panel.controller.history if item.summary.get("mode") in UPSCALE_MODES)
                stage["upscaled"], stage["layers"] = upscaled, layer_names()
                stage["canvas"] = [panel.canvas.image.get_width(), panel.canvas.image.get_height()]
                panel.controller.reapply(upscaled)
            elif step == "history_reapplied":
                upscaled, image = stage["upscaled"], panel.canvas.image
                if upscaled.fetching:  # the tiles stream in
                    return True
                result = upscaled.results[0]
                report["history_upscale"] = {
                    "job_id": upscaled.job_id,
                    "mode": upscaled.summary.get("mode"),
                    "thumbnail_only": result.thumbnail_only,
                    "thumbnail": [result.image.width, result.image.height],
                    "error": panel.controller.error,
                    "canvas_before": stage.pop("canvas"),
                    "canvas": [image.get_width(), image.get_height()],
                    "new_layers": [
                        {
                            "name": str(layer.get_name()),
                            "bounds": [*layer.get_offsets()[1:], layer.get_width(), layer.get_height()],
                            "sha256": hashlib.sha256(layer_pixels(layer)).hexdigest(),
                        }
                        for layer in image.get_layers()
                        if layer.get_name() not in stage["layers"]
                    ],
                    "layers": layer_names(),
                }
            elif step == "finish":
                finish()
                return False
            now = time.monotonic()
            report.setdefault("stage_seconds", []).append([step, round(now - stage["since"], 2)])  # what each costs
            stage["index"] += 1
            stage["since"] = now
            stage.pop("clicked", None)
        except Exception:
            report["error"] = traceback.format_exc()
            finish()
            return False
        return True

    GLib.timeout_add(100, tick)
