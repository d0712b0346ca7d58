"""`underpaint styles`, `history` and `interrogate`: the daemon's prompt library from a terminal,
through the same shared client module the plugins use (``underpaint_protocol.library``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from underpaint import __version__
from underpaint_protocol.client import DaemonError, NotConnected, UnderpaintClient
from underpaint_protocol.library import Library, style


class LibraryError(Exception):
    """What went wrong, in words for the terminal."""


def _connect(args: argparse.Namespace) -> UnderpaintClient:
    from underpaint.generate import token_of

    client = UnderpaintClient(
        args.server, client_name="underpaint-cli", client_version=__version__, token=token_of(args)
    )
    try:
        client.connect(timeout=10, fail_fast=True)
    except NotConnected as error:
        raise LibraryError(str(error)) from None
    return client


def _ask(future: Any) -> Any:
    try:
        return future.result(timeout=30)
    except DaemonError as error:
        where = f" ({error.field})" if error.field else ""
        raise LibraryError(f"{error}{where}") from None


def style_line(item: dict[str, Any]) -> str:
    """One style a line: name, template, negative, settings, and whether it is shipped."""
    settings = ", ".join(f"{key} {item[key]}" for key in ("model", "steps", "guidance", "strength") if item.get(key))
    parts = [item["name"], item["prompt"]]
    if item.get("negative_prompt"):
        parts.append(f"negative: {item['negative_prompt']}")
    if settings:
        parts.append(settings)
    if item.get("builtin"):
        parts.append("(shipped)")
    return "\t".join(parts)


def run_styles(args: argparse.Namespace) -> None:
    client = _connect(args)
    try:
        library = Library(client)
        if args.save is not None:
            if args.prompt is None:
                raise LibraryError("--save needs --prompt 'TEMPLATE with {prompt}'")
            settings = {"model": args.model, "steps": args.steps, "guidance": args.guidance, "strength": args.strength}
            reply = _ask(library.save_style(style(args.save, args.prompt, args.negative or "", **settings)))
        elif args.rename is not None:
            old, new = args.rename
            reply = _ask(library.rename_style(old, new))
        elif args.delete is not None:
            reply = _ask(library.delete_style(args.delete))
        else:
            reply = _ask(library.styles())
    finally:
        client.close()
    if reply.get("notice"):
        print(f"underpaint: {reply['notice']}", file=sys.stderr)
    if args.json:
        print(json.dumps(reply["styles"], indent=2, ensure_ascii=False))
        return
    for item in reply["styles"]:
        print(style_line(item))


def run_history(args: argparse.Namespace) -> None:
    client = _connect(args)
    try:
        entries = _ask(Library(client).history(args.limit))
    finally:
        client.close()
    if args.json:
        print(json.dumps(entries, indent=2, ensure_ascii=False))
        return
    for entry in entries:
        style_name = f" [{entry['style']}]" if entry.get("style") else ""
        print(f"{entry['mode']}\t{entry['model']}\tseed {entry['seed']}\t{entry['prompt']}{style_name}")


def run_interrogate(args: argparse.Namespace) -> None:
    """Print a prompt for the image (the selection's bounding box with --mask)."""
    import numpy as np
    from PIL import Image

    from underpaint_protocol.session import ImageData

    def read(path: Any, mode: str, fmt: str) -> ImageData:
        try:
            with Image.open(path) as file:
                pixels = np.ascontiguousarray(np.asarray(file.convert(mode)))
        except OSError as error:
            raise LibraryError(f"cannot read {path}: {error}") from None
        return ImageData(fmt, int(pixels.shape[1]), int(pixels.shape[0]), pixels.tobytes())

    image = read(args.image, "RGBA", "rgba8")
    mask = read(args.mask, "L", "gray8") if args.mask is not None else None
    if mask is not None and (mask.width, mask.height) != (image.width, image.height):
        raise LibraryError(f"--mask is {mask.width}x{mask.height} but the image is {image.width}x{image.height}")
    client = _connect(args)
    try:
        found = _ask(Library(client).interrogate(image, mask, args.flavours))
    finally:
        client.close()
    print(found["prompt"])


def add_commands(commands: Any, default_server: str) -> None:
    """The `styles`, `history` and `interrogate` subcommands."""
    styles = commands.add_parser("styles", help="list the daemon's styles, or save, rename, delete your own")
    styles.add_argument("--server", default=default_server, help="daemon URL")
    styles.add_argument("--token", help="the daemon's token (default: read from this user's config)")
    action = styles.add_mutually_exclusive_group()
    action.add_argument("--save", metavar="NAME", help="save a style (with --prompt and the options below)")
    action.add_argument("--rename", nargs=2, metavar=("NAME", "NEW_NAME"))
    action.add_argument("--delete", metavar="NAME")
    styles.add_argument("--prompt", help="the template; {prompt} is where the job's prompt goes")
    styles.add_argument("--negative", help="negative prompt joined after the job's")
    styles.add_argument("--model")
    styles.add_argument("--steps", type=int)
    styles.add_argument("--guidance", type=float)
    styles.add_argument("--strength", type=float)
    styles.add_argument("--json", action="store_true", help="print the styles as JSON")
    styles.set_defaults(run=_run(run_styles))

    history = commands.add_parser("history", help="your recent prompts and settings, newest first")
    history.add_argument("--server", default=default_server, help="daemon URL")
    history.add_argument("--token", help="the daemon's token (default: read from this user's config)")
    history.add_argument("--limit", type=int, default=20)
    history.add_argument("--json", action="store_true")
    history.set_defaults(run=_run(run_history))

    interrogate = commands.add_parser("interrogate", help="print a prompt describing an image (or its selection)")
    interrogate.add_argument("--server", default=default_server, help="daemon URL")
    interrogate.add_argument("--token", help="the daemon's token (default: read from this user's config)")
    interrogate.add_argument("--image", type=Path, required=True)
    interrogate.add_argument("--mask", type=Path, help="selection as a grayscale image: describe its bounding box")
    interrogate.add_argument("--flavours", type=int, default=3, help="flavour terms after caption, medium, style")
    interrogate.set_defaults(run=_run(run_interrogate))


def _run(command: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            command(args)
        except LibraryError as error:
            print(f"underpaint: {error}", file=sys.stderr)
            return 1
        return 0

    return run
