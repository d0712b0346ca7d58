"""The shared prompt-library section (``prompt_panel.PromptLibrary``, what the Krita docker and the
GIMP panel draw) against a real daemon over its socket: styles saved, renamed and deleted in one
host show in another; recent prompts and LoRAs arrive on connecting; a bad style is the daemon's
error; PNG parameters and recent prompts become the fields to fill."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from PIL import Image, PngImagePlugin
from safetensors.torch import save_file

from tests.protocol.fake_host import FakeCanvas
from tests.protocol.test_controller import Live
from underpaint.daemon.config import DaemonConfig
from underpaint.daemon.server import Daemon, DaemonThread
from underpaint.engines.classical import ClassicalEngine
from underpaint.engines.diffusion import DiffusionEngine
from underpaint.engines.interrogate import Interrogator, terms
from underpaint_protocol.controller import Request
from underpaint_protocol.prompt_panel import (
    NO_PARAMETERS,
    PromptLibrary,
    history_label,
    lora_tag,
    png_request,
    with_lora,
)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonThread]:
    tmp = tmp_path_factory.mktemp("prompt-panel")
    models = tmp / "models" / "Lora"
    models.mkdir(parents=True)
    (models / "old.pt").write_bytes(b"not opened")  # a pickle: listed, refused
    lora = {"unet.mid_block.attentions.0.to_q.lora_A.weight": torch.zeros(4, 8)}
    save_file(lora, str(models / "film.safetensors"), metadata={"modelspec.trigger_phrase": "filmic, grainy"})
    config = DaemonConfig(
        port=0,
        token_file=tmp / "token",
        outputs=None,
        styles_file=tmp / "styles.json",
        history_file=tmp / "history.jsonl",
    )
    interrogator = Interrogator.from_option("tiny-random", "cpu")
    diffusion = DiffusionEngine(sources=["tiny-random"], models_dirs=[tmp / "models"], device="cpu")  # lists LoRAs
    engines = [ClassicalEngine(), diffusion]
    thread = DaemonThread(Daemon(config, engines, "classical", interrogator=interrogator)).start()
    yield thread
    thread.stop()


class Section:
    """A host's prompt section: a live controller and its ``PromptLibrary``, remembering the style."""

    def __init__(self, url: str) -> None:
        self.live = Live(url, "", FakeCanvas.photo())
        self.redraws = 0
        self.remembered: list[str] = []
        self.prompts = PromptLibrary(self.live.controller, self._changed, "", self.remembered.append)
        assert self.live.connect().connection == "connected"
        self.prompts.show()

    def _changed(self) -> None:
        self.redraws += 1

    def until(self, check: Any, timeout: float = 30) -> None:
        self.live.until(lambda: bool(check()) or bool(self.live.controller.error), timeout=timeout)
        assert not self.live.controller.error, self.live.controller.error
        assert check()

    def names(self) -> list[str]:
        return self.prompts.style_names


@pytest.fixture
def two(daemon: DaemonThread) -> Iterator[tuple[Section, Section]]:
    a, b = Section(daemon.url), Section(daemon.url)
    yield a, b
    a.live.controller.close()
    b.live.controller.close()


def test_lists_arrive_on_connecting(two: tuple[Section, Section]) -> None:
    a, _ = two
    a.until(lambda: len(a.prompts.styles) > 1 and a.prompts.loras)
    assert a.names()[0] == "" and "Photograph" in a.names()
    film, old = a.prompts.loras
    assert a.prompts.lora_label(film) == "film — filmic, grainy" and not film["refused"]
    assert old["name"] == "old" and old["refused"] and "refused" in a.prompts.lora_label(old)
    assert not a.prompts.editable
    a.prompts.set_style("Photograph")
    assert a.prompts.style_info is not None and not a.prompts.editable
    assert "{prompt}" in a.prompts.style_tip() and a.remembered == ["Photograph"]
    a.prompts.show()  # the same connection: nothing asked again
    assert a.prompts._loaded_for == id(a.live.controller.welcome)


def test_save_rename_delete_in_one_host_show_in_the_other(two: tuple[Section, Section]) -> None:
    a, b = two
    a.until(lambda: len(a.prompts.styles) > 1)
    assert a.prompts.save_style(" Shared look ", "shared {prompt}, soft light", "harsh")
    a.until(lambda: a.prompts.style == "Shared look" and "Shared look" in a.names())
    assert a.prompts.editable and a.remembered[-1] == "Shared look"
    b.prompts.load_styles()
    b.until(lambda: "Shared look" in b.names())
    b.prompts.set_style("Shared look")
    assert b.prompts.rename_style("Renamed look")
    b.until(lambda: "Renamed look" in b.names() and b.prompts.style == "Renamed look")
    a.prompts.load_styles()
    a.until(lambda: "Shared look" not in a.names())
    assert a.prompts.style == "", "a style renamed elsewhere is no longer chosen"
    a.prompts.set_style("renamed LOOK")  # names are unique regardless of case
    assert a.prompts.style_info is not None and a.prompts.style_info["negative_prompt"] == "harsh"
    assert a.prompts.delete_style()
    a.until(lambda: "Renamed look" not in a.names())
    assert a.prompts.style == ""


