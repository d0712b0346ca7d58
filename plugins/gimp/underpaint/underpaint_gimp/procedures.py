"""The PDB procedures: the panel, and one scriptable procedure per mode.

``underpaint-inpaint``, ``underpaint-outpaint``, ``underpaint-img2img`` and ``underpaint-txt2img``
run a job to completion and add its layers; they work the same from the Filters menu (a dialog asks
for the arguments), from batch mode and from other plug-ins or scripts (NONINTERACTIVE).
``underpaint-segment`` selects an object (a box, points, the rough selection or words) and makes
it the selection by GIMP's own combine modes. ``underpaint-upscale``, ``underpaint-refine-upscale``
and ``underpaint-restore`` live in ``upscale_procedures``. ``underpaint-panel`` opens the non-modal panel.
"""

from __future__ import annotations

import sys
from typing import Any

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp, GLib, GObject  # noqa: E402

from underpaint_protocol.constants import DEFAULT_URL  # noqa: E402
from underpaint_protocol.controller import Controller, Request, UserError, WorkQueue  # noqa: E402
from underpaint_protocol.guides import CONTROL_KINDS, ControlLayer  # noqa: E402
from underpaint_protocol.guides_panel import PREPROCESSED_KINDS, STRENGTH_MAX_PERCENT  # noqa: E402
from underpaint_protocol.panel import SEED_MAX, parse_seed  # noqa: E402
from underpaint_protocol.segment import SegmentRequest  # noqa: E402

from . import settings as saved  # noqa: E402
from . import upscale_procedures as upscale  # noqa: E402
from .canvas import GimpCanvas  # noqa: E402
from .model import ImageHost, make_controller, run_to_end  # noqa: E402
from .segment import PROCEDURE as SEGMENT  # noqa: E402
from .segment import add_segment_arguments  # noqa: E402
from .segment import request_from_config as segment_request  # noqa: E402

PANEL = "underpaint-panel"
MODES = {
    "underpaint-inpaint": ("inpaint", "_Inpaint selection…", "Repaint the selected area from the prompt"),
    "underpaint-outpaint": ("outpaint", "_Expand canvas (outpaint)…", "Grow the canvas and paint the new border"),
    "underpaint-img2img": ("img2img", "Image to image…", "Repaint the selection (or the whole image) from the prompt"),
    "underpaint-txt2img": ("txt2img", "_Text to image…", "Paint a new layer from the prompt alone"),
}
UPSCALE_MODES = {mode for mode, _, _ in upscale.PROCEDURES.values()}
MENU = "<Image>/Filters/underpaint"
RW = GObject.ParamFlags.READWRITE
MAX_SIDE = 32768


def _config_dir() -> str:
    return str(Gimp.directory())


def load_settings() -> saved.Settings:
    return saved.load(saved.settings_path(_config_dir()))


def store_settings(settings: saved.Settings) -> None:
    try:
        saved.save(saved.settings_path(_config_dir()), settings)
    except OSError as error:
        Gimp.message(f"underpaint: could not save the settings: {error}")


def gimp_version() -> str:
    try:
        return str(Gimp.version())
    except Exception:
        return ""


def add_job_arguments(procedure: Gimp.Procedure, mode: str) -> None:
    procedure.add_string_argument("prompt", "_Prompt", "What to paint", "", RW)
    procedure.add_string_argument("negative-prompt", "_Negative prompt", "What to avoid", "", RW)
    default_strength = 0.6 if mode == "img2img" else 1.0
    procedure.add_double_argument(
        "strength",
        "_Strength (0..1)",
        "How much to repaint as a fraction 0..1 (the panel shows it as 0-100%): below 1 keeps more of the original",
        0.0,
        1.0,
        default_strength,
        RW,
    )
    # A string: GIMP's int arguments stop at 2^31-1, the daemon's seeds go to 2^32-1.
    procedure.add_string_argument(
        "seed", "S_eed", f"A whole number 0..{SEED_MAX}; empty or 'random': a new random seed", "random", RW
    )
    procedure.add_int_argument("batch", "_Batch", "How many results (one layer each, grouped)", 1, 16, 1, RW)
    procedure.add_string_argument("model", "_Model", "Model id; empty: the daemon's default", "", RW)
    procedure.add_int_argument("steps", "Ste_ps", "Denoising steps 1..200; 0: the model's default", 0, 200, 0, RW)
    procedure.add_double_argument("guidance", "_Guidance", "Guidance; -1: the model's default", -1.0, 50.0, -1.0, RW)
    if mode == "outpaint":
        for side in ("left", "top", "right", "bottom"):
            default = 256 if side == "right" else 0
            procedure.add_int_argument(
                side, f"_{side.title()}", f"Pixels to add on the {side}", 0, MAX_SIDE, default, RW
            )
    add_control_arguments(procedure)
    add_connection_arguments(procedure)


