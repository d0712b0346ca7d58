"""The shared controller's prompt-library actions against a real daemon with an in-memory host:
what the Krita and GIMP widgets call (style picker, interrogate button)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.protocol.fake_host import FakeCanvas
from tests.protocol.test_controller import Live
from underpaint.daemon.config import DaemonConfig
from underpaint.daemon.server import Daemon, DaemonThread
from underpaint.engines.classical import ClassicalEngine
from underpaint.engines.interrogate import Interrogator, terms
from underpaint_protocol.controller import Controller, Request
from underpaint_protocol.jobs import Bounds
from underpaint_protocol.library import style


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonThread]:
    tmp = tmp_path_factory.mktemp("library-controller")
    config = DaemonConfig(
        port=0, token_file=tmp / "token", outputs=None, styles_file=tmp / "styles.json", history_file=None
    )
    interrogator = Interrogator.from_option("tiny-random", "cpu")
    thread = DaemonThread(Daemon(config, [ClassicalEngine()], "classical", interrogator=interrogator)).start()
    yield thread
    thread.stop()


@pytest.fixture
def live(daemon: DaemonThread) -> Iterator[Live]:
    harness = Live(daemon.url, "", FakeCanvas.photo())
    assert harness.connect().connection == "connected"
    yield harness
    harness.controller.close()


def test_interrogate_reads_the_selection_and_hands_back_a_prompt(live: Live) -> None:
    canvas = live.host.active
    assert canvas is not None
    canvas.select(150, 100, 40, 40, soft=True)  # reaches past the 160x120 canvas: clipped
    prompts: list[str] = []
    assert live.controller.interrogate(prompts.append)
    live.until(lambda: bool(prompts) or bool(live.controller.error), timeout=120)
    assert not live.controller.error
    assert any(medium in prompts[0] for medium in terms("mediums"))
    clipped = Bounds(150, 100, 10, 20)
    assert [(kind, rect) for kind, rect in canvas.reads] == [("image", clipped), ("mask", clipped)]


def test_a_style_picked_in_one_host_runs_in_another(live: Live, daemon: DaemonThread, tmp_path: Path) -> None:
    saved: list[Any] = []
    live.controller.ask_library(lambda library: library.save_style(style("Hosted", "hosted {prompt}")), saved.append)
    live.until(lambda: bool(saved))
    other = Live(daemon.url, "", FakeCanvas.photo())
    assert other.connect().connection == "connected"
    listed: list[Any] = []
    other.controller.ask_library(lambda library: library.styles(), listed.append)
    other.until(lambda: bool(listed))
    assert "Hosted" in [item["name"] for item in listed[0]["styles"]]
    canvas = other.host.active
    assert canvas is not None
    canvas.select(60, 40, 30, 20)
    job = other.controller.generate(Request(prompt="a cup", style="Hosted", seed=2))
    assert job is not None
    other.until(lambda: job.settled)
    assert job.state == "finished", job.error
    assert job.results[0].message["params"]["prompt"] == "hosted a cup"
    other.controller.close()


def test_library_actions_need_a_connection() -> None:
    from tests.protocol.fake_host import FakeHost

    controller = Controller(FakeHost(FakeCanvas.photo()), lambda run: run(), client_name="test")
    assert not controller.interrogate(lambda prompt: None)
    assert "Not connected" in controller.error
