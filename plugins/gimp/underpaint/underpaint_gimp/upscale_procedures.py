"""The PDB procedures ``underpaint-upscale``, ``underpaint-refine-upscale`` and ``underpaint-restore``.

Run like the other mode procedures (``procedures.run_job``): to completion, from the Filters menu, batch
mode or scripts. An upscale scales the image first (one undo group) and adds the result as one new
layer: the whole image, or the selection's region over that region of the scaled image. Restore
repaints the faces in the selection. Requests come from ``underpaint_protocol.upscale_panel``, as in
the panel.
"""

from __future__ import annotations

from typing import Any

import gi

gi.require_version("Gimp", "3.0")
from gi.repository import Gimp, GObject  # noqa: E402

from underpaint_protocol.controller import Request, UserError  # noqa: E402
from underpaint_protocol.panel import SEED_MAX, parse_seed  # noqa: E402
from underpaint_protocol.upscale_panel import (  # noqa: E402
    FACTOR_DEFAULT,
    FACTOR_MAX,
    FACTOR_MIN,
    REFINE_STRENGTH_DEFAULT,
    TIPS,
    upscale_request,
)

PROCEDURES = {
    "underpaint-upscale": ("upscale", "_Upscale…", TIPS["upscale"]),
    "underpaint-refine-upscale": ("refine_upscale", "_Refine-upscale…", TIPS["refine_upscale"]),
    "underpaint-restore": ("restore", "Re_store faces…", TIPS["restore"]),
}
"""Procedure name -> (protocol mode, menu label, blurb)."""
RW = GObject.ParamFlags.READWRITE


def add_arguments(procedure: Gimp.Procedure, mode: str) -> None:
    """The mode's own arguments; ``procedures.add_connection_arguments`` adds server, token, timeout."""
    if mode in ("upscale", "refine_upscale"):
        procedure.add_double_argument("factor", "_Factor", TIPS["factor"], FACTOR_MIN, FACTOR_MAX, FACTOR_DEFAULT, RW)
    model_blurb = {
        "upscale": "Upscaler model id; empty: the daemon's default",
        "refine_upscale": "Diffusion model id for the refine pass; empty: the daemon's default",
        "restore": "Restoration model id; empty: the daemon's default",
    }[mode]
    procedure.add_string_argument("model", "_Model", model_blurb, "", RW)
    if mode == "refine_upscale":
        procedure.add_string_argument("upscaler", "_Upscaler", "Upscaler model id; empty: the daemon's default", "", RW)
        procedure.add_string_argument("prompt", "_Prompt", "What every tile shows", "", RW)
        procedure.add_double_argument(
            "strength",
            "_Strength (0..1)",
            "How much the refine pass repaints, as a fraction 0..1 (the panel shows it as 0-100%)",
            0.0,
            1.0,
            REFINE_STRENGTH_DEFAULT / 100,
            RW,
        )
        procedure.add_string_argument(
            "seed", "S_eed", f"A whole number 0..{SEED_MAX}; empty or 'random': a new random seed", "random", RW
        )
        procedure.add_int_argument("steps", "Ste_ps", TIPS["steps"], 0, 150, 0, RW)


def request_from_config(config: Any, mode: str) -> Request:
    def get(name: str) -> Any:
        return config.get_property(name)

    model = str(get("model") or "") or None
    if mode == "restore":
        return upscale_request("restore", restorer=model)
    if mode == "upscale":
        return upscale_request("upscale", factor=float(get("factor")), upscaler=model)
    try:
        seed = parse_seed(str(get("seed") or ""))
    except ValueError as error:
        raise UserError(str(error)) from None
    return upscale_request(
        "refine_upscale",
        factor=float(get("factor")),
        upscaler=str(get("upscaler") or "") or None,
        refiner=model,
        strength_percent=float(get("strength")) * 100,
        prompt=str(get("prompt") or ""),
        seed=seed,
        steps=int(get("steps")),
    )
