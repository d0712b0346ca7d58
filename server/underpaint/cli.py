"""The `underpaint` command: run the daemon, talk to it, and look after models and plugins."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from underpaint import __version__
from underpaint_protocol import DEFAULT_PORT

if TYPE_CHECKING:
    from underpaint.daemon.config import DaemonConfig


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "log_level", "info") != "debug":
        # transformers and diffusers warn about optional extras and licences on every load: our log says
        # what the daemon does; their chatter stays hidden unless asked for with --log-level debug.
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    return int(args.run(args) or 0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="underpaint", description="AI inpainting for Krita, GIMP and Figma.")
    parser.add_argument("--version", action="version", version=f"underpaint {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the daemon in the foreground")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 = any free)")
    serve.add_argument(
        "--engine",
        choices=["classical", "diffusion", "echo"],
        default="classical",
        help="default engine: classical (no weights, default), diffusion, or echo (diagnostics)",
    )
    serve.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="SOURCE",
        help="diffusion model: a Hugging Face repo id, a diffusers folder, a .safetensors file, "
        "or tiny-random (random weights, draws noise); erase:PATH a learned fill model, upscale:PATH a "
        "super-resolution model (e.g. RealESRGAN_x4plus.safetensors), restore:PATH a face restoration model "
        "(e.g. GFPGANv1.4.safetensors); repeatable",
    )
    serve.add_argument("--models-dir", action="append", type=Path, default=[], help="folder of models to offer")
    serve.add_argument("--device", default="auto", choices=["auto", "cuda", "mps", "cpu"])
    outputs = serve.add_mutually_exclusive_group()
    outputs.add_argument("--outputs", type=Path, help="folder for every result (PNG + JSON sidecar)")
    outputs.add_argument("--no-outputs", action="store_true", help="keep results in memory only")
    serve.add_argument("--token-file", type=Path, help="where the access token is kept")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.add_argument(
        "--workers",
        choices=["threads", "ray"],
        default="threads",
        help="where engines run: threads of this process (default), or Ray Serve replicas, one per GPU of a "
        "Ray cluster (needs underpaint[ray])",
    )
    serve.add_argument(
        "--ray-address",
        metavar="ADDRESS",
        help="with --workers ray: join this running Ray cluster (default: start Ray on this machine)",
    )
    serve.add_argument(
        "--warm-models",
        type=int,
        default=2,
        metavar="N",
        help="with --workers ray: models each replica keeps loaded (least recently used goes first; default 2)",
    )
    serve.set_defaults(run=_serve)

    generate = commands.add_parser("generate", help="run one job through a daemon, like a plugin would")
    generate.add_argument(
        "mode", choices=["txt2img", "img2img", "inpaint", "outpaint", "upscale", "refine-upscale", "restore"]
    )
    generate.add_argument("--server", default=f"ws://127.0.0.1:{DEFAULT_PORT}", help="daemon URL")
    generate.add_argument("--token", help="the daemon's token (default: read from this user's config)")
    generate.add_argument(
        "--client-id", help="act as this client identity (a plugin's), so the result shows in its history"
    )
    generate.add_argument("--image", type=Path, help="input image (the canvas)")
    generate.add_argument("--mask", type=Path, help="selection as a grayscale image (white = selected)")
    generate.add_argument("--width", type=int, default=512, help="canvas width for txt2img without --image")
    generate.add_argument("--height", type=int, default=512, help="canvas height for txt2img without --image")
    generate.add_argument("--prompt", default="")
    generate.add_argument("--negative", default="", help="negative prompt")
    generate.add_argument("--model", help="model id (default: the daemon's default)")
    generate.add_argument("--strength", type=float)
    generate.add_argument("--steps", type=int)
    generate.add_argument("--guidance", type=float)
    generate.add_argument("--seed", type=int)
    generate.add_argument("--batch", type=int, default=1)
    generate.add_argument("--extend", help="outpaint extents in pixels: LEFT,TOP,RIGHT,BOTTOM")
    generate.add_argument("--out", type=Path, required=True, help="result composited over the input, full canvas")
    generate.add_argument("--layer-out", type=Path, help="the raw layer (PNG) with its placement (JSON beside it)")
    _add_upscale_arguments(generate)
    generate.set_defaults(run=_generate)

    token = commands.add_parser("token", help="print the token browser-based clients (Figma) must present")
    token.add_argument("--token-file", type=Path)
    token.set_defaults(run=_token)

    install = commands.add_parser("install-plugin", help="install a host plugin (krita, gimp, figma)")
    install.add_argument("host", choices=["krita", "gimp", "figma"])
    install.add_argument("--dest", type=Path, help="install into this folder instead of the host's default")
    install.add_argument("--zip", type=Path, help="build a zip to import in the host instead of installing")
    install.add_argument("--host-version", help="the host version to install for (default: detected)")
    install.set_defaults(run=_install_plugin)

    workers = commands.add_parser("workers", help="show what runs a daemon's jobs: machines, devices, warm models")
    workers.add_argument("--server", default=f"ws://127.0.0.1:{DEFAULT_PORT}", help="daemon URL")
    workers.add_argument("--token", help="the daemon's token (default: read from this user's config)")
    workers.set_defaults(run=_workers)

    models = commands.add_parser("models", help="list the models available on this machine")
    models.add_argument("--model", action="append", default=[], metavar="SOURCE")
    models.add_argument("--models-dir", action="append", type=Path, default=[])
    models.set_defaults(run=_models)
    return parser


def _add_upscale_arguments(generate: argparse.ArgumentParser) -> None:
    """`generate upscale | refine-upscale`: the factor, refine-upscale's upscaler, the tile size."""
    generate.add_argument("--factor", type=float, help="upscale factor, 1-16, any number (upscale, refine-upscale)")
    generate.add_argument(
        "--upscaler", help="refine-upscale: the upscaler model id before the diffusion pass (default: the daemon's)"
    )
    generate.add_argument("--tile", type=int, help="upscaler tile side in input pixels (default: the daemon's)")


