"""The Krita docker model's prompt library on a fake Krita against a real daemon: the style picker's
list and choice, Describe (interrogate the selection) filling the prompt, reuse parameters from a PNG."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from tests.krita.test_model import connected, photo
from underpaint.daemon.config import DaemonConfig
from underpaint.daemon.server import Daemon, DaemonThread
from underpaint.engines.classical import ClassicalEngine
from underpaint.engines.interrogate import Interrogator, terms
from underpaint_protocol.library import Library, style


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonThread]:
    tmp = tmp_path_factory.mktemp("krita-prompts")
    config = DaemonConfig(port=0, token_file=tmp / "token", outputs=None, styles_file=tmp / "styles.json")
    interrogator = Interrogator.from_option("tiny-random", "cpu")
    thread = DaemonThread(Daemon(config, [ClassicalEngine()], "classical", interrogator=interrogator)).start()
    yield thread
    thread.stop()


def test_styles_arrive_on_connect_and_a_chosen_style_runs(daemon: DaemonThread) -> None:
    app, doc = photo(120, 80)
    model, ui = connected(app, daemon)
    ui.run_until(lambda: bool(model.prompts.styles))
    assert "Photograph" in [item["name"] for item in model.prompts.styles]
    model.controller.ask_library(lambda library: library.save_style(style("Krita test", "kt {prompt}")), print)
    model.prompts.load_styles()
    ui.run_until(lambda: "Krita test" in [item["name"] for item in model.prompts.styles])
    model.prompts.set_style("Krita test")
    assert app.settings[("underpaint", "style")] == "Krita test"  # remembered
    doc.select_rect(40, 30, 12, 10)
    model.prompt = "wood"
    entry = model.generate()
    assert entry is not None
    ui.run_until(lambda: entry.state in ("finished", "failed"))
    assert entry.state == "finished", entry.error
    assert entry.results[0].message["params"]["prompt"] == "kt wood"
    model.close()


def test_a_style_deleted_elsewhere_is_dropped_from_the_choice(daemon: DaemonThread) -> None:
    app, _ = photo(64, 48)
    model, ui = connected(app, daemon)
    ui.run_until(lambda: bool(model.prompts.styles))
    model.controller.ask_library(lambda library: library.save_style(style("Gone soon", "g {prompt}")), print)
    model.prompts.load_styles()
    ui.run_until(lambda: "Gone soon" in [item["name"] for item in model.prompts.styles])
    model.prompts.set_style("Gone soon")
    assert model.controller.client is not None
    Library(model.controller.client).delete_style("Gone soon").result(timeout=10)  # as another host would
    model.prompts.load_styles()
    ui.run_until(lambda: "Gone soon" not in [item["name"] for item in model.prompts.styles])
    assert model.prompts.style == "" and model.request().style is None
    model.close()


def test_describe_fills_the_prompt_from_the_selection(daemon: DaemonThread) -> None:
    app, doc = photo(120, 80)
    doc.select_rect(10, 10, 50, 40)
    model, ui = connected(app, daemon)
    model.prompt = ""
    assert model.describe()
    ui.run_until(lambda: bool(model.prompt) or bool(model.error), timeout=120)
    assert not model.error
    assert any(medium in model.prompt for medium in terms("mediums"))
    assert doc.pixel_reads[-1] == (10, 10, 50, 40)  # only the selection's bounds were read
    model.close()


def test_reuse_parameters_from_an_a1111_png(daemon: DaemonThread, tmp_path: Path) -> None:
    app, _ = photo(64, 48)
    model, _ = connected(app, daemon)
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a red boat\nNegative prompt: fog\nSteps: 12, Sampler: Euler a, CFG scale: 5, Seed: 77")
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, "PNG", pnginfo=info)
    assert model.reuse_png(buffer.getvalue())
    assert (model.prompt, model.negative_prompt, model.steps) == ("a red boat", "fog", 12)
    assert not model.seed_random and model.seed == 77
    plain = io.BytesIO()
    Image.new("RGB", (4, 4)).save(plain, "PNG")
    assert not model.reuse_png(plain.getvalue()) and "no generation parameters" in model.error
    model.close()
