"""The real plugin in the real Krita 5 and Krita 6 (under Xvfb, isolated HOME) against a real daemon.

The plugin is installed with ``underpaint.install.krita.install(dest=...)`` into the isolated pykrita
folder. Beside it the test installs a second plugin, tests/krita/driver (the shipped plugin has no test
code), which, when UNDERPAINT_KRITA_TEST names a spec, opens a copy of tests/data/coffee.jpg, selects a
rectangle and clicks the docker's own buttons: inpaints (classical, tiny-random batches, previews,
cancel), control layers (a paint, group and vector layer), a LoRA from the picker, references (a layer,
a file), styles, Expand, Refine selection, Restore, the spandrel upscaler, Refine-upscale, the classical
upscales, Live, Describe and From PNG, all in one launch per Krita against tests/hosts/daemon.py. A
host that is not provisioned FAILS naming tools/hosts/provision.sh; these tests never skip.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, PngImagePlugin

from tests.hosts import (
    ARTIFACTS_DIR,
    KRITA_LABELS,
    REPO_ROOT,
    HostMissing,
    daemon_png,
    get_krita,
    prepare_krita_home,
    run_krita,
)
from tests.hosts.daemon import CONTROL, LORA, LORA_TRIGGER, RESTORER, UPSCALER, HostDaemon, host_daemon
from underpaint.engines.interrogate import terms
from underpaint.install.krita import enable_in_kritarc, install

pytestmark = [pytest.mark.host, pytest.mark.timeout(1800)]  # the first test of each Krita waits for its whole launch

IMAGE = REPO_ROOT / "tests" / "data" / "coffee.jpg"  # 600 x 400
SELECTION = [220, 130, 140, 110]
CONTROL_ROW = {"layer": "control lines", "kind": "canny", "strength": 90, "start": 0, "end": 100}
VECTOR_SVG = (  # white outlines over the selection and its context, as an artist would draw them
    '<svg xmlns="http://www.w3.org/2000/svg" width="600" height="400" viewBox="0 0 600 400">'
    '<g fill="none" stroke="#ffffff" stroke-width="4">'
    '<rect x="150" y="80" width="300" height="240"/><circle cx="290" cy="185" r="60"/>'
    '<path d="M 150 80 L 450 320 M 450 80 L 150 320"/></g></svg>'
)
RESTORE_SELECTION = [260, 140, 120, 120]
RESTORE_BAND = 32
"""Pixels around the selection the restore's soft mask may reach (its outward ramp, ~14 px here)."""
REFERENCE_FILE = REPO_ROOT / "tests" / "data" / "chelsea.jpg"
JOBS = [
    {"name": "classical", "model": "classical", "prompt": "clean table", "seed": 7},
    {
        "name": "tiny",
        "model": "tiny-random",
        "prompt": "noise",
        "steps": 2,
        "batch": 2,
        "seed": 11,
        "undo_check": True,
    },
    {"name": "seed_big", "model": "tiny-random", "prompt": "noise", "steps": 2, "seed": 3_000_000_000},
    {"name": "cancel", "model": "tiny-random", "prompt": "slow", "steps": 300, "seed": 5, "cancel": True},
    {"name": "apply", "model": "tiny-random", "prompt": "kept", "steps": 2, "batch": 2, "seed": 21, "preview": "apply"},
    {"name": "discard", "model": "tiny-random", "prompt": "dropped", "steps": 2, "seed": 22, "preview": "discard"},
    {
        "name": "apply_all",
        "model": "tiny-random",
        "prompt": "all",
        "steps": 2,
        "batch": 2,
        "seed": 23,
        "preview": "apply_all",
    },
    # the same seed without, then with a control layer (a hidden layer of white lines): the paste of
    # the first is undone, so both start from the same image
    {
        "name": "control_off",
        "model": "tiny-random",
        "prompt": "guided",
        "steps": 2,
        "seed": 41,
        "control_layer": {"name": "control lines", "step": 12},
        "undo_after": 1,
    },
    # Krita's other layer kinds as control layers (hidden, as a sketch usually is), same seed as
    # control_off: a group holding the same lines as "control lines" (its pixels are those lines), a
    # vector layer, and a paint layer holding what Krita shows for that vector layer
    {
        "name": "control_group",
        "model": "tiny-random",
        "prompt": "guided",
        "steps": 2,
        "seed": 41,
        "make_layers": [
            {"kind": "group", "name": "control group", "child": "group lines", "step": 12},
            {"kind": "vector", "name": "control vector", "svg": VECTOR_SVG},
        ],
        "controls": [CONTROL_ROW | {"layer": "control group"}],
        "undo_after": 1,
    },
    {
        "name": "control_vector",
        "model": "tiny-random",
        "prompt": "guided",
        "steps": 2,
        "seed": 41,
        "controls": [CONTROL_ROW | {"layer": "control vector"}],
        "undo_after": 1,
    },
    {
        "name": "control_vector_shown",
        "model": "tiny-random",
        "prompt": "guided",
        "steps": 2,
        "seed": 41,
        "shown_copy": {"of": "control vector", "name": "vector shown"},
        "controls": [CONTROL_ROW | {"layer": "vector shown"}],
        "undo_after": 1,
    },
    # the LoRA from the picker (it adds its tag and trigger word), and the same prompt and seed without it
    {
        "name": "lora_off",
        "model": "tiny-random",
        "prompt": f"ink cup, {LORA_TRIGGER}",
        "steps": 2,
        "seed": 51,
        "undo_after": 1,
    },
    {
        "name": "lora",
        "model": "tiny-random",
        "prompt": "ink cup",
        "steps": 2,
        "seed": 51,
        "lora": {"name": LORA, "weight": 1.0},
        "undo_after": 1,
    },
    # references: a layer and an image file, and the same seed without them
    {
        "name": "reference_off",
        "model": "tiny-random",
        "prompt": "referenced",
        "steps": 2,
        "seed": 61,
        "make_layers": [{"kind": "picture", "name": "reference picture", "rect": [20, 20, 96, 96]}],
        "undo_after": 1,
    },
    {
        "name": "reference",
        "model": "tiny-random",
        "prompt": "referenced",
        "steps": 2,
        "seed": 61,
        "references": [{"layer": "reference picture"}],
        "undo_after": 1,
    },
    {  # the daemon takes one reference at a time
        "name": "reference_file",
        "model": "tiny-random",
        "prompt": "referenced",
        "steps": 2,
        "seed": 61,
        "references": [{"file": str(REFERENCE_FILE)}],
        "undo_after": 1,
    },
    {
        "name": "control",
        "model": "tiny-random",
        "prompt": "guided",
        "steps": 2,
        "seed": 41,
        "controls": [CONTROL_ROW],
        "drop_control_layer": "control lines",
    },
    {"name": "styled", "model": "classical", "prompt": "styled cup", "seed": 8, "style": "Photograph"},
    {"name": "expand", "model": "classical", "prompt": "more table", "seed": 3, "expand": [0, 0, 64, 32]},
]
DESCRIBE_BOX = [300, 200, 240, 180]  # last: a selection in the upscaled document
"""The daemon's tiny random ControlNet (built in code) for the tiny-random model."""
SEGMENT = {
    "box": [200, 110, 200, 160],  # a drawn box around the cup
    "model": "refine",
    "combine": ["add", "subtract", "intersect", "replace"],  # replace last: it is inpainted next
    "inpaint": {"name": "segment_inpaint", "model": "classical", "prompt": "no cup", "seed": 9},
    # last, after selecting: an upscale scales the document (664x432 after the expand)
    "then": [
        # restore on a selection; the spandrel upscaler, then refine-upscale (each undone after: the
        # document is back to 664x432 for the classical upscale)
        {
            "name": "restore",
            "model": RESTORER,
            "upscale": {"action": "restore", "select": RESTORE_SELECTION, "band": RESTORE_BAND},
            "undo_after": 1,
        },
        {"name": "upscale_model", "model": UPSCALER, "upscale": {"factor": 2}, "undo_after": 2},
        {
            "name": "refine",
            "model": "tiny-random",
            "upscale": {
                "action": "refine_upscale",
                "factor": 2,
                "upscaler": UPSCALER,
                "strength": 10,  # one of the 10 steps set in the section, on each of 12 tiles
                "steps": 10,
                "prompt": "crisp ceramic",
            },
            "undo_after": 2,
            "timeout": 600,  # 12 tiles of 512 px: minutes on a loaded 2-core machine
        },
        {"name": "upscale", "model": "classical-upscale", "upscale": {"factor": 2}},
        {
            "name": "upscale_region",
            "model": "classical-upscale",
            "upscale": {"factor": 2, "select": [440, 260, 280, 220]},
        },
    ],
}

