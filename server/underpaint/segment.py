"""`underpaint segment`: select an object in an image file through a daemon, exactly as a plugin does.

One more host of the shared controller: ``Controller.segment`` builds, plans, reads (only the planned
region), submits and follows the job; the answer arrives as the selection (``apply_selection``),
which is written as a grayscale PNG at the image's size (white = selected, soft edges kept).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from PIL import Image

from underpaint import __version__
from underpaint.generate import FileCanvas, GenerateError, load_image, load_mask, run_to_settled, token_of
from underpaint_protocol.controller import Controller, WorkQueue
from underpaint_protocol.jobs import Bounds
from underpaint_protocol.segment import SegmentMask, SegmentRequest


class SelectionFile(FileCanvas):
    """The image file as a canvas whose selection the answer replaces (what ``--out`` writes)."""

    selected: np.ndarray | None = None

    def apply_selection(self, mask: SegmentMask) -> None:
        width, height = self.size()
        selected = np.zeros((height, width), np.uint8)
        pixels = np.frombuffer(mask.data, np.uint8).reshape(mask.height, mask.width)
        selected[mask.y : mask.y + mask.height, mask.x : mask.x + mask.width] = pixels
        self.selected = selected


class _Quiet:
    def __init__(self, canvas: SelectionFile) -> None:
        self.file_canvas = canvas

    def canvas(self) -> SelectionFile:
        return self.file_canvas

    def show(self, controller: Controller) -> None:
        return None


def _pair(text: str, what: str) -> tuple[int, int]:
    try:
        x, y = (int(part) for part in text.split(","))
    except ValueError:
        raise GenerateError(f"{what} must be two integers: X,Y (got {text!r})") from None
    return x, y


def _box(text: str | None) -> Bounds | None:
    if text is None:
        return None
    try:
        x, y, width, height = (int(part) for part in text.split(","))
    except ValueError:
        raise GenerateError(f"--box must be four integers: X,Y,W,H (got {text!r})") from None
    return Bounds(x, y, width, height)


def run_segment(args: argparse.Namespace) -> None:
    image = load_image(args.image, "--image")
    height, width = image.shape[:2]
    rough = load_mask(args.mask, width, height) if args.mask is not None else None
    canvas = SelectionFile(image, rough, width, height)
    request = SegmentRequest(
        box=_box(args.box),
        points=tuple(_pair(p, "--point") for p in args.point),
        negative_points=tuple(_pair(p, "--negative-point") for p in args.negative_point),
        text=args.text,
        refine_selection=rough is not None,
        model=args.model,
        threshold=args.threshold,
        soften=args.soften,
    )
    work = WorkQueue()
    controller = Controller(
        _Quiet(canvas), work.post, client_name="underpaint-cli", client_version=__version__, client_id=args.client_id
    )
    controller.connect(args.server, token_of(args))
    try:
        work.run_until(lambda: controller.connection != "connecting", 30)
        if not controller.connected:
            raise GenerateError(controller.status)
        job = run_to_settled(controller, work, controller.segment(request))
    finally:
        controller.close()
    if job.state != "finished" or controller.error or canvas.selected is None:
        raise GenerateError(job.error or controller.error or job.describe())
    Image.fromarray(canvas.selected, "L").save(args.out)
    share = float((canvas.selected >= 128).mean())
    model = job.results[0].message["params"]["model"]
    print(f"wrote {args.out} ({width}x{height}, {share:.1%} selected, model {model})")


def main_segment(args: argparse.Namespace) -> int:
    try:
        run_segment(args)
    except GenerateError as error:
        print(f"underpaint: {error}", file=sys.stderr)
        return 1
    return 0