def add_control_arguments(procedure: Gimp.Procedure) -> None:
    """One control layer for scripts (the panel takes several): a layer, what it shows, how strongly."""
    procedure.add_drawable_argument(
        "control-layer",
        "_Control layer",
        "A layer (hidden or not) whose own pixels guide the job through the model's ControlNet; none: no control",
        True,
        RW,
    )
    procedure.add_string_argument(
        "control-kind",
        "Control _kind",
        f"What the control layer shows: {', '.join(CONTROL_KINDS)} (it is preprocessed as the panel does: "
        f"{', '.join(PREPROCESSED_KINDS)} from a picture)",
        "canny",
        RW,
    )
    procedure.add_double_argument(
        "control-strength",
        "Control _strength",
        f"How strongly the control layer guides the job, 0..{STRENGTH_MAX_PERCENT / 100:g}",
        0.0,
        STRENGTH_MAX_PERCENT / 100,
        1.0,
        RW,
    )


def controls_from_config(config: Any) -> tuple[ControlLayer, ...]:
    """The control layer argument as the job's control (none when no layer is given)."""
    layer = config.get_property("control-layer")
    if layer is None:
        return ()
    kind = str(config.get_property("control-kind") or "").strip()
    if kind not in CONTROL_KINDS:
        raise UserError(f"control-kind: {kind!r} is not one of {', '.join(CONTROL_KINDS)}")
    strength = float(config.get_property("control-strength"))
    return (ControlLayer(layer.get_id(), kind, strength, preprocess=kind in PREPROCESSED_KINDS),)


def add_connection_arguments(procedure: Gimp.Procedure) -> None:
    procedure.add_string_argument(
        "server", "Se_rver", f"Daemon address; empty: the one saved by the panel (default {DEFAULT_URL})", "", RW
    )
    procedure.add_string_argument("token", "_Token", "Daemon token; empty: the saved one", "", RW)
    procedure.add_double_argument("timeout", "Time_out", "Seconds to wait for the job", 1.0, 86400.0, 600.0, RW)


def request_from_config(config: Any, mode: str) -> Request:
    def get(name: str) -> Any:
        return config.get_property(name)

    try:
        seed = parse_seed(str(get("seed") or ""))
    except ValueError as error:
        raise UserError(str(error)) from None
    steps = int(get("steps"))
    guidance = float(get("guidance"))
    extend = None
    if mode == "outpaint":
        extend = (int(get("left")), int(get("top")), int(get("right")), int(get("bottom")))
    return Request(
        prompt=str(get("prompt") or ""),
        negative_prompt=str(get("negative-prompt") or ""),
        strength=float(get("strength")),
        seed=seed,
        batch=int(get("batch")),
        model=str(get("model") or "") or None,
        mode=mode,
        extend=extend,
        steps=steps or None,
        guidance=None if guidance < 0 else guidance,
        controls=controls_from_config(config),
    )


def show_progress(controller: Controller) -> None:
    """Batch/menu runs: GIMP's progress bar follows the job."""
    if controller.jobs:
        job = controller.jobs[-1]
        Gimp.progress_set_text(f"underpaint: {job.describe()}")
        Gimp.progress_update(job.fraction)


def run_job(procedure: Gimp.Procedure, run_mode: Gimp.RunMode, image: Gimp.Image, config: Any, mode: str) -> Any:
    if run_mode == Gimp.RunMode.INTERACTIVE:
        gi.require_version("GimpUi", "3.0")
        from gi.repository import GimpUi

        GimpUi.init(procedure.get_name())
        dialog = GimpUi.ProcedureDialog(procedure=procedure, config=config)
        dialog.fill(None)
        accepted = dialog.run()
        dialog.destroy()
        if not accepted:
            return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, GLib.Error())
    settings = load_settings()
    server = str(config.get_property("server") or "") or settings.server
    token = str(config.get_property("token") or "") or settings.token or saved.daemon_token()
    timeout = float(config.get_property("timeout"))
    work = WorkQueue()
    canvas = GimpCanvas(image)
    controller = make_controller(ImageHost(canvas, show_progress), work.post, gimp_version())
    Gimp.progress_init(f"underpaint: {mode}")
    try:
        request: Request | SegmentRequest
        if mode == "segment":
            request = segment_request(config, canvas)
        elif mode in UPSCALE_MODES:
            request = upscale.request_from_config(config, mode)
        else:
            request = request_from_config(config, mode)
        job = run_to_end(controller, work, server, token, request, timeout)
        if job.state == "cancelled":
            return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, GLib.Error())
    except UserError as error:
        return _error(procedure, run_mode, str(error))
    except Exception as error:  # a bug: still a message, not a traceback dialog
        return _error(procedure, run_mode, f"underpaint: unexpected {type(error).__name__}: {error}")
    finally:
        controller.cancel()
        controller.close()
        Gimp.progress_end()
    return procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, GLib.Error())


