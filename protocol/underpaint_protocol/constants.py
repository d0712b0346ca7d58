"""Facts of the protocol that every peer must agree on, defined once.

Standard library only: shipped inside the host plugins, imported by the daemon and the message
definitions, and exported into ``schema.json`` (and from there into the generated TypeScript types).
"""

from __future__ import annotations

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7423
"""Our own port: 7860 belongs to A1111, Forge and most Gradio apps, 8188 to ComfyUI, 9090 to
InvokeAI, 8080 to IOPaint, 7865 to Fooocus; many of our users run one of those beside us."""
DEFAULT_URL = f"ws://{DEFAULT_HOST}:{DEFAULT_PORT}"

RAW_FORMATS: dict[str, int] = {"rgba8": 4, "bgra8": 4, "gray8": 1}
"""Uncompressed image formats and their bytes per pixel."""
IMAGE_FORMATS: tuple[str, ...] = ("rgba8", "bgra8", "gray8", "png")
"""Formats an attachment may travel in."""
RESULT_FORMATS: tuple[str, ...] = ("rgba8", "bgra8", "png")
"""Formats a client may ask its results in."""

JOB_STATES: tuple[str, ...] = ("queued", "running", "finished", "failed", "cancelled")
TERMINAL_STATES: tuple[str, ...] = ("finished", "failed", "cancelled")

RECONNECT_DELAYS: tuple[float, ...] = (0.2, 0.5, 1.0, 2.0, 5.0)
"""Seconds a client waits before each reconnect attempt; the last repeats."""

GENERATE_MODES: tuple[str, ...] = ("txt2img", "img2img", "inpaint", "outpaint")
"""The modes that make an image from a prompt: what a panel's Generate button runs and the models it
lists. The other modes (segment, upscale, refine_upscale, restore) have their own sections."""
