"""End to end in a REAL headless GIMP 3 (3.0 and 3.2) against a REAL daemon.

The plug-in is installed with ``underpaint.install.gimp.install(dest=...)`` into an isolated GIMP
config folder's plug-ins; a python-fu-eval script opens tests/data/coffee.jpg and calls the
plug-in's PDB procedures non-interactively. Every PDB scenario below runs in ONE GIMP launch per
version (the first test of that version waits for it: GIMP starts slowly); each test then checks its
own scenario's report. The daemon is ``python -m underpaint serve`` with the
classical engine and the random-weight ``tiny-random`` diffusion model. Checks: every result layer
sits exactly where the daemon placed it (the daemon's own sidecar JSON next to each saved output)
with the daemon's exact pixels, batches are grouped, outpaint grew the canvas once, and the original
layer's pixels are unchanged.

A GIMP that tools/hosts/provision.sh has not provisioned FAILS these tests (never skipped).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, PngImagePlugin

from tests.gimp.gimp_script import script
from tests.hosts import GIMP_LABELS, GimpHost, HostMissing, HostRunError, daemon_png, get_gimp, run_gimp_batch
from tests.hosts.daemon import CONTROL, LORA, LORA_TRIGGER, RESTORER, UPSCALER, free_port, host_daemon
from tests.hosts.daemon import HostDaemon as Daemon
from underpaint.engines.interrogate import terms
from underpaint.install.gimp import install
from underpaint_protocol.jobs import placement

pytestmark = [pytest.mark.host, pytest.mark.timeout(1500)]  # the first PDB test of a GIMP waits for all

REPO = Path(__file__).resolve().parents[2]
PHOTO = REPO / "tests" / "data" / "coffee.jpg"
WIDTH, HEIGHT = 600, 400
CONTROL_SEED = 41
GIMP_START = 240
"""Seconds a GIMP launch may take beyond its jobs: GIMP starts slowly on a loaded machine."""


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with host_daemon(tmp_path_factory.mktemp("daemon")) as running:
        yield running


def gimp(label: str) -> GimpHost:
    try:
        return get_gimp(label)
    except HostMissing as error:
        pytest.fail(str(error), pytrace=False)


def install_plugin(tmp_path: Path) -> Path:
    config_dir = tmp_path / "gimp"
    installed = install(dest=config_dir / "GIMP" / "plug-ins")
    assert installed == config_dir / "GIMP" / "plug-ins" / "underpaint"
    assert os.access(installed / "underpaint.py", os.X_OK)
    return config_dir


def run_panel(label: str, tmp_path: Path, env: dict[str, str], timeout: float) -> dict[str, Any]:
    """The test plug-in's ``underpaint-panel-test`` procedure, interactively, on an ellipse selection;
    GIMP's report of the image afterwards."""
    report_path = tmp_path / "report.json"
    report_path.unlink(missing_ok=True)
    scenario = {"report": str(report_path), "select": [200, 120, 150, 120], "calls": []}
    scenario["calls"].append({"procedure": "underpaint-panel-test", "args": {}})
    text = script(str(PHOTO), [scenario], interactive=True)
    run = run_gimp_batch(gimp(label), text, config_dir=tmp_path / "gimp", timeout=timeout, env=env)
    assert report_path.is_file(), f"GIMP wrote no report\n{run.output()}"
    report = json.loads(report_path.read_text()) | {"_output": run.output()}
    assert "exception" not in report, f"{report['exception']}\n{run.output()}"
    return report


Build = Callable[[str, Path, Daemon], dict[str, Any]]
PDB_SCENARIOS: dict[str, Build] = {}
"""Every PDB scenario by name: (GIMP label, its own folder, the daemon) -> what the script runs (its
``calls``, optional ``select``/``feather``/``layers``) plus what its test needs to know (``prompt``...)."""
PDB_SECONDS = 900
"""How long all PDB scenarios of one GIMP may take (a dozen jobs; minutes on a loaded 2-core machine)."""


def pdb_scenario(build: Build) -> Build:
    PDB_SCENARIOS[build.__name__.lstrip("_")] = build
    return build


class PdbRuns:
    """Runs every PDB scenario in one GIMP launch per version, on the first test that asks for one of
    them; each test gets its own scenario's report (a scenario that failed fails its test only)."""

    def __init__(self, folder: Path, daemon: Daemon) -> None:
        self.folder, self.daemon = folder, daemon
        self.launches: dict[str, tuple[dict[str, dict[str, Any]], str, int | None]] = {}

    def launch(self, label: str) -> tuple[dict[str, dict[str, Any]], str, int | None]:
        """Each scenario (with its report path), GIMP's output and its exit status (None: timed out)."""
        if label not in self.launches:
            folder = self.folder / label
            install_plugin(folder)
            specs = {}
            for name, build in PDB_SCENARIOS.items():
                (folder / name).mkdir()
                specs[name] = build(label, folder / name, self.daemon) | {"report": str(folder / f"{name}.json")}
            text = script(str(PHOTO), list(specs.values()))
            try:
                run = run_gimp_batch(
                    gimp(label), text, config_dir=folder / "gimp", timeout=PDB_SECONDS + GIMP_START, check=False
                )
                self.launches[label] = (specs, run.output(), run.returncode)
            except HostRunError as error:  # timed out: the scenarios that reported still count
                self.launches[label] = (specs, str(error), None)
        return self.launches[label]

    def __call__(self, label: str, name: str) -> dict[str, Any]:
        """The report of scenario ``name`` in GIMP ``label``, over its spec's fields, with GIMP's output."""
        specs, output, returncode = self.launch(label)
        spec = specs[name]
        path = Path(spec["report"])
        assert path.is_file(), f"GIMP (exit status {returncode}) wrote no report for {name}\n{output}"
        report = spec | json.loads(path.read_text()) | {"_output": output}  # GIMP's "calls" and "layers" win
        assert "exception" not in report, f"{report['exception']}\n{output}"
        return report


@pytest.fixture(scope="module")
def pdb(tmp_path_factory: pytest.TempPathFactory, daemon: Daemon) -> PdbRuns:
    return PdbRuns(tmp_path_factory.mktemp("gimp-pdb"), daemon)


@pytest.mark.parametrize("label", GIMP_LABELS)
def test_one_launch_runs_every_pdb_scenario_and_gimp_quits_cleanly(label: str, pdb: PdbRuns) -> None:
    specs, output, returncode = pdb.launch(label)
    missing = [name for name, spec in specs.items() if not Path(spec["report"]).is_file()]
    assert returncode == 0 and not missing, f"exit status {returncode}, no report for {missing}\n{output}"


