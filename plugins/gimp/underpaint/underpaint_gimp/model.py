"""The plug-in's side of the shared controller, free of GIMP and GTK (unit-tested on its own).

Every job rule -- connection, plan -> read -> submit, cancel, results, messages -- is
``underpaint_protocol.controller``'s. What is GIMP's: one image per panel or procedure call (the
host's canvas never changes), and batch runs that drive the controller on the procedure's own
thread until the job has ended.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from underpaint_protocol.controller import Canvas, Controller, Job, Post, Request, UserError, WorkQueue

from . import VERSION

CLIENT_NAME = "underpaint-gimp"
MAX_SEED = 2**32 - 1
IGNORED_BY_ENGINE = {"classical": ("prompt", "negative_prompt", "strength", "steps")}
"""Job fields an engine does not use (the classical engine fills from the surroundings)."""
FIELD_WORDS = {"prompt": "prompt", "negative_prompt": "negative prompt", "strength": "strength", "steps": "steps"}


def ignored_fields(model: dict[str, Any] | None) -> tuple[str, ...]:
    """The fields the chosen model (an entry of the welcome's ``models``) ignores."""
    return IGNORED_BY_ENGINE.get(str(model.get("engine")), ()) if model else ()


def ignored_hint(model_id: str, fields: tuple[str, ...]) -> str:
    """Why some fields are greyed out."""
    if not fields:
        return ""
    words = [FIELD_WORDS[name] for name in fields]
    listed = ", ".join(words[:-1]) + f" and {words[-1]}" if len(words) > 1 else words[0]
    return f"The {model_id} model fills from the surroundings; it does not use the {listed}."


def parse_seed(text: str) -> int | str:
    """A seed typed by the user (0..2^32-1), or the sentence saying what is wrong with it."""
    value = text.strip()
    if value.isdigit() and int(value) <= MAX_SEED:
        return int(value)
    return f"The seed must be a whole number from 0 to {MAX_SEED}."


class ImageHost:
    """The controller's host for one GIMP image; ``on_change`` redraws whoever shows the state."""

    def __init__(self, canvas: Canvas, on_change: Callable[[Controller], None] = lambda controller: None) -> None:
        self._canvas = canvas
        self.on_change = on_change

    def canvas(self) -> Canvas:
        if not self._canvas.is_open():
            raise UserError("The image was closed; open the panel from another image.")
        return self._canvas

    def show(self, controller: Controller) -> None:
        self.on_change(controller)


def make_controller(host: ImageHost, post: Post, gimp_version: str = "") -> Controller:
    return Controller(host, post, client_name=CLIENT_NAME, client_version=VERSION, host_info=("gimp", gimp_version))


def run_to_end(controller: Controller, work: WorkQueue, url: str, token: str, request: Request, timeout: float) -> Job:
    """A procedure call: connect, run one job on this thread until it ended and its results are in.

    Raises UserError with the sentence to show when it cannot start, fails or does not end in time.
    """
    controller.connect(url, token)
    work.run_until(lambda: controller.connection != "connecting", 30)
    if not controller.connected:
        raise UserError(controller.status)
    job = controller.generate(request)
    if job is None:
        raise UserError(controller.error)
    if not work.run_until(lambda: job.settled, timeout):
        controller.cancel(job)
        raise UserError(f"the job did not finish within {timeout:g} s")
    if job.state == "failed" or controller.error:
        raise UserError(job.error or controller.error)
    return job