def _error(procedure: Gimp.Procedure, run_mode: Gimp.RunMode, text: str) -> Any:
    if not text.startswith("underpaint"):
        text = f"underpaint: {text}"
    if run_mode == Gimp.RunMode.INTERACTIVE:
        Gimp.message(text)
    print(text, file=sys.stderr)
    return procedure.new_return_values(Gimp.PDBStatusType.EXECUTION_ERROR, GLib.Error(text))


def run_panel(procedure: Gimp.Procedure, run_mode: Gimp.RunMode, image: Gimp.Image, config: Any) -> Any:
    if run_mode != Gimp.RunMode.INTERACTIVE:
        return _error(procedure, run_mode, "the panel is interactive; scripts call underpaint-inpaint and friends")
    from .panel import run_panel_window

    try:
        run_panel_window(image, load_settings, store_settings, gimp_version())
    except Exception as error:
        return _error(procedure, run_mode, f"underpaint: the panel failed: {type(error).__name__}: {error}")
    return procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, GLib.Error())


class UnderpaintPlugIn(Gimp.PlugIn):
    def do_query_procedures(self) -> list[str]:
        return [PANEL, *MODES, SEGMENT, *upscale.PROCEDURES]

    def do_set_i18n(self, name: str) -> bool:
        return False

    def do_create_procedure(self, name: str) -> Gimp.Procedure:
        Gegl.init(None)
        if name == PANEL:
            procedure = Gimp.ImageProcedure.new(
                self, name, Gimp.PDBProcType.PLUGIN, lambda p, m, i, d, c, data: run_panel(p, m, i, c), None
            )
            procedure.set_menu_label("_Panel…")
            procedure.set_documentation(
                "underpaint panel",
                "A panel that stays open: prompt, model, strength, seed, batch; Generate follows the selection "
                "(inside: inpaint, none: img2img/txt2img), Expand outpaints. Needs `underpaint serve`.",
                name,
            )
        elif name == SEGMENT:
            procedure = Gimp.ImageProcedure.new(
                self, name, Gimp.PDBProcType.PLUGIN, lambda p, m, i, d, c, data: run_job(p, m, i, c, "segment"), None
            )
            procedure.set_menu_label("_Select object…")
            procedure.set_documentation(
                "Select an object",
                "Turn a box (the selection's bounds or an x,y,w,h argument), clicked points (the anchors of the "
                "paths 'add points' / 'remove points'), the rough selection or words into the object's soft "
                "selection with the underpaint daemon, combined with the current selection by replace, add, "
                "subtract or intersect (one undo step). Runs to completion; scriptable non-interactively.",
                name,
            )
            add_segment_arguments(procedure, RW)
            add_connection_arguments(procedure)
        else:
            mode, label, blurb = MODES[name] if name in MODES else upscale.PROCEDURES[name]

            def run(p: Any, run_mode: Any, image: Any, drawables: Any, config: Any, data: Any, mode: str = mode) -> Any:
                return run_job(p, run_mode, image, config, mode)

            procedure = Gimp.ImageProcedure.new(self, name, Gimp.PDBProcType.PLUGIN, run, None)
            procedure.set_menu_label(label)
            procedure.set_documentation(
                blurb,
                f"{blurb} with the underpaint daemon (`underpaint serve`), then add the result as new layers "
                "above the active layer (a group per job when batch > 1), at their exact place. Runs to "
                "completion; scriptable non-interactively.",
                name,
            )
            if name in MODES:
                add_job_arguments(procedure, mode)
            else:
                upscale.add_arguments(procedure, mode)
                add_connection_arguments(procedure)
        procedure.set_sensitivity_mask(  # every procedure: with or without drawables selected
            Gimp.ProcedureSensitivityMask.DRAWABLE
            | Gimp.ProcedureSensitivityMask.DRAWABLES
            | Gimp.ProcedureSensitivityMask.NO_DRAWABLES
        )
        procedure.set_image_types("RGB*")
        procedure.add_menu_path(MENU)
        procedure.set_attribution("underpaint", "underpaint contributors", "2026")
        return procedure