def _sidecars_of(daemon: Daemon, report: dict[str, Any]) -> list[dict[str, Any]]:
    """The daemon's sidecars written while the scenario of ``report`` ran, oldest first, each with its
    PNG (the daemon writes a result's sidecar before it tells the client; scenarios run one by one)."""
    found = []
    for path in daemon.outputs.rglob("*.json"):
        if report["started"] <= path.stat().st_mtime <= report["ended"]:
            found.append((path.stat().st_mtime_ns, path))
    return [json.loads(path.read_text()) | {"png": path.with_suffix(".png")} for _, path in sorted(found)]


def check_layers(report: dict[str, Any], daemon: Daemon, prompt: str, batch: int) -> list[dict[str, Any]]:
    """The result layers match the daemon's results exactly; returns the sidecars."""
    assert report["success"], f"{report['status']}: {report['error']}\n{report['_output']}"
    sidecars = daemon.sidecars(prompt)
    assert len(sidecars) == batch, sidecars
    model = "tiny-random" if "-tiny " in prompt else "classical"
    assert {item["params"]["model"] for item in sidecars} == {model}
    top = report["layers"][0]
    if batch > 1:
        assert top["group"], "a batch job's layers go into one group"
        seeds = [item["params"]["seed"] for item in sidecars]
        assert top["name"] == f"{prompt} [seeds {seeds[0]}-{seeds[-1]}]"
        layers = top["children"]
    else:
        layers = [top]
    assert len(layers) == batch
    assert report["layers"][-1]["name"] == "Background" and len(report["layers"]) == 2
    for layer, sidecar in zip(layers, sidecars, strict=True):
        where = placement({"layer": sidecar, "canvas": sidecar["canvas"]}, WIDTH, HEIGHT)
        assert layer["name"] == sidecar["name"] == f"{prompt} [seed {sidecar['params']['seed']}]"
        assert (layer["x"], layer["y"], layer["width"], layer["height"]) == (
            where.x,
            where.y,
            where.width,
            where.height,
        )
        with Image.open(daemon_png(sidecar["png"])) as png:
            expected = png.convert("RGBA").tobytes()
        assert layer["sha256"] == hashlib.sha256(expected).hexdigest(), "the layer holds the daemon's exact pixels"
    assert report["background_after"] == report["background_before"], "the original layer was modified"
    assert report["selected"] == ["Background"], "the user's active layer stays active"
    assert report["background_size"] == [WIDTH, HEIGHT]
    return sidecars


def _prompt(kind: str, label: str) -> str:
    return f"{kind} {label} {uuid.uuid4().hex[:6]}"


def _call(procedure: str, daemon: Daemon, **args: Any) -> dict[str, Any]:
    return {"procedure": procedure, "args": args | {"server": daemon.url}}


@pdb_scenario
def _inpaint_classical(label: str, folder: Path, daemon: Daemon) -> dict[str, Any]:
    prompt = _prompt("inpaint-classical", label)
    call = _call("underpaint-inpaint", daemon, prompt=prompt, seed="11", model="classical")
    return {"prompt": prompt, "select": [250, 150, 120, 90], "feather": 16, "calls": [call]}


@pytest.mark.parametrize("label", GIMP_LABELS)
def test_inpaint_classical_soft_selection(label: str, pdb: PdbRuns, daemon: Daemon) -> None:
    report = pdb(label, "inpaint_classical")
    (sidecar,) = check_layers(report, daemon, report["prompt"], 1)
    selection = sidecar["params"]["selection"]
    # feathering grows the soft selection's bounds past the ellipse's box
    assert selection["x"] < 250 and selection["x"] + selection["width"] > 370
    assert sidecar["params"]["mode"] == "inpaint" and report["canvas"] == [WIDTH, HEIGHT]
    assert report["background_offsets"] == [0, 0]


@pdb_scenario
def _outpaint_classical(label: str, folder: Path, daemon: Daemon) -> dict[str, Any]:
    prompt = _prompt("outpaint-classical", label)
    grow = {"left": 64, "top": 0, "right": 96, "bottom": 32}
    call = _call("underpaint-outpaint", daemon, prompt=prompt, seed="21", batch=2, model="classical", **grow)
    return {"prompt": prompt, "calls": [call]}


@pytest.mark.parametrize("label", GIMP_LABELS)
def test_outpaint_classical_batch_grows_the_canvas_once(label: str, pdb: PdbRuns, daemon: Daemon) -> None:
    report = pdb(label, "outpaint_classical")
    sidecars = check_layers(report, daemon, report["prompt"], 2)
    assert report["canvas"] == [WIDTH + 160, HEIGHT + 32]
    assert report["background_offsets"] == [64, 0]
    assert {item["params"]["mode"] for item in sidecars} == {"outpaint"}


@pdb_scenario
def _inpaint_tiny(label: str, folder: Path, daemon: Daemon) -> dict[str, Any]:
    prompt = _prompt("inpaint-tiny", label)
    call = _call("underpaint-inpaint", daemon, prompt=prompt, seed="31", batch=2, model="tiny-random", steps=2)
    return {"prompt": prompt, "select": [80, 60, 100, 100], "calls": [call]}


@pytest.mark.parametrize("label", GIMP_LABELS)
def test_inpaint_tiny_random_batch(label: str, pdb: PdbRuns, daemon: Daemon) -> None:
    report = pdb(label, "inpaint_tiny")
    sidecars = check_layers(report, daemon, report["prompt"], 2)
    assert [item["params"]["seed"] for item in sidecars] == [31, 32]
    assert {item["params"]["model"] for item in sidecars} == {"tiny-random"}
    assert report["canvas"] == [WIDTH, HEIGHT]


@pdb_scenario
def _outpaint_tiny(label: str, folder: Path, daemon: Daemon) -> dict[str, Any]:
    prompt = _prompt("outpaint-tiny", label)
    grow = {"left": 0, "top": 48, "right": 0, "bottom": 0}
    call = _call("underpaint-outpaint", daemon, prompt=prompt, seed="41", model="tiny-random", steps=2, **grow)
    return {"prompt": prompt, "calls": [call]}


@pytest.mark.parametrize("label", GIMP_LABELS)
def test_outpaint_tiny_random(label: str, pdb: PdbRuns, daemon: Daemon) -> None:
    report = pdb(label, "outpaint_tiny")
    check_layers(report, daemon, report["prompt"], 1)
    assert report["canvas"] == [WIDTH, HEIGHT + 48]
    assert report["background_offsets"] == [0, 48]


@pdb_scenario
def _img2img_tiny(label: str, folder: Path, daemon: Daemon) -> dict[str, Any]:
    prompt = _prompt("img2img-tiny", label)
    call = _call("underpaint-img2img", daemon, prompt=prompt, seed="51", model="tiny-random", steps=2, strength=0.5)
    return {"prompt": prompt, "calls": [call]}


@pytest.mark.parametrize("label", GIMP_LABELS)
def test_img2img_tiny_random_whole_image(label: str, pdb: PdbRuns, daemon: Daemon) -> None:
    report = pdb(label, "img2img_tiny")
    (sidecar,) = check_layers(report, daemon, report["prompt"], 1)
    assert sidecar["params"]["mode"] == "img2img" and sidecar["params"]["selection"] is None


