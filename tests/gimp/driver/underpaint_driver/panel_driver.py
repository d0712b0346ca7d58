"""Drives the real panel inside GIMP for the panel end-to-end test (never shipped with the plug-in).

The test installs the ``underpaint_driver`` plug-in (this folder) beside the real one and sets
UNDERPAINT_PANEL_TEST to a JSON spec; its procedure opens the real panel and calls :func:`drive`.
Everything happens on the panel's GTK main loop, through its widgets: wait for the
connection (server remembered in the settings file), type a prompt, pick model/seed/batch, click
Generate, then set the Expand sides and click Expand; write a report and close the window.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from typing import Any

from gi.repository import GLib, Gtk


def drive(panel: Any, spec_path: str) -> None:
    with open(spec_path) as handle:
        spec = json.load(handle)
    report: dict[str, Any] = {"steps": [], "states": []}
    started = time.monotonic()
    plan = ["connect", "generate", "wait", "expand", "wait", "finish"]
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

    def tick() -> bool:
        try:
            record_state()
            step = plan[stage["index"]]
            if time.monotonic() - stage["since"] > 150:  # generous: a loaded machine
                report["error"] = f"stuck at {step}"
                finish()
                return False
            if step == "connect":
                if panel.controller.connection != "connected" or not panel.model.get_active_id():
                    return True
                report["server_shown"] = panel.server.get_text()
                report["models"] = [row[1] for row in panel.model.get_model()]
                panel.prompt.get_buffer().set_text(spec["prompt"])
                panel.model.set_active_id(spec["model"])
                panel.seed.set_value(spec["seed"])
                panel.batch.set_value(spec["batch"])
                panel.steps.set_value(spec["steps"])
                panel.strength.set_value(1.0)
            elif step == "generate":
                report["mode_hint"] = panel.mode_hint.get_text()
                panel.generate.clicked()
                report["cancel_sensitive_while_running"] = panel.cancel.get_sensitive()
            elif step == "wait":
                jobs = panel.controller.jobs
                if len(jobs) <= stage["jobs"] or not jobs[-1].done:
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
                        "fraction": panel.progress.get_fraction(),
                        "preview": panel.preview_image.get_storage_type() == Gtk.ImageType.PIXBUF,
                    }
                )
            elif step == "expand":
                for side, value in spec["expand"].items():
                    panel.sides[side].set_value(value)
                panel.batch.set_value(1)
                panel.expand.clicked()
            elif step == "finish":
                finish()
                return False
            stage["index"] += 1
            stage["since"] = time.monotonic()
        except Exception:
            report["error"] = traceback.format_exc()
            finish()
            return False
        return True

    GLib.timeout_add(100, tick)
