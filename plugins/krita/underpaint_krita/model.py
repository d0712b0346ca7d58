"""The docker's fields and remembered settings, over the shared job controller; no widgets, no Qt.

``DockerModel`` is Krita's ``Host`` for ``underpaint_protocol.controller.Controller``, which owns the
connection, the jobs and every message. What stays here is Krita's: the docker's fields, Krita's
settings, and which document Generate works on. ``post`` runs a callable on Krita's UI thread (a
queued Qt signal in Krita, a plain queue in tests), so all state is touched on that thread only.
"""

from __future__ import annotations

import contextlib
import traceback
from collections.abc import Callable
from typing import Any

from underpaint_protocol.client import UnderpaintClient
from underpaint_protocol.constants import DEFAULT_URL
from underpaint_protocol.controller import Canvas, Controller, HistoryItem, Job, Plan, Post, Request, Staged
from underpaint_protocol.guides_panel import GuideFields
from underpaint_protocol.panel import parse_seed
from underpaint_protocol.prompt_panel import PromptLibrary
from underpaint_protocol.session import ImageData

from .glue import KritaGlue

CLIENT_NAME = "underpaint-krita"
CLIENT_VERSION = "0.1.0"


class Settings:
    """Remembered values (Krita: Krita.instance().readSetting/writeSetting in group 'underpaint')."""

    def __init__(self, read: Callable[[str, str], str], write: Callable[[str, str], None]) -> None:
        self._read, self._write = read, write

    def get(self, key: str, default: str = "") -> str:
        try:
            return str(self._read(key, default))
        except Exception:  # a broken settings file must not stop the docker
            return default

    def set(self, key: str, value: str) -> None:
        with contextlib.suppress(Exception):
            self._write(key, value)