@pdb_scenario
def _daemon_down(label: str, folder: Path, daemon: Daemon) -> dict[str, Any]:
    port = free_port()
    call = {"procedure": "underpaint-inpaint", "args": {"server": f"ws://127.0.0.1:{port}"}}
    return {"port": port, "select": [10, 10, 50, 50], "calls": [call]}


@pytest.mark.parametrize("label", GIMP_LABELS)
def test_daemon_down_is_an_error_status_with_a_message(label: str, pdb: PdbRuns) -> None:
    report = pdb(label, "daemon_down")
    assert not report["success"] and report["status"] == "execution-error"
    hint = f"underpaint serve --port {report['port']}"  # this scenario's port: not another scenario's output
    assert hint in report["_output"]
    assert hint in (report["error"] or ""), report["error"]  # the caller gets the message too
    assert len(report["layers"]) == 1 and report["background_after"] == report["background_before"]


SEGMENT_BOX = [200, 110, 200, 160]  # a drawn rectangle around the cup
COMBINE = {
    "add": max,
    "subtract": lambda a, b: max(0, a - b),
    "intersect": min,
    "replace": lambda a, b: b,
}


def _segment_masks(daemon: Daemon, report: dict[str, Any]) -> list[tuple[dict[str, Any], bytes]]:
    """The segment results of the scenario of ``report``, oldest first: (sidecar, the mask = the PNG's alpha)."""
    found = []
    for data in _sidecars_of(daemon, report):
        if data["params"]["mode"] != "segment":
            continue
        with Image.open(daemon_png(data["png"])) as image:
            found.append((data, image.getchannel("A").tobytes()))
    return found


@pdb_scenario
def _segment_then_inpaint(label: str, folder: Path, daemon: Daemon) -> dict[str, Any]:
    prompt = _prompt("segment-inpaint", label)
    controlled = _prompt("pdb-control", label)
    calls = [
        _call("underpaint-segment", daemon, combine=combine, model="refine")
        | {"select": SEGMENT_BOX, "selection_out": str(folder / f"selection-{combine}.bin")}
        for combine in COMBINE
    ]
    calls.append(_call("underpaint-inpaint", daemon, prompt=prompt, seed="5", model="classical"))
    control_args = {"control-layer": {"layer": "control lines"}, "control-kind": "canny", "control-strength": 0.9}
    args = {"prompt": controlled, "seed": str(CONTROL_SEED), "model": "tiny-random", "steps": 2}
    calls.append(_call("underpaint-inpaint", daemon, **args, **control_args))
    lines = [{"name": "control lines", "png": str(control_lines(folder / "lines.png"))}]
    return {"prompt": prompt, "controlled": controlled, "folder": str(folder), "calls": calls, "layers": lines}


@pytest.mark.parametrize("label", GIMP_LABELS)
def test_segment_a_drawn_box_by_each_combine_mode_then_inpaint_it(label: str, pdb: PdbRuns, daemon: Daemon) -> None:
    """underpaint-segment on a rectangular selection (the drawn box), once per combine mode: GIMP's
    selection afterwards is the daemon's soft mask at its placement combined with the box by GIMP's own
    operation; then underpaint-inpaint on the last (replace) selection lands a layer, and again with a
    hidden layer of lines as the procedure's control layer (tiny-random's canny ControlNet)."""
    report = pdb(label, "segment_then_inpaint")
    prompt, controlled, folder = report["prompt"], report["controlled"], Path(report["folder"])
    assert [call["status"] for call in report["calls"]] == ["success"] * 6, report["calls"]
    masks = _segment_masks(daemon, report)
    assert len(masks) == 4
    bx, by, bw, bh = SEGMENT_BOX
    for (combine, rule), (sidecar, mask) in zip(COMBINE.items(), masks, strict=True):
        mx, my, mw, mh = sidecar["x"], sidecar["y"], sidecar["width"], sidecar["height"]
        assert sidecar["canvas"] == {"x": 0, "y": 0, "width": WIDTH, "height": HEIGHT}
        assert 0 < sum(1 for v in mask if v > 127) < 0.95 * bw * bh, "an object inside the box, not the box"
        assert any(0 < v < 255 for v in mask), "soft edges"
        got = (folder / f"selection-{combine}.bin").read_bytes()
        wrong = 0
        for y in range(HEIGHT):
            for x in range(WIDTH):
                a = 255 if bx <= x < bx + bw and by <= y < by + bh else 0
                inside = mx <= x < mx + mw and my <= y < my + mh
                b = mask[(y - my) * mw + (x - mx)] if inside else 0
                wrong += abs(got[y * WIDTH + x] - rule(a, b)) > 1
        assert wrong == 0, f"{combine}: {wrong} pixels differ from the daemon's mask combined with the box"
    (sidecar,) = daemon.sidecars(prompt)
    assert sidecar["params"]["mode"] == "inpaint"
    selection = sidecar["params"]["selection"]
    mx, my, mw, mh = masks[-1][0]["x"], masks[-1][0]["y"], masks[-1][0]["width"], masks[-1][0]["height"]
    assert mx <= selection["x"] and selection["x"] + selection["width"] <= mx + mw, "the object's selection"
    assert my <= selection["y"] and selection["y"] + selection["height"] <= my + mh
    (guided,) = daemon.sidecars(controlled)
    assert guided["params"]["controls"] == [
        {"kind": "canny", "strength": 0.9, "start": 0.0, "end": 1.0, "preprocess": True}
    ], guided["params"]["controls"]
    assert guided["params"]["engine_params"]["controls"] == [CONTROL], "the daemon ran its ControlNet"
    names = [layer["name"] for layer in report["layers"]]
    assert sorted(names) == sorted(["control lines", sidecar["name"], guided["name"], "Background"]), names
    assert report["background_after"] == report["background_before"]


def control_lines(path: Path, step: int = 12) -> Path:
    """White lines on transparent (an artist's sketch), the image's size: a canny control layer."""
    image = Image.new("RGBA", (WIDTH, HEIGHT))
    for x in range(0, WIDTH, step):
        image.paste((255, 255, 255, 255), (x, 0, x + 1, HEIGHT))
    for y in range(0, HEIGHT, step):
        image.paste((255, 255, 255, 255), (0, y, WIDTH, y + 1))
    image.save(path)
    return path


def joined_upscale(daemon: Daemon, report: dict[str, Any]) -> tuple[tuple[int, int, int, int], str]:
    """The daemon's own result of the one upscale of the scenario of ``report``: its tiles' PNGs joined
    at their placements (the sidecars); returns the layer rect and the SHA-256 of its RGBA pixels."""
    sidecars = _sidecars_of(daemon, report)
    assert sidecars and {item["params"]["mode"] for item in sidecars} == {"upscale"}, sidecars
    return joined_tiles(sidecars)


