"""The plug-in's side of the shared controller, free of GIMP and GTK (unit-tested on its own).

Every job rule -- connection, plan -> read -> submit, cancel, results, messages -- is
``underpaint_protocol.controller``'s. What is GIMP's: one image per panel or procedure call (the
host's canvas never changes), and batch runs that drive the controller on the procedure's own
thread until the job has ended.
"""

from __future__ import annotations

from collections.abc import Callable

from underpaint_protocol.controller import Canvas, Controller, Job, Post, Request, UserError, WorkQueue
from underpaint_protocol.segment import SegmentRequest

from . import VERSION

CLIENT_NAME = "underpaint-gimp"


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


def make_controller(
    host: ImageHost, post: Post, gimp_version: str = "", *, land_directly: bool = True, client_id: str | None = None
) -> Controller:
    """``land_directly`` False: results wait in a preview layer for Apply / Discard (the panel's
    setting; procedures land directly). ``client_id``: the panel's remembered identity, so its
    history holds the results of earlier sessions."""
    return Controller(
        host,
        post,
        client_name=CLIENT_NAME,
        client_version=VERSION,
        host_info=("gimp", gimp_version),
        land_directly=land_directly,
        client_id=client_id,
    )


def run_to_end(
    controller: Controller, work: WorkQueue, url: str, token: str, request: Request | SegmentRequest, timeout: float
) -> Job:
    """A procedure call: connect, run one job (a segment job for a ``SegmentRequest``) on this thread
    until it ended and its results are in (pasted, or made the selection).

    Raises UserError with the sentence to show when it cannot start, fails or does not end in time.
    """
    controller.connect(url, token)
    work.run_until(lambda: controller.connection != "connecting", 30)
    if not controller.connected:
        raise UserError(controller.status)
    job = controller.segment(request) if isinstance(request, SegmentRequest) else controller.generate(request)
    if job is None:
        raise UserError(controller.error)
    if not work.run_until(lambda: job.settled, timeout):
        controller.cancel(job)
        raise UserError(f"the job did not finish within {timeout:g} s")
    if job.state == "failed" or controller.error:
        raise UserError(job.error or controller.error)
    return job