def _serve(args: argparse.Namespace) -> int:
    from underpaint.daemon.config import DaemonConfig, config_dir, data_dir
    from underpaint.daemon.server import Daemon, run_forever
    from underpaint.engines.registry import build_engines
    from underpaint.errors import JobError, StartupError

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    logging.getLogger("websockets").setLevel(max(logging.WARNING, logging.getLogger().level))
    outputs = None if args.no_outputs else (args.outputs or data_dir() / "outputs")
    config = DaemonConfig(
        host=args.host, port=args.port, token_file=args.token_file or config_dir() / "token", outputs=outputs
    )
    _return_large_buffers_to_the_system()
    if args.workers == "ray":
        return _serve_on_ray(args, config)
    try:
        for source in args.model:
            _check_model_source(source)
        engines, default_model = build_engines(args.engine, args.model, args.models_dir, args.device)
        daemon = Daemon(config, engines, default_model)
        run_forever(daemon)
    except (JobError, StartupError) as error:
        print(f"underpaint: {error}", file=sys.stderr)
        return 2
    except ImportError as error:
        print(f"underpaint: the diffusion engine needs torch and diffusers ({error}); see README", file=sys.stderr)
        return 2
    return 0


def _serve_on_ray(args: argparse.Namespace, config: DaemonConfig) -> int:
    """Models are checked on every GPU machine of the cluster, not here: this one may have none."""
    from underpaint.daemon.server import Daemon, run_forever
    from underpaint.errors import StartupError

    try:
        from underpaint.scaleout.backend import RayOptions, RayWorkers, ScaleoutError
        from underpaint.scaleout.replica import EngineSettings
    except ImportError as error:
        print(f"underpaint: --workers ray needs Ray Serve: pip install 'underpaint[ray]' ({error})", file=sys.stderr)
        return 2
    settings = EngineSettings(
        engine=args.engine,
        models=tuple(args.model),
        models_dirs=tuple(str(folder) for folder in args.models_dir),
        device=args.device,
        max_models=args.warm_models,
    )
    workers = RayWorkers(settings, RayOptions(address=args.ray_address))
    try:
        workers.start()
        run_forever(Daemon(config, workers.engines, workers.default_model, workers=workers))
    except (ScaleoutError, StartupError) as error:
        print(f"underpaint: {error}", file=sys.stderr)
        return 2
    finally:
        workers.close()
    return 0