def joined_tiles(sidecars: list[dict[str, Any]]) -> tuple[tuple[int, int, int, int], str]:
    """One upscale's tiles (their sidecars, each with its PNG) joined at their placements; returns the
    layer rect and the SHA-256 of its RGBA pixels."""
    whole = sidecars[0]["upscale"]["layer"]
    assert len(sidecars) == sidecars[0]["upscale"]["tiles"], "every tile of one job"
    layer = Image.new("RGBA", (whole["width"], whole["height"]))
    for item in sidecars:
        with Image.open(daemon_png(item["png"])) as tile:
            layer.paste(tile.convert("RGBA"), (item["x"] - whole["x"], item["y"] - whole["y"]))
    rect = (whole["x"], whole["y"], whole["width"], whole["height"])
    return rect, hashlib.sha256(layer.tobytes()).hexdigest()


UPSCALES = {  # scenario: (selection, the new layer's rect, upscaler)
    "upscale_whole": (None, (0, 0, 2 * WIDTH, 2 * HEIGHT), "classical-upscale"),
    "upscale_selection": ([250, 150, 120, 90], (500, 300, 240, 180), UPSCALER),
}


@pdb_scenario
def _upscale_whole(label: str, folder: Path, daemon: Daemon) -> dict[str, Any]:
    select, _, model = UPSCALES["upscale_whole"]
    return {"select": select, "calls": [_call("underpaint-upscale", daemon, factor=2.0, model=model)]}


@pdb_scenario
def _upscale_selection(label: str, folder: Path, daemon: Daemon) -> dict[str, Any]:
    select, _, model = UPSCALES["upscale_selection"]
    return {"select": select, "calls": [_call("underpaint-upscale", daemon, factor=2.0, model=model)]}


@pytest.mark.parametrize(("label", "name"), [(label, name) for label in GIMP_LABELS for name in UPSCALES])
def test_upscale_scales_the_image_then_adds_one_layer_over_what_it_scaled(
    label: str, name: str, pdb: PdbRuns, daemon: Daemon
) -> None:
    """underpaint-upscale (factor 2; the classical upscaler, or the tiny Compact 2x through spandrel):
    the image scales to 1200x800 (every layer), then ONE new layer holds the daemon's result, tile by
    tile: the whole image, or the selection's region over that region of the scaled image."""
    _, layer, model = UPSCALES[name]
    report = pdb(label, name)
    assert report["success"], f"{report['status']}: {report['error']}\n{report['_output']}"
    assert report["canvas"] == [2 * WIDTH, 2 * HEIGHT]
    assert report["background_size"] == [2 * WIDTH, 2 * HEIGHT] and report["background_offsets"] == [0, 0]
    assert [item["name"] for item in report["layers"]][1:] == ["Background"], report["layers"]
    top = report["layers"][0]
    rect, digest = joined_upscale(daemon, report)
    assert {item["params"]["model"] for item in _sidecars_of(daemon, report)} == {model}
    assert (top["x"], top["y"], top["width"], top["height"]) == rect == layer
    assert top["sha256"] == digest, "the layer holds the daemon's exact pixels"
    assert report["selected"] == ["Background"], "the user's active layer stays active"


REFINE_PDB = {"factor": 2.0, "model": "tiny-random", "upscaler": UPSCALER, "prompt": "crisp glaze", "strength": 0.1}
"""underpaint-refine-upscale of a selection; 10 % of 10 steps: one refine step per tile."""


@pdb_scenario
def _refine_upscale_selection(label: str, folder: Path, daemon: Daemon) -> dict[str, Any]:
    call = _call("underpaint-refine-upscale", daemon, seed="7", steps=10, **REFINE_PDB)
    return {"select": [250, 150, 120, 90], "calls": [call]}


@pytest.mark.parametrize("label", GIMP_LABELS)
def test_refine_upscale_procedure_takes_its_steps_and_lands_one_layer(label: str, pdb: PdbRuns, daemon: Daemon) -> None:
    """underpaint-refine-upscale with every argument (steps too): the image scales to 1200x800, one
    layer over the selection's scaled region holds the daemon's refined tiles; their sidecars say what ran."""
    report = pdb(label, "refine_upscale_selection")
    assert report["success"], f"{report['status']}: {report['error']}\n{report['_output']}"
    assert report["canvas"] == [2 * WIDTH, 2 * HEIGHT]
    assert [item["name"] for item in report["layers"]][1:] == ["Background"], report["layers"]
    sidecars = _sidecars_of(daemon, report)
    for params in (item["params"] for item in sidecars):
        assert params["mode"] == "refine_upscale" and params["model"] == REFINE_PDB["model"], params
        assert params["steps"] == 10 and params["strength"] == REFINE_PDB["strength"], params
        assert params["prompt"] == REFINE_PDB["prompt"] and params["seed"] == 7, params
        assert params["upscale"]["model"] == UPSCALER and params["upscale"]["factor"] == 2, params
    top = report["layers"][0]
    rect, digest = joined_tiles(sidecars)
    assert (top["x"], top["y"], top["width"], top["height"]) == rect == (500, 300, 240, 180)
    assert top["sha256"] == digest, "the layer holds the daemon's exact pixels"


@pytest.fixture
def xvfb() -> Iterator[str]:
    """A private X display on this machine; a GIMP root sees it through the shared /tmp/.X11-unix."""
    read_end, write_end = os.pipe()
    try:
        proc = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write_end), "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
            pass_fds=(write_end,),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    except FileNotFoundError:
        pytest.fail("Xvfb is missing: run tools/hosts/provision.sh (it installs xvfb)", pytrace=False)
    os.close(write_end)
    with os.fdopen(read_end) as handle:
        number = handle.readline().strip()
    assert number, "Xvfb did not report a display"
    yield f":{number}"
    proc.terminate()
    proc.wait(10)


SEED = 3_000_000_061
"""Above 2^31: GIMP's int fields stop at 2^31-1, the daemon's seeds go to 2^32-1."""
LORA_RUN = {"name": LORA, "weight": 0.8, "seed": 43, "prompt": "a teapot on a table"}
"""An inpaint without, then with the LoRA picked in the prompt library (same seed)."""
REFERENCE_RUN = {"layer": "reference picture", "seed": 47, "prompt": "a bowl of fruit"}
"""An inpaint without, then with a hidden layer as a reference image (same seed)."""
A1111_CHOSEN = "a blue kite\nNegative prompt: rain\nSteps: 9, Sampler: Euler a, CFG scale: 6, Seed: 78"
"""The parameters of the PNG picked in "Reuse parameters…"'s file chooser."""
RESTORE_RUN = {"model": RESTORER, "select": [80, 60, 96, 80]}
REFINE_RUN = {
    "factor": 2.0,
    "upscaler": UPSCALER,
    "model": "tiny-random",
    "strength": 10,
    "steps": 10,
    "prompt": "crisp detail",
}
"""Refine-upscale of the whole image; 10 % of the section's 10 steps: one step per tile (quick)."""
LIVE = {"model": "tiny-random", "select": [40, 40, 96, 64], "stroke": [60, 50, 20, 10]}
"""The panel's Live on a selection; a dab painted on a layer of its own."""


