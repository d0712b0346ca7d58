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
from underpaint_protocol.controller import Canvas, Controller, Job, Post, Request
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

    # ---------------------------------------------------------------- the controller's Host

    def canvas(self) -> Canvas:
        return self.glue.active_canvas()

    def show(self, controller: Controller) -> None:
        ids = [str(m.get("id")) for m in controller.models]
        if ids and self.model_id not in ids:
            self.model_id = controller.default_model or ids[0]
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

    def mode_hint(self) -> str:
        return self.controller.mode_hint(self.strength)

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

    def generate(self, expand: bool = False) -> Job | None:
        """Start a job from the active document and the fields (the Generate / Expand buttons)."""
        request = Request(
            prompt=self.prompt,
            negative_prompt=self.negative_prompt,
            strength=float(self.strength),
            seed=None if self.seed_random else int(self.seed),
            batch=int(self.batch),
            model=self.model_id or None,
            steps=int(self.steps) or None,
            extend=self.extend if expand else None,
            mode="outpaint" if expand else None,
        )
        return self.controller.generate(request)

    def cancel(self, key: str | int | None = None) -> None:
        """Cancel one job (the queue's selection) or, without ``key`` or when that row already ended,
        every job not ended: Cancel never silently does nothing while something runs."""
        job = self.controller.job(key) if key is not None else None
        self.controller.cancel(job if job is not None and not job.done else None)

    def close(self) -> None:
        """Krita is quitting: drop the connection without waiting on the UI thread."""
        self.controller.close()