class DockerModel:
    def __init__(
        self,
        glue: KritaGlue,
        post: Post,
        settings: Settings,
        *,
        host: tuple[str, str] = ("krita", ""),
        client_factory: Callable[..., UnderpaintClient] = UnderpaintClient,
        connect_timeout: float = 5.0,
    ) -> None:
        self.glue = glue
        self.settings = settings
        self._listeners: list[Callable[[], None]] = []
        self.controller = Controller(
            self,
            post,
            client_name=CLIENT_NAME,
            client_version=CLIENT_VERSION,
            host_info=host,
            result_format="bgra8",
            client_factory=client_factory,
            connect_timeout=connect_timeout,
            land_directly=settings.get("land_directly", "0") == "1",
            client_id=settings.get("client_id", "") or None,
        )
        # what the user set
        self.url = settings.get("url", DEFAULT_URL) or DEFAULT_URL
        self.token = settings.get("token", "")
        self.model_id = settings.get("model", "")
        self.prompt = ""
        self.negative_prompt = ""
        self.strength = 1.0
        self.steps = 0  # 0: the model's default
        self.seed_random = True
        self.seed = 0
        self.batch = 1
        self.extend = (0, 0, 0, 0)
        self.guides = GuideFields()  # control layers and references (control_ui.py)
        # the daemon's prompt library (styles, recent prompts, LoRAs shared by every host)
        self.prompts = PromptLibrary(
            self.controller, self.changed, settings.get("style", ""), lambda name: settings.set("style", name)
        )

    # ---------------------------------------------------------------- the controller's Host

    def canvas(self) -> Canvas:
        return self.glue.active_canvas()

    def show(self, controller: Controller) -> None:
        if controller.client_id and controller.client_id != self.settings.get("client_id", ""):
            self.settings.set("client_id", controller.client_id)  # the same history after a restart
        ids = [str(m.get("id")) for m in controller.models]
        if ids and self.model_id not in ids:
            self.model_id = controller.default_model or ids[0]
        self.prompts.show()
        self.changed()

    # ---------------------------------------------------------------- what the docker shows

    @property
    def connection(self) -> str:
        return self.controller.connection

    @property
    def status(self) -> str:
        return self.controller.status

    @property
    def error(self) -> str:
        return self.controller.error

    @property
    def models(self) -> list[dict[str, Any]]:
        return self.controller.models

    @property
    def max_batch(self) -> int:
        return self.controller.max_batch

    @property
    def jobs(self) -> list[Job]:
        return self.controller.jobs

    @property
    def busy(self) -> bool:
        return self.controller.busy

    @property
    def preview(self) -> ImageData | None:
        return self.controller.preview

    @property
    def progress(self) -> tuple[int, int]:
        return self.controller.progress

    @property
    def land_directly(self) -> bool:
        return self.controller.land_directly

    def set_land_directly(self, value: bool) -> None:
        """The setting "results land directly" (no preview layer first)."""
        self.controller.land_directly = value
        self.settings.set("land_directly", "1" if value else "0")

    def plan(self, expand: bool = False) -> Plan:
        """What Generate (or Expand) will do now, or why it would be refused."""
        return self.controller.plan(self.request(expand))

    def ignored(self) -> dict[str, str]:
        """Fields the chosen model ignores -> why (the docker disables them)."""
        return self.controller.ignored(self.model_id or None)

    @property
    def last_seed(self) -> int | None:
        return self.controller.last_seed

    @property
    def staged(self) -> Staged | None:
        return self.controller.staged

    @property
    def history(self) -> list[HistoryItem]:
        return self.controller.history

    def subscribe(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def changed(self) -> None:
        for listener in list(self._listeners):
            try:
                listener()
            except Exception:  # a widget bug must not break the model
                traceback.print_exc()

    # ---------------------------------------------------------------- what the buttons do

    def connect(self) -> None:
        """(Re)connect with the address and token in the fields; remembers them."""
        self.settings.set("url", self.url)
        self.settings.set("token", self.token)
        self.controller.connect(self.url, self.token, retry=True)

    def set_model(self, model_id: str) -> None:
        self.model_id = model_id
        self.settings.set("model", model_id)

    def set_seed_text(self, text: str) -> str:
        """The seed field's text: a number locks that seed, empty or "random" unlocks; returns the
        problem to show ('' when none)."""
        try:
            seed = parse_seed(text)
        except ValueError as error:
            return str(error)
        self.seed_random = seed is None
        self.seed = seed if seed is not None else self.seed
        return ""

    def lock_seed(self, locked: bool) -> None:
        """The lock: keep the seed in the field, or the last one used when the field says random."""
        if locked and self.seed_random:
            last = self.last_seed
            self.seed = last if last is not None else self.seed
        self.seed_random = not locked

    def reuse(self, item: HistoryItem, index: int = 0) -> None:
        """Copy a history result's parameters (its seed included, locked) into the fields."""
        if index < len(item.results):
            self.fill(self.controller.reuse(item.results[index]))

    def fill(self, request: Request) -> None:
        """The fields from ``request`` (a history result, a recent prompt, a PNG's parameters); a seed
        it carries is locked, its style chosen."""
        self.prompt, self.negative_prompt = request.prompt, request.negative_prompt
        self.strength = request.strength if request.strength is not None else self.strength
        self.steps = request.steps or 0
        if request.seed is not None:
            self.seed_random, self.seed = False, request.seed
        if request.model and request.model in [str(m.get("id")) for m in self.models]:
            self.set_model(request.model)
        if request.extend:
            self.extend = request.extend
        if request.style != (self.prompts.style or None):
            self.prompts.set_style(request.style or "")
        self.changed()

    # ---------------------------------------------------------------- prompt library

    def describe(self) -> bool:
        """The Describe button: a prompt for the selection (or the image) from the daemon fills the field."""
        return self.prompts.describe(self._described)

    def _described(self, prompt: str) -> None:
        self.prompt = prompt
        self.changed()

    def reuse_png(self, png: bytes) -> bool:
        """Fill the fields from a PNG's parameters (ours, A1111's or ComfyUI's); False (with the
        reason in ``error``) when it carries none."""
        request = self.prompts.reuse_png(png)
        if request is not None:
            self.fill(request)
        return request is not None

    def request(self, expand: bool = False) -> Request:
        controls, references = self.guides.guides()
        return Request(
            prompt=self.prompt,
            negative_prompt=self.negative_prompt,
            strength=float(self.strength),
            seed=None if self.seed_random else int(self.seed),
            batch=int(self.batch),
            model=self.model_id or None,
            steps=int(self.steps) or None,
            extend=self.extend if expand else None,
            mode="outpaint" if expand else None,
            style=self.prompts.style or None,
            controls=controls,
            references=references,
        )

    def generate(self, expand: bool = False) -> Job | None:
        """Start a job from the active document and the fields (the Generate / Expand buttons)."""
        return self.controller.generate(self.request(expand))

    def cancel(self) -> Job | None:
        """Cancel the job the user means -- the running one, else the newest waiting -- whatever row
        the queue list has highlighted."""
        return self.controller.cancel_current()

    def close(self) -> None:
        """Krita is quitting: drop the connection without waiting on the UI thread."""
        self.controller.close()