@pdb_scenario
def _seed(label: str, folder: Path, daemon: Daemon) -> dict[str, Any]:
    prompt = _prompt("seed", label)
    call = _call("underpaint-inpaint", daemon, prompt=prompt, seed=str(SEED), batch=2, model="classical")
    return {"prompt": prompt, "select": [40, 40, 60, 60], "calls": [call]}


@pdb_scenario
def _seed_too_big(label: str, folder: Path, daemon: Daemon) -> dict[str, Any]:
    call = _call("underpaint-inpaint", daemon, prompt=_prompt("seed", label), seed="4294967296", model="classical")
    return {"select": [40, 40, 60, 60], "calls": [call]}


@pytest.mark.parametrize("label", GIMP_LABELS)
def test_seed_above_2_to_the_31_round_trips_through_the_procedure(label: str, pdb: PdbRuns, daemon: Daemon) -> None:
    report = pdb(label, "seed")
    sidecars = check_layers(report, daemon, report["prompt"], 2)
    assert [item["params"]["seed"] for item in sidecars] == [SEED, SEED + 1]
    bad = pdb(label, "seed_too_big")
    assert not bad["success"] and "between 0 and 4294967295" in (bad["error"] or ""), bad["error"]


def a1111_png(
    folder: Path,
    name: str = "a1111.png",
    parameters: str = "a red boat\nNegative prompt: fog\nSteps: 12, Sampler: Euler a, CFG scale: 5, Seed: 77",
) -> Path:
    """A PNG as A1111 saves it: its parameters in a ``parameters`` text chunk."""
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", parameters)
    path = folder / name
    Image.new("RGB", (8, 8)).save(path, "PNG", pnginfo=info)
    return path


def job_sidecars(daemon: Daemon, job_id: str, timeout: float = 60) -> list[dict[str, Any]]:
    """The daemon's own sidecars of one job (every result or tile), each with its PNG, in index order."""
    deadline = time.monotonic() + timeout
    while True:
        found = []
        for path in daemon.outputs.rglob("*.json"):
            data = json.loads(path.read_text())
            if data.get("job_id") == job_id:
                found.append(data | {"png": path.with_suffix(".png")})
        if found or time.monotonic() > deadline:
            assert found, f"no sidecar of {job_id}"
            return sorted(found, key=lambda item: (item["index"], item.get("y", 0), item.get("x", 0)))
        time.sleep(0.5)


def styled_seed(daemon: Daemon, job_id: str) -> int:
    """The seed of a job's first result, from the daemon's own sidecar."""
    return int(job_sidecars(daemon, job_id)[0]["params"]["seed"])


