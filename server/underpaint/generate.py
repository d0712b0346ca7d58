"""`underpaint generate`: one job through a daemon, exactly as a host plugin runs it.

The CLI is one more host of the shared controller (``underpaint_protocol.controller``): its canvas
is the input files, so the job is built, planned, read (only the planned region), submitted,
followed and placed by the same code as in Krita and GIMP. It writes each result composited over
the input at full canvas size (grown for outpaint) plus, optionally, the raw layer with its placement.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from underpaint import __version__
from underpaint.canvas import PixelLayer, composite_over
from underpaint.canvas.geometry import Box
from underpaint.canvas.resize import resize_exact
from underpaint_protocol import pnginfo
from underpaint_protocol.controller import Controller, Job, NewLayer, Request, WorkQueue
from underpaint_protocol.guides import CONTROL_KINDS, ControlLayer, ReferenceImage
from underpaint_protocol.jobs import Bounds
from underpaint_protocol.session import ImageData
from underpaint_protocol.upscale import UpscaleRequest


class GenerateError(Exception):
    """What went wrong, in words for the terminal."""


def selection_bounds(mask: np.ndarray) -> Box | None:
    """Bounds of the non-zero pixels of a selection mask, or None when nothing is selected."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return Box.from_edges(int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)


def load_image(path: Path, what: str) -> np.ndarray:
    """An image file as RGBA uint8."""
    try:
        with Image.open(path) as file:
            return np.asarray(file.convert("RGBA"))
    except OSError as error:
        raise GenerateError(f"cannot read {what} {path}: {error}") from None


def load_mask(path: Path, width: int, height: int) -> np.ndarray:
    """A selection file (white = selected) as uint8, checked against the image's size."""
    try:
        with Image.open(path) as file:
            mask = np.asarray(file.convert("L"))
    except OSError as error:
        raise GenerateError(f"cannot read --mask {path}: {error}") from None
    if mask.shape != (height, width):
        raise GenerateError(f"--mask is {mask.shape[1]}x{mask.shape[0]} but the image is {width}x{height}")
    return mask


DEFAULTS = {"prompt": "", "negative": "", "batch": 1, "width": 512, "height": 512}


def apply_source(args: argparse.Namespace) -> dict[str, Any] | None:
    """Fill what the command line left unset from the PNG named by ``--from`` (then the defaults);
    returns what the PNG carried (None without ``--from``)."""
    found: dict[str, Any] | None = None
    if args.source is not None:
        try:
            found = pnginfo.read_parameters(args.source.read_bytes())
        except (OSError, pnginfo.PngInfoError) as error:
            raise GenerateError(f"cannot read --from {args.source}: {error}") from None
        if found is None:
            raise GenerateError(f"{args.source} carries no generation parameters (ours, A1111's or ComfyUI's)")
        ours = found.get("underpaint") or {}
        canvas = ours.get("canvas") or {}
        extend = ours.get("extend")
        tags = " ".join(f"<lora:{lora['name']}:{lora['weight']:g}>" for lora in ours.get("loras") or ())
        taken = {
            "prompt": " ".join(part for part in (found["prompt"], tags) if part),
            "negative": found["negative_prompt"],
            "seed": found["seed"],
            "steps": found["steps"],
            "guidance": found["guidance"],
            "strength": found["strength"],
            "model": found["model"],
            "width": canvas.get("width", found["width"]),
            "height": canvas.get("height", found["height"]),
            "extend": ",".join(str(extend[side]) for side in ("left", "top", "right", "bottom")) if extend else None,
            "mode": ours.get("mode") or ("img2img" if args.image is not None else "txt2img"),
        }
        if args.mask is not None and taken["mode"] in ("txt2img", "img2img"):
            taken["mode"] = "inpaint"
        args.model_from_source = args.model is None and taken["model"] is not None
        for key, value in taken.items():
            if getattr(args, key) is None and value is not None:
                setattr(args, key, value)
    if args.mode is None:
        raise GenerateError("say which mode (txt2img, img2img, inpaint, outpaint), or give --from IMAGE.png")
    for key, value in DEFAULTS.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return found


def _load_inputs(args: argparse.Namespace) -> tuple[np.ndarray | None, np.ndarray | None, int, int]:
    image = mask = None
    if args.image is not None:
        image = load_image(args.image, "--image")
        height, width = image.shape[:2]
    elif args.mode == "txt2img":
        width, height = args.width, args.height
    else:
        raise GenerateError(f"{args.mode} needs --image")
    if args.mask is not None:
        mask = load_mask(args.mask, width, height)
    return image, mask, width, height


def _extend(args: argparse.Namespace) -> tuple[int, int, int, int] | None:
    if not args.extend:
        return None
    try:
        left, top, right, bottom = (int(part) for part in args.extend.split(","))
    except ValueError:
        raise GenerateError("--extend must be four integers: LEFT,TOP,RIGHT,BOTTOM") from None
    return left, top, right, bottom


def _upscale(args: argparse.Namespace) -> UpscaleRequest | None:
    if args.mode.replace("_", "-") not in ("upscale", "refine-upscale"):
        return None
    if args.factor is None:
        raise GenerateError(f"{args.mode} needs --factor")
    return UpscaleRequest(args.factor, model=args.upscaler, tile=args.tile)


