"""`underpaint generate`: one job through a daemon, exactly as a host plugin would run it.

Reads the canvas and selection from files, asks the daemon which region it needs, uploads only
that region, shows progress, and writes the result composited over the input at full canvas size
(grown for outpaint) plus, optionally, the raw layer with its placement.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from underpaint import __version__
from underpaint.canvas import PixelLayer, composite_over
from underpaint.canvas.geometry import Box
from underpaint_protocol.client import DaemonError, NotConnected, UnderpaintClient
from underpaint_protocol.session import Event, ImageData


class GenerateError(Exception):
    """What went wrong, in words for the terminal."""


def selection_bounds(mask: np.ndarray) -> Box | None:
    """Bounds of the non-zero pixels of a selection mask, or None when nothing is selected."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return Box.from_edges(int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)


def _load_inputs(args: argparse.Namespace) -> tuple[np.ndarray | None, np.ndarray | None, int, int]:
    image = mask = None
    if args.image is not None:
        try:
            with Image.open(args.image) as file:
                image = np.asarray(file.convert("RGBA"))
        except OSError as error:
            raise GenerateError(f"cannot read --image {args.image}: {error}") from None
        height, width = image.shape[:2]
    elif args.mode == "txt2img":
        width, height = args.width, args.height
    else:
        raise GenerateError(f"{args.mode} needs --image")
    if args.mask is not None:
        try:
            with Image.open(args.mask) as file:
                mask = np.asarray(file.convert("L"))
        except OSError as error:
            raise GenerateError(f"cannot read --mask {args.mask}: {error}") from None
        if mask.shape != (height, width):
            raise GenerateError(f"--mask is {mask.shape[1]}x{mask.shape[0]} but the image is {width}x{height}")
    return image, mask, width, height


def _job_spec(args: argparse.Namespace, width: int, height: int, mask: np.ndarray | None) -> dict[str, Any]:
    job: dict[str, Any] = {
        "mode": args.mode,
        "prompt": args.prompt,
        "negative_prompt": args.negative,
        "batch": args.batch,
        "canvas": {"width": width, "height": height},
    }
    for key, value in (
        ("model", args.model),
        ("strength", args.strength),
        ("steps", args.steps),
        ("guidance", args.guidance),
        ("seed", args.seed),
    ):
        if value is not None:
            job[key] = value
    if mask is not None:
        bounds = selection_bounds(mask)
        if bounds is not None:
            job["selection"] = {"x": bounds.x, "y": bounds.y, "width": bounds.width, "height": bounds.height}
    if args.extend:
        try:
            left, top, right, bottom = (int(part) for part in args.extend.split(","))
        except ValueError:
            raise GenerateError("--extend must be four integers: LEFT,TOP,RIGHT,BOTTOM") from None
        job["extend"] = {"left": left, "top": top, "right": right, "bottom": bottom}
    return job


def _token(args: argparse.Namespace) -> str | None:
    if args.token:
        return str(args.token)
    from underpaint.daemon.config import config_dir

    path = config_dir() / "token"
    return path.read_text(encoding="utf-8").strip() if path.is_file() else None


class _Progress:
    """A one-line progress bar on stderr."""

    def __init__(self) -> None:
        self.interactive = sys.stderr.isatty()

    def show(self, text: str, final: bool = False) -> None:
        if self.interactive:
            sys.stderr.write("\r\033[K" + text + ("\n" if final else ""))
        elif final or not text.startswith("["):
            sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def step(self, step: int, total: int) -> None:
        filled = int(30 * step / max(total, 1))
        self.show(f"[{'#' * filled}{' ' * (30 - filled)}] step {step}/{total}")


