"""The `underpaint` command: run the daemon, talk to it, and look after models and plugins."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from underpaint import __version__, library_cli
from underpaint_protocol import DEFAULT_PORT

if TYPE_CHECKING:
    from underpaint.daemon.config import DaemonConfig
    from underpaint.engines.interrogate import Interrogator


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
    serve.add_argument(
        "--live-decoder",
        action="append",
        default=[],
        metavar="SOURCE",
        help="a fast latent decoder (TAESD, diffusers AutoencoderTiny) for live frames only: madebyollin/taesd "
        "(SD1.5/SD2), madebyollin/taesdxl (SDXL), a diffusers folder or tiny-random; the family comes from the "
        "name (xl: SDXL) or SOURCE#family=sd1|sd2|sdxl; one per family, repeatable",
    )
    serve.add_argument(
        "--segment-model",
        action="append",
        default=[],
        metavar="SOURCE",
        help="model that selects objects: a SAM, SAM 2 or CLIPSeg Hugging Face id or folder (safetensors), "
        "CLIPSEG+SAM for words drawn by SAM, or tiny-random-sam / tiny-random-clipseg; repeatable",
    )
    _add_guide_sources(serve)
    serve.add_argument("--device", default="auto", choices=["auto", "cuda", "mps", "cpu"])
    serve.add_argument(
        "--interrogator",
        default="default",
        metavar="MODELS",
        help="what answers `interrogate` (a prompt from an image): default (BLIP base + CLIP ViT-B/32, loaded on "
        "first use), CAPTIONER,RANKER (HF ids or folders), tiny-random, or none",
    )
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
        "mode",
        nargs="?",
        choices=["txt2img", "img2img", "inpaint", "outpaint", "upscale", "refine-upscale", "restore"],
        help="(with --from: its mode)",
    )
    generate.add_argument(
        "--from",
        dest="source",
        type=Path,
        metavar="IMAGE.png",
        help="rebuild the job that made this PNG (ours, A1111's or ComfyUI's); other options override it",
    )
    generate.add_argument("--server", default=f"ws://127.0.0.1:{DEFAULT_PORT}", help="daemon URL")
    generate.add_argument("--token", help="the daemon's token (default: read from this user's config)")
    generate.add_argument(
        "--client-id", help="act as this client identity (a plugin's), so the result shows in its history"
    )
    generate.add_argument("--image", type=Path, help="input image (the canvas)")
    generate.add_argument("--mask", type=Path, help="selection as a grayscale image (white = selected)")
    generate.add_argument("--width", type=int, help="canvas width for txt2img without --image (default 512)")
    generate.add_argument("--height", type=int, help="canvas height for txt2img without --image (default 512)")
    generate.add_argument("--prompt")
    generate.add_argument("--negative", help="negative prompt")
    generate.add_argument("--model", help="model id (default: the daemon's default)")
    generate.add_argument("--style", help="apply one of the daemon's styles (see `underpaint styles`)")
    generate.add_argument("--strength", type=float)
    generate.add_argument("--steps", type=int)
    generate.add_argument("--guidance", type=float)
    generate.add_argument("--seed", type=int)
    generate.add_argument("--batch", type=int)
    generate.add_argument("--extend", help="outpaint extents in pixels: LEFT,TOP,RIGHT,BOTTOM")
    generate.add_argument("--out", type=Path, required=True, help="result composited over the input, full canvas")
    generate.add_argument("--layer-out", type=Path, help="the raw layer (PNG) with its placement (JSON beside it)")
    _add_upscale_arguments(generate)
    generate.add_argument(
        "--control",
        action="append",
        default=[],
        metavar="KIND:IMAGE[:STRENGTH[:START-END]]",
        help="a control layer: an image the canvas's size (e.g. canny:edges.png:0.8:0-0.6); repeatable",
    )
    generate.add_argument(
        "--preprocess", action="store_true", help="let the daemon make each control's map from a plain picture"
    )
    generate.add_argument(
        "--reference", action="append", default=[], metavar="IMAGE[:WEIGHT]", help="a reference image (IP-Adapter)"
    )
    generate.add_argument(
        "--reference-take", choices=["style", "composition", "both"], default="both", help="what references give"
    )
    generate.set_defaults(run=_generate)
    _add_segment(commands)

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
    models.add_argument("--segment-model", action="append", default=[], metavar="SOURCE")
    _add_guide_sources(models)
    models.set_defaults(run=_models)
    library_cli.add_commands(commands, f"ws://127.0.0.1:{DEFAULT_PORT}")
    return parser


def _add_upscale_arguments(generate: argparse.ArgumentParser) -> None:
    """`generate upscale | refine-upscale`: the factor, refine-upscale's upscaler, the tile size."""
    generate.add_argument("--factor", type=float, help="upscale factor, 1-16, any number (upscale, refine-upscale)")
    generate.add_argument(
        "--upscaler", help="refine-upscale: the upscaler model id before the diffusion pass (default: the daemon's)"
    )
    generate.add_argument("--tile", type=int, help="upscaler tile side in input pixels (default: the daemon's)")