LIVE = {  # last, on the upscaled document (2656 x 1728): the region is the selection, not the image
    "model": "tiny-random",
    "prompt": "live",
    "steps": 2,
    "strength": 50,
    "seed": 5,
    "select": [400, 300, 128, 96],
    "stroke": [420, 320, 24, 12],
}


DRIVER = REPO_ROOT / "tests" / "krita" / "driver"


def install_driver(pykrita: Path, kritarc: Path) -> None:
    """Install the test driver as its own Krita plugin beside the real one, and enable it."""
    shutil.copy2(DRIVER / "underpaint_driver.desktop", pykrita / "underpaint_driver.desktop")
    shutil.copytree(DRIVER / "underpaint_driver", pykrita / "underpaint_driver", dirs_exist_ok=True)
    enable_in_kritarc(kritarc, "underpaint_driver")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostDaemon]:
    with host_daemon(tmp_path_factory.mktemp("krita-daemon")) as running:
        yield running


@pytest.fixture(scope="module", params=KRITA_LABELS)
def krita_run(request: pytest.FixtureRequest, daemon: HostDaemon, tmp_path_factory: pytest.TempPathFactory):
    label = request.param
    try:
        host = get_krita(label)
    except HostMissing as error:
        pytest.fail(str(error), pytrace=False)
    home = tmp_path_factory.mktemp(f"{label}-home")
    prepare_krita_home(home)
    pykrita = home / ".local" / "share" / "krita" / "pykrita"
    install(dest=pykrita, kritarc=home / ".config" / "kritarc")
    install_driver(pykrita, home / ".config" / "kritarc")
    with open(home / ".config" / "kritarc", "a", encoding="utf-8") as rc:  # as Settings would have remembered
        rc.write(f"\n[underpaint]\nurl={daemon.url}\ntoken={daemon.token}\n")
    spec = home / "spec.json"
    library = {"describe_box": DESCRIBE_BOX, "a1111_png": str(a1111_png(home))}
    image = shutil.copy2(IMAGE, home / IMAGE.name)  # Krita autosaves beside the file: never in the clone
    spec.write_text(
        json.dumps(
            {
                "image": str(image),
                "selection": SELECTION,
                "jobs": JOBS,
                "segment": SEGMENT,
                "library": library,
                "live": LIVE,
                "job_timeout": 300,
            }
        )
    )
    shot = ARTIFACTS_DIR / f"{label}.png"
    started = time.monotonic()
    run = run_krita(host, home, timeout=1500, env={"UNDERPAINT_KRITA_TEST": str(spec)}, screenshot=shot)
    report = run.report or {}
    report["_elapsed"] = time.monotonic() - started
    report["_host"] = host.describe()
    report["_home"] = str(home)
    report["_label"] = label
    (home / "report.copy.json").write_text(json.dumps(report, indent=1))
    print(f"{label}: {host.describe()} ran in {report['_elapsed']:.1f} s; report {home / 'report.copy.json'}")
    if "error" in report:
        pytest.fail(f"{label}: the test hook failed:\n{report['error']}\n{run.output()}", pytrace=False)
    return report