_CONTROL = re.compile(r"^(?P<image>.+?)(?::(?P<strength>[0-9.]+))?(?::(?P<start>[0-9.]+)-(?P<end>[0-9.]+))?$")


def _read_rgba(path: Path, option: str) -> np.ndarray:
    try:
        with Image.open(path) as file:
            return np.asarray(file.convert("RGBA"))
    except OSError as error:
        raise GenerateError(f"cannot read {option} {path}: {error}") from None


def parse_control(text: str, preprocess: bool = False) -> tuple[str, Path, float, float, float, bool]:
    """``KIND:IMAGE[:STRENGTH[:START-END]]`` -> (kind, image, strength, start, end, preprocess)."""
    kind, _, rest = text.partition(":")
    found = _CONTROL.match(rest)
    if kind not in CONTROL_KINDS or not rest or found is None:
        raise GenerateError(
            f"--control {text}: use KIND:IMAGE[:STRENGTH[:START-END]] with KIND one of {', '.join(CONTROL_KINDS)}"
        )
    try:
        strength = float(found["strength"]) if found["strength"] else 1.0
        start = float(found["start"]) if found["start"] else 0.0
        end = float(found["end"]) if found["end"] else 1.0
    except ValueError:
        raise GenerateError(f"--control {text}: STRENGTH, START and END are numbers") from None
    return kind, Path(found["image"]), strength, start, end, preprocess


def _guides(
    args: argparse.Namespace, width: int, height: int
) -> tuple[tuple[ControlLayer, ...], tuple[ReferenceImage, ...]]:
    """The control layers (images the canvas's size) and references the command line names."""
    controls = []
    for text in args.control:
        kind, path, strength, start, end, preprocess = parse_control(text, args.preprocess)
        pixels = _read_rgba(path, "--control")
        if pixels.shape[:2] != (height, width):
            raise GenerateError(
                f"--control {path} is {pixels.shape[1]}x{pixels.shape[0]}; a control layer must be the canvas's "
                f"size, {width}x{height}"
            )
        controls.append(ControlLayer(pixels, kind, strength, start, end, preprocess))
    references = []
    for text in args.reference:
        image, _, weight = text.rpartition(":")
        try:
            value = float(weight) if image else 0.6
        except ValueError:
            image, value = "", 0.6
        path = Path(image or text)
        references.append(ReferenceImage(_read_rgba(path, "--reference"), args.reference_take, value))
    return tuple(controls), tuple(references)


def run_to_settled(controller: Controller, work: WorkQueue, job: Job | None) -> Job:
    """Run the controller's work until the job it started settles (None: it could not start, and
    ``controller.error`` says why); Ctrl-C cancels the job."""
    if job is None:
        raise GenerateError(controller.error)
    try:
        work.run_until(lambda: job.settled, float("inf"))
    except KeyboardInterrupt:
        controller.cancel(job)
        work.run_until(lambda: job.done, 30)
        raise GenerateError("cancelled") from None
    return job


def token_of(args: argparse.Namespace) -> str:
    if args.token:
        return str(args.token)
    from underpaint.folders import config_dir

    path = config_dir() / "token"
    return path.read_text(encoding="utf-8").strip() if path.is_file() else ""


class FileCanvas:
    """The controller's Canvas over image files: reads crops, grows, and keeps what it was given."""

    def __init__(self, image: np.ndarray | None, mask: np.ndarray | None, width: int, height: int) -> None:
        self.pixels = image if image is not None else np.zeros((height, width, 4), np.uint8)
        self.mask = mask
        self.pasted: list[NewLayer] = []

    def is_open(self) -> bool:
        return True

    def size(self) -> tuple[int, int]:
        return int(self.pixels.shape[1]), int(self.pixels.shape[0])

    def selection(self) -> Bounds | None:
        bounds = selection_bounds(self.mask) if self.mask is not None else None
        return None if bounds is None else Bounds(bounds.x, bounds.y, bounds.width, bounds.height)

    def read_image(self, rect: Bounds) -> ImageData:
        return _raw(self.pixels[rect.y : rect.y + rect.height, rect.x : rect.x + rect.width], "rgba8")

    def read_mask(self, rect: Bounds) -> ImageData:
        assert self.mask is not None  # the controller reads a mask only for a job with a selection
        return _raw(self.mask[rect.y : rect.y + rect.height, rect.x : rect.x + rect.width], "gray8")

    def read_layer_region(self, layer: np.ndarray, rect: Bounds) -> ImageData:
        """A control image (canvas-sized) over ``rect``: the CLI's layers are files."""
        return _raw(layer[rect.y : rect.y + rect.height, rect.x : rect.x + rect.width], "rgba8")

    def read_layer(self, layer: np.ndarray) -> ImageData:
        return _raw(layer, "rgba8")

    def grow(self, width: int, height: int, offset_x: int, offset_y: int) -> None:
        grown = np.zeros((height, width, 4), np.uint8)
        old_height, old_width = self.pixels.shape[:2]
        grown[offset_y : offset_y + old_height, offset_x : offset_x + old_width] = self.pixels
        self.pixels = grown

    def scale(self, width: int, height: int) -> None:
        """An upscale scales the document first; the result layer then covers its part of it."""
        self.pixels = np.asarray(resize_exact(self.pixels, width, height))

    def paste(self, layers: list[NewLayer], group: str | None) -> list[Any]:
        self.pasted += layers
        return list(layers)