def test_a_template_without_the_prompt_is_the_daemons_error_and_the_host_keeps_serving(
    two: tuple[Section, Section],
) -> None:
    a, _ = two
    a.until(lambda: len(a.prompts.styles) > 1)
    assert a.prompts.save_style("No placeholder", "just this")
    a.live.until(lambda: bool(a.live.controller.error))
    assert "style.prompt" in a.live.controller.error or "{prompt}" in a.live.controller.error
    assert "No placeholder" not in a.names()
    a.prompts.set_style("Photograph")
    assert a.prompts.rename_style("Mine now")  # a shipped style cannot be renamed
    a.live.until(lambda: "Photograph" in a.live.controller.error or "shipped" in a.live.controller.error)
    a.prompts.load_styles()
    a.until(lambda: "Photograph" in a.names() and "Mine now" not in a.names())


def test_recent_prompts_are_what_the_user_typed_and_fill_the_fields(two: tuple[Section, Section]) -> None:
    a, b = two
    a.until(lambda: len(a.prompts.styles) > 1)
    canvas = a.live.host.active
    assert canvas is not None
    canvas.select(20, 20, 30, 30)
    job = a.live.controller.generate(Request(prompt="a recent cup", negative_prompt="fog", style="Photograph", seed=5))
    assert job is not None
    a.live.until(lambda: job.settled)
    assert job.state == "finished", job.error
    again = a.live.controller.reuse(job.results[0])
    assert (again.prompt, again.negative_prompt, again.style, again.seed) == ("a recent cup", "fog", "Photograph", 5)
    assert job.results[0].message["params"]["prompt"].startswith("photograph of a recent cup"), "it ran styled"
    b.prompts.load()
    b.until(lambda: b.prompts.history and b.prompts.history[0]["prompt"] == "a recent cup")
    assert history_label(b.prompts.history[0]) == "a recent cup [Photograph]"
    request = b.prompts.reuse_history(0)
    assert request is not None
    assert (request.prompt, request.negative_prompt, request.style, request.seed) == (
        "a recent cup",
        "fog",
        "Photograph",
        None,
    ), "a recent prompt comes back as typed, its style chosen, a new seed"
    assert b.prompts.style == "Photograph"
    assert b.prompts.reuse_history(99) is None


def test_describe_fills_a_prompt(two: tuple[Section, Section]) -> None:
    a, _ = two
    found: list[str] = []
    assert a.prompts.describe(found.append)
    a.until(lambda: found, timeout=120)
    assert any(medium in found[0] for medium in terms("mediums"))


def _png(text: dict[str, str]) -> bytes:
    info = PngImagePlugin.PngInfo()
    for key, value in text.items():
        info.add_text(key, value)
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, "PNG", pnginfo=info)
    return buffer.getvalue()


def test_png_parameters_become_the_fields_and_a_plain_png_says_why(two: tuple[Section, Section]) -> None:
    a, _ = two
    a1111 = "a red boat <lora:film:0.5>\nNegative prompt: fog\nSteps: 12, Sampler: Euler a, CFG scale: 5, Seed: 77"
    request = a.prompts.reuse_png(_png({"parameters": a1111}))
    assert request is not None
    assert (request.prompt, request.negative_prompt, request.steps, request.seed, request.guidance) == (
        "a red boat <lora:film:0.5>",
        "fog",
        12,
        77,
        5.0,
    )
    assert request.style is None and a.prompts.style == ""
    assert a.prompts.reuse_png(_png({})) is None and a.live.controller.error == NO_PARAMETERS
    assert png_request(b"not a png") is None


def test_a_lora_joins_the_prompt_once_with_its_trigger_words() -> None:
    film = {"name": "film", "triggers": ["filmic", "grainy"]}
    once = with_lora("a boat", film, 0.8)
    assert once == "a boat, filmic, grainy <lora:film:0.8>"
    assert with_lora(once, film, 0.5) == "a boat, filmic, grainy <lora:film:0.5>", "a second add changes the weight"
    assert with_lora("", {"name": "ink", "triggers": []}, 1.0) == lora_tag("ink", 1.0) == "<lora:ink:1>"
    assert with_lora("Grainy boat", film, 1) == "Grainy boat, filmic <lora:film:1>"


def test_a_remembered_style_the_daemon_no_longer_has_is_dropped(daemon: DaemonThread) -> None:
    section = Section(daemon.url)
    section.prompts.style = "Gone elsewhere"
    section.prompts.load_styles()
    section.until(lambda: len(section.prompts.styles) > 1)
    assert section.prompts.style == "" and section.remembered == [""]
    section.live.controller.close()