def _workers(args: argparse.Namespace) -> int:
    from underpaint.daemon.config import config_dir
    from underpaint_protocol.client import DaemonError, NotConnected, UnderpaintClient

    token_file = config_dir() / "token"
    token = args.token or (token_file.read_text(encoding="utf-8").strip() if token_file.is_file() else None)
    client = UnderpaintClient(args.server, token=token, client_name="underpaint-cli", reconnect=False)
    try:
        welcome = client.connect(timeout=10, fail_fast=True)
    except (NotConnected, DaemonError) as error:
        print(f"underpaint: {error}. Is the daemon running? Start it with `underpaint serve`.", file=sys.stderr)
        return 1
    finally:
        client.close()
    workers = welcome.get("workers")
    if workers is None:
        print("underpaint: this daemon does not report its workers", file=sys.stderr)
        return 1
    rows = [(w["where"], w["device"], "busy" if w["busy"] else "idle", ", ".join(w["models"]) or "-") for w in workers]
    header = ("WHERE", "DEVICE", "STATE", "WARM MODELS")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(3)]
    for row in [header, *rows]:
        print(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:<{widths[2]}}  {row[3]}")
    return 0


def _return_large_buffers_to_the_system() -> None:
    """Images come and go in megabytes: glibc would raise its mmap threshold after the first frees
    and keep later buffers in its heap for good, so a daemon that served a burst would stay large.
    A fixed threshold makes every buffer over 256 KB go back to the system when freed."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if sys.platform != "linux" or name is None:
        return
    try:
        ctypes.CDLL(name).mallopt(-3, 256 * 1024)  # M_MMAP_THRESHOLD (glibc)
    except (OSError, AttributeError):
        return  # not glibc (e.g. musl): nothing to tune


WEIGHT_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")


def _check_model_source(source: str) -> None:
    """Refuse a --model that cannot load, in one line, before anything starts: a pickle checkpoint
    (with how to convert it), a file or folder that is not there, a folder without weights."""
    from underpaint.errors import StartupError

    base = source.split("#", 1)[0]
    path = Path(base).expanduser()
    suffix = path.suffix.lower()
    if not (base.startswith((".", "/", "~")) or suffix in WEIGHT_SUFFIXES or path.exists()):
        return  # tiny-random or a Hugging Face repo id
    if suffix in WEIGHT_SUFFIXES and suffix != ".safetensors":
        from underpaint.engines.diffusion.registry import parse_source  # imports torch: only on this path

        raise StartupError(f"--model {base}: {parse_source(source).notes[0]}")
    if not path.exists():
        raise StartupError(f"--model {base}: no such file or folder")
    if path.is_dir():
        weights = [p for p in path.rglob("*") if p.suffix.lower() in WEIGHT_SUFFIXES]
        if not any(p.suffix.lower() == ".safetensors" for p in weights):
            what = f"only pickle weights ({weights[0].name})" if weights else "no weights"
            raise StartupError(
                f"--model {base}: the folder has {what}; give a diffusers folder whose unet, vae and text "
                "encoders are .safetensors, or a single .safetensors checkpoint"
            )


def _generate(args: argparse.Namespace) -> int:
    from underpaint.generate import GenerateError, run_generate

    try:
        run_generate(args)
    except GenerateError as error:
        print(f"underpaint: {error}", file=sys.stderr)
        return 1
    return 0


def _token(args: argparse.Namespace) -> int:
    from underpaint.daemon.auth import load_or_create_token
    from underpaint.daemon.config import config_dir

    print(load_or_create_token(args.token_file or config_dir() / "token"))
    return 0


def _install_plugin(args: argparse.Namespace) -> int:
    import importlib

    from underpaint.install.bundle import InstallError

    host = importlib.import_module(f"underpaint.install.{args.host}")
    try:
        where = host.install(args.dest, args.zip, args.host_version)
    except InstallError as error:
        print(f"underpaint: {error}", file=sys.stderr)
        return 1
    print(f"installed the {args.host} plugin: {where}")
    return 0


def _models(args: argparse.Namespace) -> int:
    from underpaint.engines.classical import ClassicalEngine

    rows = [
        (info.id, info.family, ", ".join(m.value for m in info.modes), info.description)
        for info in ClassicalEngine().models()
    ]
    try:
        from underpaint.engines.diffusion import TINY_ID, list_local_models
    except ImportError as error:
        print(f"(diffusion engine unavailable: {error})", file=sys.stderr)
    else:
        sources = args.model if TINY_ID in args.model else [*args.model, TINY_ID]  # the built-in one is always there
        for info in list_local_models(sources, args.models_dir):
            rows.append((info.id, info.family, ", ".join(m.value for m in info.modes), info.description))
    widths = [max(len(row[i]) for row in [("MODEL", "FAMILY", "MODES", ""), *rows]) for i in range(3)]
    print(f"{'MODEL':<{widths[0]}}  {'FAMILY':<{widths[1]}}  {'MODES':<{widths[2]}}  DESCRIPTION")
    for row in rows:
        print(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:<{widths[2]}}  {row[3]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
