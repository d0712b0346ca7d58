"""The user's prompt library from any Python host and the CLI: styles, history, and the parameters
a PNG carries.

The daemon keeps styles and history, so every host sees the same ones; this module builds the
requests (plain dicts, see PROTOCOL.md "Prompt library") and turns what a PNG carries into the
fields of a job. Standard library (+ the threaded client for ``Library``).
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Protocol

from underpaint_protocol import pnginfo
from underpaint_protocol.jobs import Bounds
from underpaint_protocol.session import ImageData

if TYPE_CHECKING:
    from underpaint_protocol.client import UnderpaintClient

STYLE_SETTINGS = ("model", "steps", "guidance", "strength")


def styles_request(
    action: str = "list", style: dict[str, Any] | None = None, name: str | None = None, new_name: str | None = None
) -> dict[str, Any]:
    """A ``styles`` request without its ``request_id`` (the client sets it)."""
    message: dict[str, Any] = {"type": "styles", "action": action}
    for key, value in (("style", style), ("name", name), ("new_name", new_name)):
        if value is not None:
            message[key] = value
    return message


def history_request(limit: int = 50) -> dict[str, Any]:
    return {"type": "history", "limit": limit}


def loras_request() -> dict[str, Any]:
    return {"type": "loras"}


def interrogate_request(flavours: int = 3) -> dict[str, Any]:
    """An ``interrogate`` request; its ``image`` (and ``mask``) attachments are added when sent."""
    return {"type": "interrogate", "flavours": flavours}


def style(name: str, prompt: str, negative_prompt: str = "", **settings: Any) -> dict[str, Any]:
    """A style to save: ``prompt`` must hold ``{prompt}``; ``settings`` among model, steps, guidance,
    strength (None values left out)."""
    unknown = set(settings) - set(STYLE_SETTINGS)
    if unknown:
        raise ValueError(f"a style has no setting {', '.join(sorted(unknown))}")
    made: dict[str, Any] = {"name": name, "prompt": prompt, "negative_prompt": negative_prompt}
    made.update({key: value for key, value in settings.items() if value is not None})
    return made


def _unwrap(inner: Future[dict[str, Any]], key: str) -> Future[Any]:
    outer: Future[Any] = Future()

    def done(finished: Future[dict[str, Any]]) -> None:
        error = finished.exception()
        if error is not None:
            outer.set_exception(error)
        else:
            outer.set_result(finished.result()[key] if key else finished.result())

    inner.add_done_callback(done)
    return outer


class Library:
    """Styles and history through a connected client. Every call returns a future; the style calls
    resolve to the ``style_list`` message (``styles``, and ``notice`` when the user's file was set
    aside), ``history`` to its entries, newest first."""

    def __init__(self, client: UnderpaintClient) -> None:
        self.client = client

    def styles(self) -> Future[dict[str, Any]]:
        return self.client.request(styles_request(), "style_list")

    def save_style(self, saved: dict[str, Any]) -> Future[dict[str, Any]]:
        return self.client.request(styles_request("save", style=saved), "style_list")

    def rename_style(self, name: str, new_name: str) -> Future[dict[str, Any]]:
        return self.client.request(styles_request("rename", name=name, new_name=new_name), "style_list")

    def delete_style(self, name: str) -> Future[dict[str, Any]]:
        return self.client.request(styles_request("delete", name=name), "style_list")

    def history(self, limit: int = 50) -> Future[list[dict[str, Any]]]:
        return _unwrap(self.client.request(history_request(limit), "history_list"), "entries")

    def loras(self) -> Future[list[dict[str, Any]]]:
        """The LoRAs jobs may name, with their trigger words (``refused`` set for pickles)."""
        return _unwrap(self.client.request(loras_request(), "lora_list"), "loras")

    def interrogate(self, image: ImageData, mask: ImageData | None = None, flavours: int = 3) -> Future[dict[str, Any]]:
        """A prompt for ``image`` (the selection's bounding box when ``mask`` is given): resolves to
        the ``interrogated`` message (``prompt``, ``caption``, ``terms``)."""
        images = {"image": image, **({"mask": mask} if mask is not None else {})}
        return self.client.request(interrogate_request(flavours), "interrogated", images)


class _Readable(Protocol):
    def size(self) -> tuple[int, int]: ...
    def selection(self) -> Bounds | None: ...
    def read_image(self, rect: Bounds) -> ImageData: ...
    def read_mask(self, rect: Bounds) -> ImageData: ...


def read_for_interrogation(canvas: _Readable) -> tuple[ImageData, ImageData | None]:
    """What an interrogation of a host canvas sends: the selection's bounds (clipped to the canvas)
    with its soft mask, or the whole canvas without a selection."""
    width, height = canvas.size()
    selection = canvas.selection()
    if selection is not None:
        left, top = max(0, selection.x), max(0, selection.y)
        right = min(width, selection.x + selection.width)
        bottom = min(height, selection.y + selection.height)
        if right > left and bottom > top:
            rect = Bounds(left, top, right - left, bottom - top)
            return canvas.read_image(rect), canvas.read_mask(rect)
    return canvas.read_image(Bounds(0, 0, width, height)), None


def job_fields_from_png(png: bytes) -> dict[str, Any] | None:
    """What a "reuse parameters" action fills in, from a PNG of ours, A1111's or ComfyUI's: prompt,
    negative_prompt, seed, steps, guidance, strength, model, style (None where unknown; our PNGs give
    the prompt the user typed and the style it went through). None when the PNG carries nothing."""
    found = pnginfo.read_parameters(png)
    if found is None:
        return None
    ours = found.get("underpaint") or {}
    styled = ours.get("style") is not None
    return {
        "prompt": ours["user_prompt"] if styled else found["prompt"],
        "negative_prompt": ours["user_negative_prompt"] if styled else found["negative_prompt"],
        "style": ours.get("style"),
        "seed": found["seed"],
        "steps": found["steps"],
        "guidance": found["guidance"],
        "strength": found["strength"],
        "model": found["model"],
        "mode": ours.get("mode"),
        "loras": list(ours.get("loras") or ()),
        "source": found["source"],
    }