def run_generate(args: argparse.Namespace) -> None:
    image, mask, width, height = _load_inputs(args)
    job = _job_spec(args, width, height, mask)
    results: dict[int, tuple[dict[str, Any], np.ndarray]] = {}
    outcome: dict[str, Any] = {}
    done = threading.Event()
    progress = _Progress()
    job_id: list[str] = []

    def on_event(event: Event) -> None:
        if job_id and event.job_id != job_id[0]:
            return
        if event.type == "progress":
            progress.step(int(event.message["step"]), int(event.message["total"]))
        elif event.type == "queued":
            progress.show(f"queued at position {event.message['position']}")
        elif event.type == "result" and event.image is not None:
            results[int(event.message["index"])] = (event.message, _layer_pixels(event.image))
        elif event.type in ("finished", "failed", "cancelled"):
            outcome.update(event.message)
            done.set()

    client = UnderpaintClient(
        args.server,
        token=_token(args),
        client_name="underpaint-cli",
        client_version=__version__,
        on_event=on_event,
        reconnect=True,
    )
    try:
        client.connect(timeout=10)
    except (NotConnected, DaemonError) as error:
        raise GenerateError(f"{error}. Is the daemon running? Start it with `underpaint serve`.") from None
    try:
        planned = client.plan(job).result(timeout=60)
        upload = Box(**planned["upload"])
        image_data = mask_data = None
        if not upload.is_empty:
            assert image is not None
            rows, cols = upload.slices(Box(0, 0, width, height))
            image_data = _raw(np.ascontiguousarray(image[rows, cols]), "rgba8")
            if mask is not None:
                mask_data = _raw(np.ascontiguousarray(mask[rows, cols]), "gray8")
        region = planned["upload"] if not upload.is_empty else None
        accepted = client.submit(job, region, image_data, mask_data).result(timeout=120)
        job_id.append(accepted["job_id"])
        progress.show(f"job {accepted['job_id'][:8]} accepted, seed {accepted['seed']}")
        try:
            while not done.wait(0.2):
                pass
        except KeyboardInterrupt:
            client.cancel(accepted["job_id"])
            done.wait(30)
            raise GenerateError("cancelled") from None
    except DaemonError as error:
        where = f" (field {error.field})" if error.field else ""
        raise GenerateError(f"{error.code}: {error}{where}") from None
    except TimeoutError:
        raise GenerateError("the daemon did not answer in time") from None
    finally:
        client.close()
    if outcome.get("type") != "finished":
        where = f" (field {outcome.get('field')})" if outcome.get("field") else ""
        raise GenerateError(f"job {outcome.get('type')}: {outcome.get('message', '')}{where}")
    progress.show(f"done: {len(results)} result(s)", final=True)
    for index, (message, pixels) in sorted(results.items()):
        _write_outputs(args, index, len(results) > 1, image, width, height, message, pixels)


def _raw(array: np.ndarray, image_format: str) -> ImageData:
    return ImageData(image_format, int(array.shape[1]), int(array.shape[0]), memoryview(array.tobytes()))


def _layer_pixels(image: ImageData) -> np.ndarray:
    if image.format == "png":
        import io

        with Image.open(io.BytesIO(image.data)) as file:
            return np.asarray(file.convert("RGBA"))
    pixels = np.frombuffer(image.data, np.uint8).reshape(image.height, image.width, 4)
    return pixels[..., [2, 1, 0, 3]] if image.format == "bgra8" else pixels


def _numbered(path: Path, index: int, numbered: bool) -> Path:
    return path.with_name(f"{path.stem}-{index + 1}{path.suffix}") if numbered else path


def _write_outputs(
    args: argparse.Namespace,
    index: int,
    numbered: bool,
    image: np.ndarray | None,
    width: int,
    height: int,
    message: dict[str, Any],
    pixels: np.ndarray,
) -> None:
    placement = message["layer"]
    canvas = Box(**message["canvas"])
    original = np.zeros((canvas.height, canvas.width, 4), np.uint8)
    if image is not None:
        rows, cols = Box(0, 0, width, height).slices(canvas)
        original[rows, cols] = image
    layer = PixelLayer(pixels=pixels, x=int(placement["x"]), y=int(placement["y"]), canvas=canvas)
    composite = composite_over(original, layer, canvas)
    out = _numbered(args.out, index, numbered)
    Image.fromarray(composite, "RGBA").save(out)
    print(f"wrote {out} ({canvas.width}x{canvas.height})")
    if args.layer_out is not None:
        layer_path = _numbered(args.layer_out, index, numbered)
        Image.fromarray(np.ascontiguousarray(pixels), "RGBA").save(layer_path)
        sidecar = {
            "name": placement["name"],
            "x": layer.x,
            "y": layer.y,
            "width": layer.width,
            "height": layer.height,
            "canvas": message["canvas"],
            "params": message["params"],
        }
        layer_path.with_suffix(".json").write_text(json.dumps(sidecar, indent=2), encoding="utf-8")
        print(f"wrote {layer_path} at x={layer.x} y={layer.y} ({layer.width}x{layer.height})")
