"""The kinds of job a host can ask for; shared by the canvas pipeline, the engines and the daemon."""

from __future__ import annotations

from enum import Enum


class Mode(str, Enum):
    """What the user asked for. The value is the wire name."""

    TXT2IMG = "txt2img"
    IMG2IMG = "img2img"
    INPAINT = "inpaint"
    OUTPAINT = "outpaint"
    UPSCALE = "upscale"
    REFINE_UPSCALE = "refine_upscale"
    RESTORE = "restore"


UPSCALE_MODES = (Mode.UPSCALE, Mode.REFINE_UPSCALE)
"""Modes whose result is the scaled region, in the scaled canvas, possibly in tiles."""