def _add_guide_sources(command: argparse.ArgumentParser) -> None:
    """ControlNets, IP-Adapters and the depth model a daemon offers (``serve``) or would offer (``models``)."""
    command.add_argument(
        "--control",
        action="append",
        default=[],
        metavar="KIND=SOURCE",
        help="a ControlNet for control layers of KIND (scribble, lineart, softedge, canny, depth, pose, tile): "
        "a Hugging Face repo id, a diffusers folder, a .safetensors file, or tiny-random; repeatable",
    )
    command.add_argument(
        "--ip-adapter",
        action="append",
        default=[],
        metavar="FILE",
        help="IP-Adapter weights for reference images: a .safetensors file with image_encoder/ beside it, "
        "or REPO/SUBFOLDER/FILE.safetensors on Hugging Face; one per model family",
    )
    command.add_argument(
        "--depth-model", metavar="SOURCE", help="depth model (HF id or folder) that makes depth maps from pictures"
    )


def _serve(args: argparse.Namespace) -> int:
    from underpaint.daemon.config import DaemonConfig
    from underpaint.daemon.server import Daemon, run_forever
    from underpaint.engines.registry import build_engines
    from underpaint.errors import JobError, StartupError
    from underpaint.folders import config_dir, data_dir

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    logging.getLogger("websockets").setLevel(max(logging.WARNING, logging.getLogger().level))
    outputs = None if args.no_outputs else (args.outputs or data_dir() / "outputs")
    config = DaemonConfig(
        host=args.host, port=args.port, token_file=args.token_file or config_dir() / "token", outputs=outputs
    )
    if args.workers == "ray":
        return _serve_on_ray(args, config)
    try:
        for source in args.model:
            _check_model_source(source)
        engines, default_model = build_engines(
            args.engine,
            args.model,
            args.models_dir,
            args.device,
            segment_models=args.segment_model,
            guides={
                "controls": args.control,
                "adapters": args.ip_adapter,
                "depth_model": args.depth_model,
                "live_decoders": args.live_decoder,
            },
        )
        daemon = Daemon(config, engines, default_model, interrogator=_interrogator(args))
        run_forever(daemon)
    except (JobError, StartupError, ValueError) as error:
        print(f"underpaint: {error}", file=sys.stderr)
        return 2
    except ImportError as error:
        print(f"underpaint: the diffusion engine needs torch and diffusers ({error}); see README", file=sys.stderr)
        return 2
    return 0


def _interrogator(args: argparse.Namespace) -> Interrogator | None:
    from underpaint.engines.interrogate import Interrogator

    return None if args.interrogator == "none" else Interrogator.from_option(args.interrogator, args.device)


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
        controls=tuple(args.control),
        adapters=tuple(args.ip_adapter),
        depth_model=args.depth_model,
        live_decoders=tuple(args.live_decoder),
    )
    workers = RayWorkers(settings, RayOptions(address=args.ray_address))
    try:
        workers.start()
        # interrogations are not jobs: they run in this process (loaded on first use), as without Ray
        interrogator = _interrogator(args)
        run_forever(Daemon(config, workers.engines, workers.default_model, workers=workers, interrogator=interrogator))
    except (ScaleoutError, StartupError) as error:
        print(f"underpaint: {error}", file=sys.stderr)
        return 2
    finally:
        workers.close()
    return 0


def _workers(args: argparse.Namespace) -> int:
    from underpaint.folders import config_dir
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


WEIGHT_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")