def a1111_png(folder: Path) -> Path:
    """A PNG as A1111 saves it: its parameters in a ``parameters`` text chunk."""
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a red boat\nNegative prompt: fog\nSteps: 12, Sampler: Euler a, CFG scale: 5, Seed: 77")
    path = folder / "a1111.png"
    Image.new("RGB", (8, 8)).save(path, "PNG", pnginfo=info)
    return path


def _find(tree: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    for node in tree:
        if node["name"] == name:
            return node
        found = _find(node["children"], name)
        if found:
            return found
    return None


def _layer_matches_result(job: dict[str, Any]) -> None:
    """Each pasted layer sits exactly where the daemon's result says (placement into the grown canvas)."""
    assert job["state"] == "finished", job
    assert len(job["pasted"]) == len(job["results"]) >= 1
    for result, pasted, readback in zip(job["results"], job["pasted"], job["readback_sha256"], strict=True):
        layer, canvas = result["layer"], result["canvas"]
        expected = [layer["x"] - canvas["x"], layer["y"] - canvas["y"], layer["width"], layer["height"]]
        assert [pasted["x"], pasted["y"], pasted["width"], pasted["height"]] == expected
        assert pasted["name"] == layer["name"]
        node = _find(job["layers"], pasted["name"])
        assert node is not None, f"no layer {pasted['name']!r} in {job['layers']}"
        assert node["bounds"] == expected  # the layer's real extent in Krita
        assert readback == pasted["sha256"], "the layer's pixels differ from the daemon's result"
    assert job["originals_unchanged"]


def test_krita_version_and_connection(krita_run: dict[str, Any]) -> None:
    assert krita_run["document"] == {"width": 600, "height": 400, "color": ["RGBA", "U8"]}
    assert set(krita_run["models"]) >= {"classical", "tiny-random"}
    assert krita_run["status"].startswith("Connected")
    assert krita_run["krita_version"].split(".")[0] in ("5", "6")


def test_classical_inpaint_pastes_one_layer_above_the_active_one(krita_run: dict[str, Any]) -> None:
    job = krita_run["jobs"]["classical"]
    assert job["mode"] == "inpaint"
    _layer_matches_result(job)
    top = [n for n in job["layers"] if not n["type"].endswith("mask")]
    assert [n["name"] for n in top] == ["Background", job["pasted"][0]["name"]]
    assert "clean table" in job["pasted"][0]["name"] and "7" in job["pasted"][0]["name"]
    x, y, w, h = SELECTION
    layer = job["results"][0]["layer"]
    assert layer["x"] <= x and layer["y"] <= y  # covers the selection
    assert layer["x"] + layer["width"] >= x + w and layer["y"] + layer["height"] >= y + h


def test_tiny_random_batch_lands_in_one_group_and_undoes_in_one_step(krita_run: dict[str, Any]) -> None:
    job = krita_run["jobs"]["tiny"]
    assert job["mode"] == "inpaint"
    _layer_matches_result(job)
    layers = [n for n in job["layers"] if not n["type"].endswith("mask")]
    group = layers[-1]
    assert group["type"] == "grouplayer"
    names = [p["name"] for p in job["pasted"]]
    assert [c["name"] for c in reversed(group["children"])] == names  # item 0 on top
    assert [c["visible"] for c in reversed(group["children"])] == [True, False]
    undo = job["undo"]
    assert undo["before"] == job["layers"]
    assert undo["after_undo"] == [n for n in job["layers"] if n is not group]  # the whole group, one undo
    assert undo["after_redo"] == undo["before"]


def test_a_control_layer_guides_an_inpaint(krita_run: dict[str, Any]) -> None:
    """A hidden layer picked in the docker's Control layers section, kind canny at 90 %: the job
    carries it, the daemon ran its ControlNet, and the result differs from the same seed without it."""
    off, on = krita_run["jobs"]["control_off"], krita_run["jobs"]["control"]
    assert off["mode"] == on["mode"] == "inpaint"
    _layer_matches_result(on)
    assert off["state"] == "finished" and off["merged_before"] == on["merged_before"], "the same image both times"
    row = {"kind": "canny", "strength": 0.9, "start": 0.0, "end": 1.0, "preprocess": False}
    assert krita_run["guide_rows"] == [[row]] * 4, "one row each: the group, the vector, its copy, the lines"
    (plain,), (guided,) = off["guide_params"], on["guide_params"]
    assert plain["seed"] == guided["seed"] == 41 and plain["controls"] == []
    assert guided["controls"] == [row]
    assert guided["engine_params"]["controls"] == [CONTROL]
    assert off["pasted"][0]["sha256"] != on["pasted"][0]["sha256"], "the control layer changed the result"
    assert "canny" in on["guides_hint"] and on["rows_after_remove"] == 0


def test_expand_grows_the_canvas_and_outpaints(krita_run: dict[str, Any]) -> None:
    job = krita_run["jobs"]["expand"]
    assert job["mode"] == "outpaint"
    canvas = job["results"][0]["canvas"]
    assert job["doc_size"] == [canvas["width"], canvas["height"]] == [664, 432]
    _layer_matches_result(job)


def test_ui_thread_kept_responsive(krita_run: dict[str, Any]) -> None:
    # the docker's timer kept ticking while jobs ran (pasting itself happens on the UI thread)
    assert krita_run["max_ui_gap_s"] < 5.0, krita_run["max_ui_gap_s"]


def test_screenshot_saved(krita_run: dict[str, Any]) -> None:
    label = "krita6" if krita_run["krita_version"].startswith("6") else "krita5"
    shot = ARTIFACTS_DIR / f"{label}.png"
    assert shot.is_file() and shot.stat().st_size > 10_000


@pytest.fixture(scope="module")
def krita_restart(krita_run: dict[str, Any], daemon: HostDaemon) -> dict[str, Any]:
    """The same Krita home started again (the client id it remembered), showing its history."""
    label, home = krita_run["_label"], Path(krita_run["_home"])
    host = get_krita(label)
    spec = home / "spec-history.json"
    history = {"image": str(home / IMAGE.name), "selection": SELECTION, "jobs": [], "history_only": True}
    spec.write_text(json.dumps(history))
    run = run_krita(
        host,
        home,
        timeout=240,
        env={"UNDERPAINT_KRITA_TEST": str(spec)},
        screenshot=ARTIFACTS_DIR / f"{label}-history.png",
    )
    report = run.report or {}
    if "error" in report:
        pytest.fail(f"{label}: the history run failed:\n{report['error']}\n{run.output()}", pytrace=False)
    return report


def test_the_docker_fits_a_300_px_dock(krita_run: dict[str, Any]) -> None:
    hint = krita_run["size_hint"]
    assert hint["minimum_width"] <= 300, hint
    assert not hint["horizontal_scrollbar"], hint


def test_a_seed_above_2_31_round_trips_and_is_shown(krita_run: dict[str, Any]) -> None:
    job = krita_run["jobs"]["seed_big"]
    assert job["state"] == "finished" and job["seed"] == 3_000_000_000
    assert job["result_seeds"] == [3_000_000_000] and job["last_seed_text"] == "Last seed: 3000000000"
    assert job["progress_value"] == 1000 and job["progress_text"].startswith("done in ")


def test_cancel_stops_the_running_job_while_a_finished_row_is_highlighted(krita_run: dict[str, Any]) -> None:
    job = krita_run["jobs"]["cancel"]
    assert krita_run["highlight_before"]["cancel"] >= 0, "a finished row was highlighted"
    assert job["state"] == "cancelled" and job["pasted"] == []
    assert [n["name"] for n in job["layers"]] == [n["name"] for n in job["tree_before"]], "nothing pasted"
    assert krita_run["highlight_before"]["seed_big"] == -1, "finished rows never become highlighted by themselves"


def test_preview_then_apply_is_one_undo_step(krita_run: dict[str, Any]) -> None:
    record = krita_run["previews"]["apply"]
    assert record["preview_names"][0].startswith("[preview 1/2]") and record["preview_names"][1].startswith(
        "[preview 2/2]"
    )
    assert record["pasted"] == [record["result_names"][1]]
    names = sorted(n["name"] for n in record["after"])
    assert names == sorted([n["name"] for n in record["before"]] + [record["result_names"][1]])
    assert record["undo"]["after_undo"] == record["before"], "one undo takes the applied result away"
    assert record["undo"]["after_redo"] == record["after"]


def test_preview_then_apply_all_lands_the_batch_as_one_group(krita_run: dict[str, Any]) -> None:
    record = krita_run["previews"]["apply_all"]
    assert record["pasted"] == record["result_names"] and len(record["result_names"]) == 2
    before = [n["name"] for n in record["before"]]
    added = [n for n in record["after"] if n["name"] not in before]
    assert len(added) == 1 and added[0]["name"].startswith("all [seeds"), record["after"]
    assert not any(n["name"].startswith("[preview") for n in record["after"]), "the preview layer is gone"
    assert record["undo"]["after_undo"] == record["before"], "one undo takes the whole group away"
    assert record["undo"]["after_redo"] == record["after"]


def test_preview_then_discard_leaves_the_image_as_it_was(krita_run: dict[str, Any]) -> None:
    record = krita_run["previews"]["discard"]
    assert any(n["name"].startswith("[preview 1/1]") for n in record["with_preview"])
    assert record["after"] == record["before"] and record["pasted"] == []
    assert record["undo"]["after_undo"] == record["with_preview"], "one undo brings the discarded preview back"
    assert record["undo"]["after_redo"] == record["before"]


def test_history_after_a_restart_reapplies_and_reuses(krita_restart: dict[str, Any]) -> None:
    history = krita_restart["history"]
    assert len(history["job_ids"]) >= 5 and history["icons"][history["row"]]
    assert history["client_id_kept"] and history["outputs_enabled"]
    assert len(history["after"]) == len(history["before"]) + 1, "re-apply pasted one layer"
    assert history["seed_field"] == str(history["seed"]) and history["prompt_field"]


def test_history_reapplies_an_upscale_streamed_into_one_layer(krita_restart: dict[str, Any]) -> None:
    """The region upscale from the history onto the original 600x400 image: its thumbnail made tile by
    tile, its tiles streamed again into one new layer at the top-left (the image has another size),
    the document not scaled."""
    upscaled = krita_restart["history_upscale"]
    assert upscaled["icon"] and upscaled["thumbnail_only"] and max(upscaled["thumbnail"]) == 96, upscaled
    assert not upscaled["error"] and upscaled["doc_size"] == [600, 400]
    layer = upscaled["layer"]
    new = [n for n in upscaled["after"] if n["name"] not in {m["name"] for m in upscaled["before"]}]
    assert len(upscaled["after"]) == len(upscaled["before"]) + 1 and len(new) == 1, new
    assert new[0]["name"] == layer["name"] and new[0]["type"] == "paintlayer"
    assert new[0]["bounds"] == [0, 0, layer["width"], layer["height"]], (new, layer)


def test_the_wheel_over_an_unfocused_field_changes_nothing(krita_run: dict[str, Any]) -> None:
    wheel = krita_run["wheel"]
    assert not wheel["focused"] and wheel["after"] == wheel["before"] == 100, wheel


@pytest.mark.parametrize("combine", SEGMENT["combine"])
def test_refine_selection_turns_a_drawn_box_into_the_daemon_s_mask_by_each_combine_mode(
    krita_run: dict[str, Any], combine: str
) -> None:
    """The docker's Refine selection button on a rectangular selection: Krita's selection afterwards
    is the daemon's soft mask at its placement, combined with the box by Krita's own operation."""
    segment = krita_run["segment"]
    assert "refine" in segment["models"]
    record = segment[combine]
    assert record["state"] == "finished" and not record["error"], record
    _, _, w, h = SEGMENT["box"]
    assert 0 < record["mask_selected_px"] < 0.95 * w * h, "an object inside the box, not the box itself"
    assert record["wrong_px"] == 0 and record["max_diff"] <= 1, record
    if combine == "replace":
        assert record["selected_px"] == record["mask_selected_px"] and record["soft_px"] > 0, "soft edges kept"


def test_the_refined_selection_is_inpainted_like_any_selection(krita_run: dict[str, Any]) -> None:
    job = krita_run["jobs"]["segment_inpaint"]
    assert job["mode"] == "inpaint"
    _layer_matches_result(job)
    mx, my, mw, mh = krita_run["segment"]["replace"]["mask"]
    layer = job["results"][0]["layer"]
    assert layer["x"] <= mx + mw and layer["y"] <= my + mh and layer["x"] + layer["width"] >= mx


def _daemon_layer(daemon: HostDaemon, job_id: str) -> tuple[list[int], str]:
    """The daemon's own result of an upscale, from its outputs folder: the tiles' PNGs joined at their
    placements (the sidecars), as the BGRA bytes Krita holds; returns the layer rect and its SHA-256."""
    sidecars = sorted(
        (
            json.loads(path.read_text()) | {"png": path.with_suffix(".png")}
            for path in (daemon.folder / "outputs").rglob(f"{job_id}-*.json")
        ),
        key=lambda sidecar: sidecar["index"],
    )
    assert sidecars, f"no outputs of {job_id}"
    whole = sidecars[0]["upscale"]["layer"]
    assert len(sidecars) == sidecars[0]["upscale"]["tiles"]
    layer = Image.new("RGBA", (whole["width"], whole["height"]))
    for sidecar in sidecars:
        with Image.open(daemon_png(sidecar["png"])) as tile:
            layer.paste(tile.convert("RGBA"), (sidecar["x"] - whole["x"], sidecar["y"] - whole["y"]))
    r, g, b, a = layer.split()
    bgra = Image.merge("RGBA", (b, g, r, a)).tobytes()
    return [whole["x"], whole["y"], whole["width"], whole["height"]], hashlib.sha256(bgra).hexdigest()


def _upscaled(
    job: dict[str, Any], daemon: HostDaemon, size_before: list[int], rect: list[int], mode: str = "upscale"
) -> None:
    """The document scaled by 2 once (one undo step), the result one new layer above at ``rect`` holding
    the daemon's result, tile by tile."""
    assert job["mode"] == mode and job["state"] == "finished", job
    assert job["size_before"] == size_before
    assert job["doc_size"] == [size_before[0] * 2, size_before[1] * 2]
    (pasted,) = job["pasted"]
    names = [n["name"] for n in job["layers"] if not n["type"].endswith("mask")]
    before = [n["name"] for n in job["tree_before"] if not n["type"].endswith("mask")]
    assert names == [*before, pasted["name"]], "one new layer, on top of the ones there were"
    node = [n for n in job["layers"] if n["name"] == pasted["name"]][-1]  # the top one of that name
    assert node["bounds"] == [pasted["x"], pasted["y"], pasted["width"], pasted["height"]]
    assert pasted["sha256"] is None, "the plugin pasted tile by tile, never holding the whole layer"
    undo, steps = job["undo_upscale"]["states"], job["undo_upscale"]["steps"]
    # undo: the layer goes, then the scaling; redo: the scaling, then the layer (Krita's own names for them)
    labels = ["Undo Add Layer", "Undo Scale Image", "Redo Scale Image", "Redo Add Layer"]
    assert [step["label"] for step in steps] == labels, steps
    sizes = [job["doc_size"], size_before, job["doc_size"], job["doc_size"]]
    assert [state["size"] for state in undo] == sizes, steps
    assert [state["layers"] for state in undo] == [before, before, before, names], steps
    daemon_rect, digest = _daemon_layer(daemon, job["job_id"])
    assert daemon_rect == [pasted["x"], pasted["y"], pasted["width"], pasted["height"]] == rect
    assert job["readback_sha256"] == [digest], "Krita's layer holds the daemon's result, tile by tile"


def test_upscale_scales_the_document_and_adds_one_full_size_layer(
    krita_run: dict[str, Any], daemon: HostDaemon
) -> None:
    job = krita_run["jobs"]["upscale"]
    _upscaled(job, daemon, [664, 432], [0, 0, 1328, 864])


def test_a_region_upscale_lands_over_that_region_of_the_scaled_document(
    krita_run: dict[str, Any], daemon: HostDaemon
) -> None:
    job = krita_run["jobs"]["upscale_region"]
    _upscaled(job, daemon, [1328, 864], [880, 520, 560, 440])


def test_a_style_picked_in_the_docker_runs_and_its_params_show_the_resolved_prompt(krita_run: dict[str, Any]) -> None:
    job = krita_run["jobs"]["styled"]
    assert job["state"] == "finished", job
    params = job["params"]
    assert params["style"] == "Photograph" and params["user_prompt"] == "styled cup", params
    assert params["prompt"].startswith("photograph of styled cup, "), params
    later = krita_run["jobs"]["expand"]["params"]
    assert later["style"] is None and later["prompt"] == "more table", "back to no style for the next job"


def test_describe_fills_the_prompt_from_the_selection(krita_run: dict[str, Any]) -> None:
    described = krita_run["described"]
    assert not described["error"], described
    assert any(medium in described["prompt"] for medium in terms("mediums")), described


def test_from_png_fills_the_fields_from_ours_and_from_an_a1111_png(krita_run: dict[str, Any]) -> None:
    ours, theirs = krita_run["reused_png"]
    seed = krita_run["jobs"]["styled"]["params"]["seed"]
    wanted = {"prompt": "styled cup", "negative": "", "seed": str(seed), "style": "Photograph", "error": ""}
    assert {key: ours[key] for key in wanted} == wanted, "what the user typed, its style and seed"
    assert theirs == {"prompt": "a red boat", "negative": "fog", "seed": "77", "steps": 12, "style": "", "error": ""}


def test_live_painting_updates_one_layer_applies_in_one_undo_step_and_stops(krita_run: dict[str, Any]) -> None:
    """The docker's Live toggle on a selection: the first picture in one live layer on top; a dab on
    a layer of its own streams a frame of the dab's size, not the region's, and a newer picture lands
    in the SAME layer; Apply adds one normal layer (one undo step); Live off removes the live layer
    and every layer that was there before is byte-identical."""
    record = krita_run["live"]
    started, first, stroke = record["started"], record["first"], record["stroke"]
    region = started["region"]  # the selection with the daemon's context around it
    rx, ry, rw, rh = region["x"], region["y"], region["width"], region["height"]
    x, y, w, h = LIVE["select"]
    assert rx <= x and ry <= y and rx + rw >= x + w and ry + rh >= y + h, started
    assert started["model"] == "tiny-random" and started["seed"] == LIVE["seed"]
    assert first["seq"] == 1 and first["frames"] == 1 and first["bytes"] == rw * rh * 4  # the whole region once
    (layer,) = first["live_layers"]
    lx, ly, lw, lh = layer["bounds"]
    assert rx <= lx and ry <= ly and lx + lw <= rx + rw and ly + lh <= ry + rh and first["layer_sha256"] != "differs"
    assert stroke["seq"] > first["seq"] and stroke["key"] == first["key"], "a newer picture in the same layer"
    assert len(stroke["live_layers"]) == 1 and stroke["layer_sha256"] not in ("differs", first["layer_sha256"])
    sw, sh = LIVE["stroke"][2:]
    sent = stroke["frames"] - first["frames"]
    assert sent >= 1 and stroke["frame_bytes"] == sent * sw * sh * 4, stroke  # the dab's rectangle only
    assert stroke["status"].startswith("Live: frame"), stroke["status"]
    apply = record["apply"]
    names = [n["name"] for n in apply["with_live"]]
    assert names[-1].startswith("Live") and names[:-1] == [n["name"] for n in record["before"]]
    added = [n for n in apply["after"] if n["name"] not in names]
    assert len(added) == 1 and added[0]["bounds"] == layer["bounds"] and "live" in added[0]["name"], apply["after"]
    assert [n["name"] for n in apply["after"]][-1] == names[-1], "applied below the live layer, above the painting"
    assert apply["undo"]["after_undo"] == apply["with_live"], "one undo takes the applied layer away"
    assert apply["undo"]["after_redo"] == apply["after"]
    stopped = record["stopped"]
    assert stopped["state"] == "off" and not stopped["note"] and not stopped["button_checked"]
    kept = [n["name"] for n in apply["after"] if n["name"] != layer["name"]]
    assert [n["name"] for n in stopped["after"]] == kept, "the live layer is gone, the applied one stays"
    assert stopped["originals_unchanged"], "the layers that were there before Live are untouched"
    assert record["check_ms"], "the timer checked the painting"


def _sidecars(daemon: HostDaemon, job_id: str) -> list[dict[str, Any]]:
    """The daemon's sidecars of one job's results (its outputs folder), in result order."""
    found = [json.loads(path.read_text()) for path in daemon.outputs.rglob(f"{job_id}-*.json")]
    assert found, f"no sidecar of {job_id}"
    return sorted(found, key=lambda sidecar: sidecar["index"])


def test_krita_layer_kinds_as_control_layers_give_the_control_what_krita_shows(krita_run: dict[str, Any]) -> None:
    """A hidden group and a hidden vector layer picked as control layers: the group (holding the same
    lines as the paint layer "control lines") gives the very result of that paint layer, the vector
    layer the very result of a paint layer holding what Krita shows for it; each differs from no
    control at all (same seed, same image)."""
    jobs = krita_run["jobs"]
    off, lines = jobs["control_off"], jobs["control"]
    group, vector, shown = jobs["control_group"], jobs["control_vector"], jobs["control_vector_shown"]
    for job in (group, vector, shown):
        _layer_matches_result(job)
        assert job["merged_before"] == off["merged_before"], "the same image each time"
        assert job["merged_after_undo"] == off["merged_before"], "the result undone after"
        ((params,),) = [job["guide_params"]]
        assert params["seed"] == 41 and params["engine_params"]["controls"] == [CONTROL]
    digest = {name: job["pasted"][0]["sha256"] for name, job in jobs.items() if name.startswith("control")}
    assert krita_run["shown"]["control vector"] > 1000, "Krita drew the vector shapes"
    assert digest["control_group"] == digest["control"], "the group's pixels are what the control got"
    assert digest["control_vector"] == digest["control_vector_shown"], "what Krita shows for the vector layer"
    assert len({digest["control_off"], digest["control"], digest["control_vector"]}) == 3, "each control changes it"
    assert lines["guides_hint"] and group["rows_after_remove"] == vector["rows_after_remove"] == 0


def test_a_lora_from_the_picker_is_named_in_the_sidecar_and_changes_the_result(
    krita_run: dict[str, Any], daemon: HostDaemon
) -> None:
    picker = krita_run["lora_picker"]
    rows = {row.split(" — ")[0]: row.split(" — ")[-1].split(", ") for row in picker["rows"]}
    assert LORA_TRIGGER in rows[LORA] and picker["enabled"], "the picker shows the LoRA with its trigger word"
    assert picker["prompt"] == f"ink cup, {LORA_TRIGGER} <lora:{LORA}:1>", "the picker adds its tag and trigger"
    off, on = krita_run["jobs"]["lora_off"], krita_run["jobs"]["lora"]
    _layer_matches_result(on)
    assert on["merged_before"] == off["merged_before"] == off["merged_after_undo"]
    (sidecar,) = _sidecars(daemon, on["job_id"])
    assert sidecar["params"]["loras"] == [{"name": LORA, "weight": 1.0}], sidecar["params"]
    assert on["params"]["loras"] == sidecar["params"]["loras"] and off["params"]["loras"] == []
    assert on["params"]["prompt"] == off["params"]["prompt"] == f"ink cup, {LORA_TRIGGER}", "the same words ran"
    assert on["params"]["seed"] == off["params"]["seed"] == 51
    assert on["pasted"][0]["sha256"] != off["pasted"][0]["sha256"], "the LoRA changed the result"


def test_a_reference_layer_and_file_are_listed_in_the_sidecar_and_change_the_result(
    krita_run: dict[str, Any], daemon: HostDaemon
) -> None:
    """A layer, then an image file (a JPEG, converted by the docker) as the reference of an inpaint:
    each listed in its sidecar, each changing the same-seed result, each differently."""
    rows = krita_run["reference_rows"]
    assert len(rows) == 2 and all(len(row["weights"]) == 1 and not row["error"] for row in rows), rows
    off = krita_run["jobs"]["reference_off"]
    digests = {off["pasted"][0]["sha256"]}
    for name, row in zip(("reference", "reference_file"), rows, strict=True):
        on = krita_run["jobs"][name]
        _layer_matches_result(on)
        assert on["merged_before"] == off["merged_before"] == off["merged_after_undo"]
        (sidecar,) = _sidecars(daemon, on["job_id"])
        references = sidecar["params"]["references"]
        assert [ref["weight"] for ref in references] == row["weights"], references
        (plain,), (guided,) = off["guide_params"], on["guide_params"]
        assert plain["references"] == [] and guided["references"] == references
        assert plain["seed"] == guided["seed"] == 61
        assert on["rows_after_remove"] == 0
        digests.add(on["pasted"][0]["sha256"])
    assert len(digests) == 3, "each reference changed the result, and differently"


def test_restore_lands_over_the_selection_and_leaves_the_rest_untouched(
    krita_run: dict[str, Any], daemon: HostDaemon
) -> None:
    job = krita_run["jobs"]["restore"]
    assert job["mode"] == "restore"
    _layer_matches_result(job)
    x, y, w, h = RESTORE_SELECTION
    layer = job["results"][0]["layer"]
    assert layer["x"] <= x and layer["y"] <= y and layer["x"] + layer["width"] >= x + w
    assert layer["y"] + layer["height"] >= y + h, "the layer covers the selection"
    restored = job["restored"]
    assert restored["beyond_band_changed_px"] == 0, restored  # the soft mask's ramp only, nothing farther
    assert restored["inside_changed_px"] == w * h, "the restorer replaced the selected pixels"
    (sidecar,) = _sidecars(daemon, job["job_id"])
    assert sidecar["params"]["mode"] == "restore" and sidecar["params"]["model"] == RESTORER
    assert job["merged_after_undo"] == job["merged_before"]


def test_the_spandrel_upscaler_scales_the_document_and_adds_its_result(
    krita_run: dict[str, Any], daemon: HostDaemon
) -> None:
    job = krita_run["jobs"]["upscale_model"]
    _upscaled(job, daemon, [664, 432], [0, 0, 1328, 864])
    assert _sidecars(daemon, job["job_id"])[0]["params"]["upscale"]["model"] == UPSCALER
    classical = krita_run["jobs"]["upscale"]
    assert classical["merged_before"] == job["merged_before"] == job["merged_after_undo"], "the same image"
    assert job["readback_sha256"] != classical["readback_sha256"], "the model, not the classical upscaler"


def test_refine_upscale_scales_the_document_and_repaints_the_upscale(
    krita_run: dict[str, Any], daemon: HostDaemon
) -> None:
    """The section's Refine-upscale: the upscaler, tiny-random, a strength and a prompt: the document
    scaled in one undo step, the result at full size, its sidecars saying what ran; not the plain
    upscale by the same model and factor."""
    job, plain = krita_run["jobs"]["refine"], krita_run["jobs"]["upscale_model"]
    _upscaled(job, daemon, [664, 432], [0, 0, 1328, 864], mode="refine_upscale")
    for sidecar in _sidecars(daemon, job["job_id"]):
        params = sidecar["params"]
        assert params["mode"] == "refine_upscale" and params["model"] == "tiny-random", params
        assert params["prompt"] == "crisp ceramic" and params["strength"] == 0.1 and params["steps"] == 10, params
        assert params["upscale"]["model"] == UPSCALER and params["upscale"]["factor"] == 2
    assert job["merged_before"] == plain["merged_before"] and job["merged_after_undo"] == job["merged_before"]
    assert job["readback_sha256"] != plain["readback_sha256"], "the refine pass repainted the upscale"