@pytest.mark.timeout(1500)  # two GIMP launches and a dozen jobs: minutes on a loaded 2-core machine
@pytest.mark.parametrize("label", GIMP_LABELS)
def test_panel_generate_then_expand(label: str, tmp_path: Path, daemon: Daemon, xvfb: str) -> None:
    """The real panel (GTK, on a virtual display) driven through its widgets by tests/gimp/driver, a test
    plug-in installed beside the real one (the shipped plug-in has no test code): it fits its default
    size with progress and status visible (screenshot in artifacts/), the wheel scrolls past fields,
    fields the model ignores are disabled, Cancel cancels the running job (nothing pasted), a locked
    seed above 2^31 is used as typed, a random seed is shown once used; the prompt library saves the
    prompt as a style that then runs, fills the prompt from the image (the daemon's tiny interrogator)
    and the fields from PNGs (ours, A1111's; one picked in its file chooser); a LoRA from the picker
    and a reference layer each change the result; Restore on a selection and Refine-upscale of the
    whole image land where the daemon placed them."""
    config_dir = install_plugin(tmp_path)
    driver = config_dir / "GIMP" / "plug-ins" / "underpaint_driver"
    shutil.copytree(Path(__file__).parent / "driver" / "underpaint_driver", driver)
    (driver / "underpaint_driver.py").chmod(0o755)
    (config_dir / "GIMP" / "underpaint.json").write_text(json.dumps({"server": daemon.url}))  # remembered server
    prompt = _prompt("panel-tiny", label)
    spec = tmp_path / "panel.json"
    panel_report = tmp_path / "panel-report.json"
    screenshot = tmp_path / "panel.png"  # GIMP may see the repository read-only: copied to artifacts/ below
    expand = {"left": 0, "top": 0, "right": 64, "bottom": 0}
    spec.write_text(
        json.dumps(
            {
                "prompt": prompt,
                "model": "tiny-random",
                "seed": SEED,
                "batch": 2,
                "steps": 2,
                "expand": expand,
                "report": str(panel_report),
                "screenshot": str(screenshot),
                "segment_box": SEGMENT_BOX,
                "style": f"GIMP e2e {label}",
                "styled_prompt": prompt + " styled",
                "describe_box": [250, 150, 120, 90],
                "a1111_png": str(a1111_png(tmp_path)),
                "control": {"layer": "control lines", "kind": "canny", "strength": 90, "end": 100}
                | {"seed": CONTROL_SEED, "select": [250, 150, 48, 48]},
                "live": LIVE,
                "guided_select": [250, 150, 48, 48],
                "lora": LORA_RUN,
                "reference": REFERENCE_RUN,
                "a1111_dialog_png": str(a1111_png(tmp_path, "chosen.png", A1111_CHOSEN)),
                "restore": RESTORE_RUN,
                "refine_upscale": REFINE_RUN | {"source": str(tmp_path / "refine-source.png")},
            }
        )
    )
    env = {"DISPLAY": xvfb, "UNDERPAINT_PANEL_TEST": str(spec)}
    report = run_panel(label, tmp_path, env, timeout=900)
    assert panel_report.is_file(), f"the panel wrote no report\n{report['_output']}"
    panel = json.loads(panel_report.read_text())
    if screenshot.is_file():
        artifact = REPO / "artifacts" / f"gimp-panel-{label}.png"
        artifact.parent.mkdir(exist_ok=True)
        shutil.copyfile(screenshot, artifact)
    assert "error" not in panel, f"{panel['error']}\n--- GIMP's output ---\n{report['_output'][-6000:]}"
    assert report["success"], report
    assert panel["server_shown"] == daemon.url
    assert any(state.startswith("Connected to") for state in panel["states"])
    assert "tiny-random" in panel["models"] and "classical" in panel["models"]
    assert not panel["connection_expanded"], "connected: the connection section stays out of the way"

    # fits its default size: progress, status and preview visible without scrolling
    layout = panel["layout"]
    width, height = layout["default_size"]
    assert layout["size"] == [width, height], "the window opens at its default size"
    assert layout["content_natural_height"] <= height and layout["window_min_width"] <= width, layout
    assert layout["scroll_range"] == 0, layout
    assert 0 < layout["progress_bottom"] < layout["status_bottom"] < layout["preview_bottom"] <= height, layout
    with Image.open(screenshot) as shot:
        assert shot.size == (width, height)
        assert len(set(shot.convert("L").tobytes())) > 8, "the screenshot shows the panel"

    # the wheel scrolls the panel past fields; on the focused field it changes the value
    wheel = panel["wheel"]
    (strength, batch, scrolled), (strength_after, batch_after, scrolled_after) = wheel["before"], wheel["after"]
    assert (strength_after, batch_after) == (strength, batch) and wheel["model_unchanged"], wheel
    assert scrolled_after > scrolled, "the wheel scrolled the panel"
    assert wheel["focused_strength"] < strength, "a focused field takes the wheel"

    # fields the model ignores are disabled, with a hint
    classical = panel["classical"]
    assert classical["hint"].startswith("classical does not use prompt, strength, steps or seed"), classical
    assert (classical["prompt"], classical["strength"], classical["steps"], classical["batch"]) == (
        False,
        False,
        False,
        True,
    )
    assert panel["diffusion"] == {"prompt": True, "hint_visible": False}

    # Cancel cancels the running job: nothing pasted
    cancelled, inpaint, outpaint, landed = panel["steps"]
    assert "step" in panel["cancel_progress_text"], panel["cancel_progress_text"]
    assert (cancelled["state"], cancelled["results"]) == ("cancelled", 0), cancelled
    assert panel["layers_after_cancel"] == panel["layers_before_cancel"] == 1
    assert panel["mode_hint"] == "Generate will inpaint the selection."
    assert panel["cancel_sensitive_while_running"]

    # a locked seed above 2^31 is used as typed; results wait in ONE preview layer, stepped through, applied
    assert (inpaint["mode"], inpaint["state"], inpaint["seed"]) == ("inpaint", "finished", SEED)
    assert inpaint["seed_shown"] == str(SEED) and inpaint["seed_editable"]
    assert inpaint["fraction"] == 1.0 and inpaint["preview"], "progress and a preview were shown"
    assert inpaint["progress_text"].startswith("done in"), inpaint
    staged, stepped, applied = panel["staged"], panel["stepped"], panel["applied"]
    assert staged["row"] and staged["label"] == "Result 1 of 2" and staged["pasted"] == 0, staged
    assert len(staged["layers"]) == 2 and staged["layers"][0].startswith("[preview 1/2]"), staged
    assert stepped["label"] == "Result 2 of 2" and len(stepped["layers"]) == 2, stepped
    assert stepped["layers"][0].startswith("[preview 2/2]"), stepped
    assert applied["layers"] == [f"{prompt} [seed {SEED + 1}]", "Background"] and not applied["row"], applied

    # Expand with a random seed: the seed is shown; its preview discarded leaves no layer
    assert outpaint["mode"] == "outpaint" and outpaint["state"] == "finished"
    assert outpaint["seed"] != SEED and outpaint["seed_shown"] == str(outpaint["seed"]), "the random seed is shown"
    assert not outpaint["seed_editable"]
    expand_staged = panel["expand_staged"]
    assert expand_staged["row"] and len(expand_staged["layers"]) == 3, expand_staged  # right above the Background
    assert expand_staged["layers"][1].startswith("[preview 1/1]"), expand_staged
    assert panel["discarded"]["layers"] == applied["layers"] and not panel["discarded"]["row"], panel["discarded"]
    assert panel["discarded"]["size"] == [WIDTH, HEIGHT], "discarding an outpaint shrinks the canvas back"

    # "results land directly": pasted at once
    assert (landed["state"], landed["results"]) == ("finished", 1), landed

    # history: every finished job of this session, with thumbnails; reuse copies its seed; re-apply pastes
    history = panel["history"]
    assert len(history["job_ids"]) == 3 and history["rows"] == 3, history
    assert all(count >= 1 for count in history["thumbnails"]), history
    assert history["outputs_folder"] == str(daemon.outputs) and history["outputs_button"]
    assert panel["reused"] == {
        "seed": str(SEED + 1),
        "locked": True,
        "model": "tiny-random",
        "steps": 2.0,
        "model_steps": False,
    }
    reapplied = panel["reapplied"]
    assert not reapplied["error"] and len(reapplied["after"]) == len(reapplied["before"]) + 1, reapplied

    # GIMP now holds the applied result, the landed one and the re-applied one above the Background, the
    # styled job's layer (landed directly), and what live painting left: its Strokes layer and the applied picture
    before_upscale = panel["before_upscale"]  # the image before Restore and Refine-upscale (below)
    assert before_upscale["canvas"] == [WIDTH, HEIGHT]
    names = list(before_upscale["layers"])
    live_apply = panel["live"]["apply"]
    for name in ["Strokes", *(name for name in live_apply["after"] if name not in live_apply["with_live"])]:
        names.remove(name)
    assert names[-1] == "Background" and len(names) == 5, names
    assert sum(name.startswith(f"{prompt} [seed {SEED + 1}]") for name in names) == 2, names  # GIMP adds " #1"
    inpainted = [
        item
        for item in daemon.sidecars(prompt)
        if item["params"]["mode"] == "inpaint"
        and item["params"]["model"] == "tiny-random"
        and item["params"]["seed"] != CONTROL_SEED  # the control scenario's two jobs (below)
    ]
    assert [item["params"]["seed"] for item in inpainted] == [SEED, SEED + 1]
    assert {item["params"]["steps"] for item in inpainted} == {2}
    assert before_upscale["background"] == report["background_before"]
    assert before_upscale["selected"] == ["Strokes"], "the layer the artist painted on while Live was on stays active"
    saved = json.loads((config_dir / "GIMP" / "underpaint.json").read_text())
    assert saved["prompt"] == "a red boat" and saved["expand_right"] == 64, "the panel remembers its settings"
    assert saved["style"] == "", "the style the panel chose last (the A1111 PNG had none)"
    assert saved["strength"] == 1.0 and saved["land_directly"] is True
    assert saved["client_id"] == history["client_id"], "the panel remembers its identity"

    # Select an object: the panel's Refine selection on a drawn box makes the daemon's mask the selection
    segment = panel["segment"]
    assert "refine" in panel["segment_models"]
    assert segment["state"] == "finished" and not segment["error"], segment
    assert segment["wrong_px"] == 0 and 0 < segment["selected_px"] < SEGMENT_BOX[2] * SEGMENT_BOX[3], segment

    # the prompt library: a style saved from the panel is chosen and runs (its params: the resolved prompt)
    saved_style = panel["style_saved"]
    assert saved_style["active"] == f"GIMP e2e {label}" and saved_style["rename"], saved_style
    assert f"GIMP e2e {label}" in saved_style["listed"] and "Photograph" in saved_style["listed"]
    styled = panel["styled"]
    assert styled["state"] == "finished", styled
    assert styled["params"] == {
        "prompt": f"e2e look of {prompt} styled",
        "style": f"GIMP e2e {label}",
        "user_prompt": f"{prompt} styled",
    }, styled
    # Prompt from image: the built-in tiny captioner and CLIP fill the prompt field
    described = panel["described"]
    assert not described["error"] and any(medium in described["prompt"] for medium in terms("mediums")), described
    # Reuse parameters: our PNG gives what the user typed and its style; an A1111 PNG its fields, seed locked
    ours, theirs = panel["reused_png"]
    assert ours["ok"] and ours["prompt"] == f"{prompt} styled" and ours["style"] == f"GIMP e2e {label}", ours
    assert ours["seed"] == str(styled_seed(daemon, styled["job_id"])) and ours["locked"], ours
    assert theirs == {
        "ok": True,
        "prompt": "a red boat",
        "negative": "fog",
        "style": "",
        "seed": "77",
        "locked": True,
        "steps": 12.0,
    }, theirs
    # a hidden layer picked in the Control layers section (canny, 90 %): the job carries it, the daemon ran
    # its ControlNet, and the result differs from the same seed without it (both from the same image)
    plain, guided = panel["control_jobs"]
    assert plain["state"] == guided["state"] == "finished", panel["control_jobs"]
    assert plain["mode"] == guided["mode"] == "inpaint" and plain["merged_before"] == guided["merged_before"]
    rows = [{"kind": "canny", "strength": 0.9, "start": 0.0, "end": 1.0, "preprocess": False}]
    assert panel["control_rows"] == rows and "canny" in panel["control_hint"]
    assert panel["control_plan"][1] == "Generate will inpaint the selection.", panel["control_plan"]
    (plain_params,), (guided_params,) = plain["params"], guided["params"]
    assert plain_params["seed"] == guided_params["seed"] == CONTROL_SEED and plain_params["controls"] == []
    assert guided_params["controls"] == rows and guided_params["engine_params"]["controls"] == [CONTROL]
    assert plain["result_sha256"] != guided["result_sha256"], "the control layer changed the result"
    assert panel["control_rows_after_remove"] == 0
    # Live painting: one live layer on top refilled in place, a dab's frame, Apply, Live off
    _live_painted(panel["live"])
    _lora_and_reference(panel, daemon)
    _reused_through_the_file_chooser(panel["reused_dialog"], spec)
    _restored_then_refine_upscaled(panel, report, daemon, tmp_path)

    # GIMP restarted: the new panel shows the earlier session's results
    spec.write_text(json.dumps({"history_only": True, "history_at_least": 3, "report": str(panel_report)}))
    panel_report.unlink()
    again = run_panel(label, tmp_path, env, timeout=240)
    restarted = json.loads(panel_report.read_text())
    assert "error" not in restarted, restarted["error"]
    assert again["success"], again
    later = {segment["job_id"], styled["job_id"], plain["job_id"], guided["job_id"]}
    later |= {job["job_id"] for job in panel["jobs"].values()}
    earlier = [job_id for job_id in restarted["history"]["job_ids"] if job_id not in later]
    assert earlier[:3] == history["job_ids"], restarted["history"]
    assert restarted["history"]["client_id"] == history["client_id"]
    # the refine-upscale from the history: its thumbnail made tile by tile, Re-apply streams its tiles
    # again into one new layer at the top-left of this (unscaled) image, the image not scaled
    upscaled = restarted["history_upscale"]
    refine = panel["jobs"]["refine_upscale"]
    assert upscaled["job_id"] == refine["job_id"] and upscaled["thumbnail_only"] and not upscaled["error"], upscaled
    assert max(upscaled["thumbnail"]) == 96 and upscaled["canvas"] == upscaled["canvas_before"], upscaled
    (layer,) = upscaled["new_layers"]
    rect, digest = joined_tiles(job_sidecars(daemon, refine["job_id"]))
    assert layer["bounds"] == [0, 0, rect[2], rect[3]] and layer["sha256"] == digest, (layer, rect)
    assert layer["name"] == refine["layers"][0]["name"], (layer, refine["layers"])