def _check_model_source(source: str) -> None:
    """Refuse a --model that cannot load, in one line, before anything starts: a pickle checkpoint
    (with how to convert it), a file or folder that is not there, a folder without weights."""
    from underpaint.engines.registry import WEIGHT_SCHEMES
    from underpaint.errors import StartupError

    base = source.split("#", 1)[0]
    scheme = next((scheme for scheme in WEIGHT_SCHEMES if base.startswith(scheme)), None)
    if scheme is not None:  # a spandrel model's file: its loader reads .pth without running pickles
        if not Path(base.removeprefix(scheme)).expanduser().is_file():
            raise StartupError(f"--model {base}: no such file")
        return
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


def _add_segment(commands: Any) -> None:
    segment = commands.add_parser("segment", help="select an object in an image through a daemon, like a plugin")
    segment.add_argument("--server", default=f"ws://127.0.0.1:{DEFAULT_PORT}", help="daemon URL")
    segment.add_argument("--token", help="the daemon's token (default: read from this user's config)")
    segment.add_argument("--client-id", help="act as this client identity (a plugin's)")
    segment.add_argument("--image", type=Path, required=True, help="the image to select in")
    segment.add_argument("--box", metavar="X,Y,W,H", help="a box around the object")
    segment.add_argument("--point", action="append", default=[], metavar="X,Y", help="a click on the object")
    segment.add_argument(
        "--negative-point", action="append", default=[], metavar="X,Y", help="a click on what is not wanted"
    )
    segment.add_argument("--text", metavar="PHRASE", help="what to select, in words (a CLIPSeg model)")
    segment.add_argument("--mask", type=Path, help="a rough selection to refine (grayscale, white = selected)")
    segment.add_argument("--model", help="segment model id (default: the first that takes these inputs)")
    segment.add_argument("--threshold", type=float, help="0..1, how sure the model must be")
    segment.add_argument("--soften", type=int, help="width of the soft edge in pixels (0: hard)")
    segment.add_argument("--out", type=Path, required=True, help="the mask at the image's size (white = selected)")
    segment.set_defaults(run=_segment)


def _segment(args: argparse.Namespace) -> int:
    from underpaint.segment import main_segment

    return main_segment(args)


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
    from underpaint.folders import config_dir

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
        (info.id, info.family, ", ".join(m.value for m in info.modes), "-", info.description)
        for info in ClassicalEngine().models()
    ]
    try:
        from underpaint.engines.diffusion import TINY_ID, list_local_models
        from underpaint.engines.diffusion.controls import guides_by_family
    except ImportError as error:
        print(f"(diffusion engine unavailable: {error})", file=sys.stderr)
    else:
        sources = args.model if TINY_ID in args.model else [*args.model, TINY_ID]  # the built-in one is always there
        try:
            kinds, adapters = guides_by_family(args.control, args.ip_adapter)
        except ValueError as error:
            print(f"underpaint: {error}", file=sys.stderr)
            return 2
        for info in list_local_models(sources, args.models_dir):
            guides = [*kinds.get(info.family, []), *(["references"] if info.family in adapters else [])]
            modes = ", ".join(m.value for m in info.modes)
            rows.append((info.id, info.family, modes, ", ".join(guides) or "-", info.description))
    rows += [
        (model, family, modes, "-", text) for model, family, modes, text in _segment_model_rows(args.segment_model)
    ]
    header = ("MODEL", "FAMILY", "MODES", "CONTROLS", "DESCRIPTION")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
    for row in [header, *rows]:
        print("  ".join(f"{cell:<{width}}" for cell, width in zip(row, widths, strict=False)) + "  " + row[4])
    return 0


def _segment_model_rows(sources: list[str]) -> list[tuple[str, str, str, str]]:
    """The models that select objects: refine always, the tiny ones, and the --segment-model sources."""
    from underpaint.engines.segment.classical import RefineEngine

    infos = RefineEngine().models()
    try:
        from underpaint.engines.segment.learned import LearnedSegmentEngine
        from underpaint.engines.segment.tiny import TINY_IDS
    except ImportError as error:
        print(f"(learned segment models unavailable: {error})", file=sys.stderr)
    else:
        try:
            infos += LearnedSegmentEngine([*TINY_IDS, *(s for s in sources if s not in TINY_IDS)]).models()
        except ValueError as error:
            print(f"underpaint: --segment-model {error}", file=sys.stderr)
    return [(info.id, info.family, f"segment ({', '.join(info.segment_inputs)})", info.description) for info in infos]


if __name__ == "__main__":
    sys.exit(main())