class _Terminal:
    """The CLI as the controller's host: one canvas, and a one-line progress bar on stderr."""

    def __init__(self, canvas: FileCanvas) -> None:
        self.file_canvas = canvas
        self.interactive = sys.stderr.isatty()
        self.last = ""

    def canvas(self) -> FileCanvas:
        return self.file_canvas

    def show(self, controller: Controller) -> None:
        job = controller.jobs[-1] if controller.jobs else None
        if job is None:
            return
        if job.state == "running" and job.total:
            filled = int(30 * job.step / max(job.total, 1))
            text = f"[{'#' * filled}{' ' * (30 - filled)}] step {job.step}/{job.total}"
        elif job.state == "queued" and job.job_id:
            text = f"job {job.job_id[:8]} accepted, seed {job.seed}; " + job.describe().split(": ", 1)[-1]
        else:
            return
        if text == self.last:
            return
        self.last = text
        if self.interactive:
            sys.stderr.write("\r\033[K" + text)
        elif not text.startswith("["):
            sys.stderr.write(text + "\n")
        sys.stderr.flush()


def run_generate(args: argparse.Namespace) -> None:
    apply_source(args)
    image, mask, width, height = _load_inputs(args)
    canvas = FileCanvas(image, mask, width, height)
    controls, references = _guides(args, width, height)
    terminal = _Terminal(canvas)
    work = WorkQueue()
    controller = Controller(
        terminal, work.post, client_name="underpaint-cli", client_version=__version__, client_id=args.client_id
    )
    request = Request(
        prompt=args.prompt,
        negative_prompt=args.negative,
        strength=args.strength,
        seed=args.seed,
        batch=args.batch,
        model=args.model,
        steps=args.steps,
        guidance=args.guidance,
        extend=_extend(args),
        mode=args.mode.replace("-", "_"),
        upscale=_upscale(args),
        style=args.style,
        controls=controls,
        references=references,
    )
    controller.connect(args.server, token_of(args))
    try:
        work.run_until(lambda: controller.connection != "connecting", 30)
        if not controller.connected:
            raise GenerateError(controller.status)
        known = {str(model.get("id")) for model in controller.models}
        if getattr(args, "model_from_source", False) and request.model not in known:
            sys.stderr.write(f"the daemon has no model {request.model!r}; using its default\n")
            request = dataclasses.replace(request, model=None)
        job = run_to_settled(controller, work, controller.generate(request))
    finally:
        controller.close()
    if terminal.interactive:
        sys.stderr.write("\n")
    if job.state != "finished" or controller.error:
        raise GenerateError(job.error or controller.error or job.describe())
    sys.stderr.write(f"done: {len(job.pasted)} result(s)\n")
    for index, (result, layer) in enumerate(zip(job.results, canvas.pasted, strict=True)):
        _write_outputs(args, index, len(job.pasted) > 1, canvas.pixels, result.message, layer)


def _raw(array: np.ndarray, image_format: str) -> ImageData:
    return ImageData(image_format, int(array.shape[1]), int(array.shape[0]), np.ascontiguousarray(array).tobytes())


def _numbered(path: Path, index: int, numbered: bool) -> Path:
    return path.with_name(f"{path.stem}-{index + 1}{path.suffix}") if numbered else path


def _write_outputs(
    args: argparse.Namespace,
    index: int,
    numbered: bool,
    base: np.ndarray,
    message: dict[str, Any],
    layer: NewLayer,
) -> None:
    """The result composited over the (grown) input, and optionally the raw layer with its placement."""
    height, width = base.shape[:2]
    pixels = np.frombuffer(bytes(layer.image.data), np.uint8).reshape(layer.image.height, layer.image.width, 4)
    region = Box(0, 0, width, height)
    composite = composite_over(base, PixelLayer(pixels=pixels, x=layer.x, y=layer.y, canvas=region), region)
    out = _numbered(args.out, index, numbered)
    Image.fromarray(composite, "RGBA").save(out)
    print(f"wrote {out} ({width}x{height})")
    if args.layer_out is not None:
        placed = message["layer"]
        layer_path = _numbered(args.layer_out, index, numbered)
        Image.fromarray(np.ascontiguousarray(pixels), "RGBA").save(layer_path)
        sidecar = {
            "name": placed["name"],
            "x": placed["x"],
            "y": placed["y"],
            "width": placed["width"],
            "height": placed["height"],
            "canvas": message["canvas"],
            "params": message["params"],
        }
        layer_path.with_suffix(".json").write_text(json.dumps(sidecar, indent=2), encoding="utf-8")
        print(f"wrote {layer_path} at x={placed['x']} y={placed['y']} ({placed['width']}x{placed['height']})")