def _live_painted(record: dict[str, Any]) -> None:
    """The panel's Live toggle on a selection: the first picture in one live layer on top; a dab on a
    layer of its own streams a frame of the dab's size, not the region's, and a newer picture lands in
    the SAME layer; Apply adds one normal layer; Live off removes the live layer and every layer that
    was there before is byte-identical."""
    started, first, stroke, apply = record["started"], record["first"], record["stroke"], record["apply"]
    region = started["region"]  # the selection with the daemon's context around it
    rx, ry, rw, rh = region["x"], region["y"], region["width"], region["height"]
    x, y, w, h = LIVE["select"]
    assert rx <= x and ry <= y and rx + rw >= x + w and ry + rh >= y + h, started
    assert started["model"] == "tiny-random" and str(started["seed"]) == record["seed_field"], "the locked seed"
    assert first["seq"] == 1 and first["frames"] == 1 and first["bytes"] == rw * rh * 4  # the whole region once
    assert first["layers"][0].startswith("Live") and first["layers"][1:] == record["before"], "one layer, on top"
    assert apply["after"][0] == first["layers"][0], "the live layer stays on top, the applied one below it"
    lx, ly, lw, lh = first["bounds"]
    assert rx <= lx and ry <= ly and lx + lw <= rx + rw and ly + lh <= ry + rh and first["layer_sha256"] != "differs"
    assert stroke["seq"] > first["seq"] and stroke["live_id"] == first["live_id"], "a newer picture, same layer"
    assert stroke["layers"] == first["layers"]
    assert stroke["layer_sha256"] not in ("differs", first["layer_sha256"])
    sw, sh = LIVE["stroke"][2:]
    sent = stroke["frames"] - first["frames"]
    assert sent >= 1 and stroke["frame_bytes"] == sent * sw * sh * 4, stroke  # the dab's rectangle only
    assert stroke["status"].startswith("Live: frame"), stroke["status"]
    added = [name for name in apply["after"] if name not in apply["with_live"]]
    assert len(added) == 1 and len(apply["after"]) == len(apply["with_live"]) + 1, apply
    stopped = record["stopped"]
    assert stopped["state"] == "off" and not stopped["note"] and not stopped["toggle"]
    assert stopped["layers"] == [name for name in apply["after"] if name != first["layers"][0]], "the live layer went"
    assert stopped["originals_unchanged"], "the layers that were there before Live are untouched"
    assert record["check_ms"], "the timer checked the painting"


def _same_seed_pair(panel: dict[str, Any], daemon: Daemon, key: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The jobs ``key``_off and ``key``_on (one inpaint each, the same seed, from the same image): both
    finished with one layer of the daemon's pixels that differ between the two; their sidecars' params."""
    off, on = panel["jobs"][f"{key}_off"], panel["jobs"][f"{key}_on"]
    for job in (off, on):
        assert job["state"] == "finished" and job["mode"] == "inpaint", job
        (layer,) = job["layers"]
        assert layer["sha256"] == job["result_sha256"][0], "the layer holds the daemon's exact pixels"
    assert off["merged_before"] == on["merged_before"], "both from the same image"
    (off_params,), (on_params,) = (
        [item["params"] for item in job_sidecars(daemon, job["job_id"])] for job in (off, on)
    )
    assert off_params["seed"] == on_params["seed"] and off_params["model"] == on_params["model"] == "tiny-random"
    assert off["result_sha256"] != on["result_sha256"], f"the {key} changed nothing"
    return off_params, on_params


def _lora_and_reference(panel: dict[str, Any], daemon: Daemon) -> None:
    """The prompt library's LoRA picker lists the daemon's LoRA with its trigger word; Add puts its tag
    and trigger word into the prompt; the job names it and its weight. A hidden layer added as a
    reference in the control section: the job lists it. Each against the same seed without."""
    ((label, name),) = panel["lora_picker"]["rows"]  # its metadata's tags, most frequent first
    assert name == LORA and label == f"{LORA} — {LORA_TRIGGER}, ink", panel["lora_picker"]
    assert panel["lora_picker"]["add_sensitive"]
    weight, words = LORA_RUN["weight"], f"{LORA_RUN['prompt']}, {LORA_TRIGGER}, ink"
    assert panel["lora_prompt"] == f"{words} <lora:{LORA}:{weight:g}>", "Add put the tag and trigger words in"
    plain, with_lora = _same_seed_pair(panel, daemon, "lora")
    assert plain["loras"] == [] and with_lora["loras"] == [{"name": LORA, "weight": weight}], with_lora["loras"]
    assert with_lora["prompt"] == words, "the tag became the job's LoRA"

    rows = panel["reference_rows"]
    assert len(rows) == 1 and rows[0]["weight"] == 0.6, rows
    plain, referenced = _same_seed_pair(panel, daemon, "reference")
    assert plain["references"] == [] and referenced["references"] == rows, referenced["references"]
    assert plain["prompt"] == referenced["prompt"] == REFERENCE_RUN["prompt"]
    assert panel["reference_rows_after_remove"] == 0


def _reused_through_the_file_chooser(record: dict[str, Any], spec: Path) -> None:
    """Reuse parameters…: the panel's own file chooser, the A1111 PNG picked in it, the fields filled."""
    chooser = record.pop("chooser")
    assert "error" not in chooser and chooser["chosen"] == json.loads(spec.read_text())["a1111_dialog_png"], chooser
    assert chooser["title"] == "Reuse parameters from", chooser
    assert record == {
        "prompt": "a blue kite",
        "negative": "rain",
        "style": "",
        "seed": "78",
        "locked": True,
        "steps": 9.0,
    }, record


def _restored_then_refine_upscaled(panel: dict[str, Any], report: dict[str, Any], daemon: Daemon, tmp: Path) -> None:
    """The Upscale and restore section. Restore (tiny RestoreFormer) on a selection: one layer over the
    selection's region where the daemon placed it, the merged image outside the selection unchanged.
    Refine-upscale (tiny Compact 2x, then tiny-random at 10 %): the image scaled to 2x, one layer at
    full size with the daemon's pixels; its tiles' sidecars say refine-upscale with the prompt and
    strength; it differs from a plain upscale of the same image by the same upscaler."""
    jobs = panel["jobs"]
    restore = jobs["restore"]
    assert restore["state"] == "finished" and restore["mode"] == "restore", restore
    (layer,), (place,) = restore["layers"], restore["placed"]
    assert layer["bounds"] == [place["x"], place["y"], place["width"], place["height"]], restore
    assert layer["sha256"] == restore["result_sha256"][0], "the layer holds the daemon's exact pixels"
    assert restore["canvas"] == [WIDTH, HEIGHT] and not place["grows"]
    x, y, w, h = RESTORE_RUN["select"]
    lx, ly, lw, lh = layer["bounds"]
    assert lx <= x and ly <= y and x + w <= lx + lw and y + h <= ly + lh, "over the selection's region"
    # the layer is soft-masked like an inpaint's: opaque over the selection, fading out in a band around it
    # (the daemon's blend), and nothing outside the layer changed
    assert restore["alpha"]["selection_min"] == 255 and restore["alpha"]["ring_max"] < 255, restore["alpha"]
    changed = restore["rows_changed"]
    assert changed["outside_layer"] == 0 and changed["inside_selection"] > 0, changed
    sidecars = job_sidecars(daemon, restore["job_id"])
    assert {item["params"]["mode"] for item in sidecars} == {"restore"}
    assert {item["params"]["model"] for item in sidecars} == {RESTORER}

    refine = jobs["refine_upscale"]
    assert refine["state"] == "finished" and refine["mode"] == "refine_upscale", refine
    factor = REFINE_RUN["factor"]
    big = [int(WIDTH * factor), int(HEIGHT * factor)]
    assert refine["canvas"] == big == report["canvas"] == report["background_size"], "the image was scaled"
    (layer,) = refine["layers"]
    tiles = job_sidecars(daemon, refine["job_id"])
    rect, digest = joined_tiles(tiles)  # the tiles went into GIMP's layer one by one: none kept in the panel
    assert layer["bounds"] == [0, 0, *big] == list(rect) and layer["sha256"] == digest, refine
    for tile in tiles:
        params = tile["params"]
        assert params["mode"] == "refine_upscale" and params["model"] == REFINE_RUN["model"], params
        assert params["prompt"] == REFINE_RUN["prompt"] and params["strength"] == REFINE_RUN["strength"] / 100
        assert params["steps"] == REFINE_RUN["steps"], "the section's Steps field"
    final = [item["name"] for item in report["layers"]]
    assert len(final) == len(panel["before_upscale"]["layers"]) + 2, final
    assert {restore["layers"][0]["name"], layer["name"]} <= set(final), final
    assert report["selected"] == ["Strokes"], "the active layer stays active"
    # the same image upscaled plainly by the same upscaler (the CLI, against the same daemon)
    plain = tmp / "plain-upscale.png"
    command = [sys.executable, "-m", "underpaint", "generate", "upscale", "--server", daemon.url]
    command += ["--token", daemon.token, "--image", str(tmp / "refine-source.png"), "--factor", str(factor)]
    command += ["--model", UPSCALER, "--out", str(plain)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    with Image.open(plain) as image:
        assert image.size == tuple(big)
        plain_sha = hashlib.sha256(image.convert("RGBA").tobytes()).hexdigest()
    assert plain_sha != layer["sha256"], "the refine pass changed the upscale"
