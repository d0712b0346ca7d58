"""Upscale, refine-upscale and restore on the client side: the request, and landing tiled results.

How a host asks (through ``controller.Controller.generate``)::

    Request(mode="upscale", model="RealESRGAN_x4plus", upscale=UpscaleRequest(factor=2.0))
    Request(mode="refine_upscale", model="<diffusion model>", prompt="...", strength=0.3,
            upscale=UpscaleRequest(factor=2.0, model="RealESRGAN_x4plus"))
    Request(mode="restore", model="GFPGANv1.4")          # needs a selection (the face)

Without a selection the whole canvas is scaled, with one its bounding box. What comes back: one or
more ``result`` messages (tiles) each carrying ``upscale`` (see ``messages.UpscaleResult``): the scaled
canvas size, the whole layer's rectangle in the scaled canvas, and how many tiles make it. The
controller lands an upscale as: scale the document to ``upscale.canvas`` (``ScalableCanvas.scale``,
one undo step), then ONE layer at ``upscale.layer`` -- the whole image for a whole-canvas upscale,
the scaled region for a selection. A ``controller.TileCanvas`` (Krita, GIMP) takes each tile into
that layer as it arrives (:class:`TileLanding` counts them), so the client holds one tile; for any
other canvas :class:`TileSet` collects them and :func:`assemble` joins them (the whole layer). The
history keeps no upscale's pixels: :class:`TileThumbnail` scales each tile into the thumbnail as it
arrives, and a re-apply streams the tiles from the daemon again into a ``TileCanvas`` layer.
``restore`` results are ordinary results (a layer over the selection, soft-masked), landed like an
inpaint. Standard library only.
"""

from __future__ import annotations

import bisect
import os.path
from dataclasses import dataclass, field
from typing import Any

from underpaint_protocol.panel import thumbnail_samples
from underpaint_protocol.session import ImageData

UPSCALE_MODES = ("upscale", "refine_upscale")
"""Modes whose results scale the document and may come as tiles."""
RAW_BYTES = {"rgba8": 4, "bgra8": 4}


@dataclass(frozen=True)
class UpscaleRequest:
    """The user's choice for an upscale: ``factor`` (1-16, any number), the upscaler ``model`` for
    ``refine_upscale`` (None: the daemon's default; for ``upscale`` the upscaler is ``Request.model``),
    and an optional tile side in input pixels (None: the daemon's choice)."""

    factor: float
    model: str | None = None
    tile: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """The protocol's ``job.upscale`` object."""
        spec: dict[str, Any] = {"factor": float(self.factor)}
        if self.model:
            spec["model"] = self.model
        if self.tile is not None:
            spec["tile"] = int(self.tile)
        return spec


def scaled_size(width: int, height: int, factor: float) -> tuple[int, int]:
    """The document's size after an upscale by ``factor``, as the daemon computes it."""
    return max(1, round(width * factor)), max(1, round(height * factor))


@dataclass
class TileSet:
    """The tiles of one upscale layer as they arrive (any order, repeats ignored)."""

    tiles: dict[int, tuple[dict[str, Any], ImageData]] = field(default_factory=dict)
    count: int | None = None

    def add(self, message: dict[str, Any], image: ImageData) -> bool:
        """Keep one ``result`` tile; True once every tile of the layer is here."""
        self.count = int(message["upscale"]["tiles"])
        self.tiles.setdefault(int(message["index"]), (message, image))
        return self.complete

    @property
    def complete(self) -> bool:
        return self.count is not None and len(self.tiles) >= self.count

    def assemble(self) -> tuple[dict[str, Any], ImageData]:
        """The whole layer as one result: the first tile's message with ``layer`` widened to the whole
        layer and ``index`` 0, and the joined image. The tiles are dropped (memory)."""
        if not self.complete:
            raise ValueError(f"{len(self.tiles)} of {self.count} tiles arrived")
        first = self.tiles[min(self.tiles)][0]
        image = assemble([(m["layer"], img) for m, img in self.tiles.values()], first["upscale"]["layer"])
        self.tiles.clear()
        return whole_message(first), image


def whole_message(tile: dict[str, Any]) -> dict[str, Any]:
    """The ``result`` message of a whole upscale layer, from any one of its tiles': ``layer`` widened
    to the whole layer, ``index`` 0, and ``output`` naming the daemon's picture of the whole layer
    (``<job_id>.png`` beside the tiles)."""
    message = {**tile, "index": 0, "layer": {**tile["layer"], **_rect(tile["upscale"]["layer"])}}
    output, job_id = tile.get("output"), tile.get("job_id")
    if output and job_id:
        message["output"] = os.path.join(os.path.dirname(str(output)), f"{job_id}.png")
    return message


class TileThumbnail:
    """The history thumbnail of an upscale layer made from its tiles as they arrive (any order, repeats
    ignored): each tile gives the thumbnail's pixels that fall in it and is let go, so the client holds
    one tile and the thumbnail, never the layer. Pixel for pixel ``panel.thumbnail`` of the joined layer."""

    def __init__(self, image_format: str, width: int, height: int, count: int, longest: int = 96) -> None:
        if image_format not in RAW_BYTES:
            raise ValueError(f"tiles can be scaled down only as rgba8 or bgra8, not {image_format}")
        self.format, self.count = image_format, count
        self.columns, self.rows = thumbnail_samples(width, height, longest)
        self.data = bytearray(len(self.columns) * len(self.rows) * RAW_BYTES[image_format])
        self.seen: set[int] = set()

    def add(self, index: int, x: int, y: int, image: ImageData) -> bool:
        """Take tile ``index`` at (``x``, ``y``) of the layer; True when it was the last one missing."""
        if image.format != self.format:
            raise ValueError(f"a {image.format} tile in a {self.format} layer")
        if index in self.seen:
            return False
        self.seen.add(index)
        depth = RAW_BYTES[self.format]
        source = memoryview(image.data).cast("B")
        first, last = bisect.bisect_left(self.columns, x), bisect.bisect_left(self.columns, x + image.width)
        out_row = len(self.columns) * depth
        for out_y in range(bisect.bisect_left(self.rows, y), bisect.bisect_left(self.rows, y + image.height)):
            row = (self.rows[out_y] - y) * image.width
            at = out_y * out_row + first * depth
            for column in self.columns[first:last]:
                start = (row + column - x) * depth
                self.data[at : at + depth] = source[start : start + depth]
                at += depth
        return self.complete

    @property
    def complete(self) -> bool:
        return len(self.seen) >= self.count

    @property
    def image(self) -> ImageData:
        return ImageData(self.format, len(self.columns), len(self.rows), bytes(self.data))


@dataclass
class TileLanding:
    """An upscale layer a host fills tile by tile (``controller.TileCanvas``): which tiles are in, and
    the layer once it joined the image (its pixels are only in the host)."""

    handle: Any
    """The host's layer, made with ``TileCanvas.begin_layer``."""
    name: str
    x: int
    y: int
    width: int
    height: int
    """The whole layer in the scaled canvas."""
    count: int
    seen: set[int] = field(default_factory=set)
    ended: bool = False
    """Landed, or dropped (cancel, failure): later tiles are ignored."""
    landed: bool = False
    """The layer is in the image."""

    def add(self, index: int) -> bool:
        """Count tile ``index`` in; False for a repeat (a replay after a reconnect)."""
        if index in self.seen:
            return False
        self.seen.add(index)
        return True

    @property
    def complete(self) -> bool:
        return len(self.seen) >= self.count


def tile_text(tile: dict[str, Any], mode: str) -> str:
    """The artist's words for an upscale's ``progress.tile``: "tile 3 of 12" (upscale), "upscaling tile
    3 of 12" then "refining tile 2 of 6, step 2 of 4" (refine_upscale)."""
    where = f"tile {tile.get('index')} of {tile.get('count')}"
    if tile.get("stage") == "refine":
        steps = f", step {tile['step']} of {tile['steps']}" if tile.get("step") and tile.get("steps") else ""
        return f"refining {where}{steps}"
    return f"upscaling {where}" if mode == "refine_upscale" else where


def assemble(tiles: list[tuple[dict[str, Any], ImageData]], whole: dict[str, Any]) -> ImageData:
    """Join raw tiles (``rgba8``/``bgra8``; each ``(layer rect, image)`` in scaled-canvas coordinates)
    into the ``whole`` rectangle they cover. A single tile is returned as it is."""
    x0, y0, width, height = (int(whole[key]) for key in ("x", "y", "width", "height"))
    if len(tiles) == 1:
        return tiles[0][1]
    formats = {image.format for _, image in tiles}
    if len(formats) != 1 or next(iter(formats)) not in RAW_BYTES:
        raise ValueError(f"tiles can be joined only as rgba8 or bgra8, not {', '.join(sorted(formats))}")
    image_format = next(iter(formats))
    depth = RAW_BYTES[image_format]
    stride = width * depth
    out = bytearray(stride * height)
    covered = 0
    placed: list[tuple[int, int, int, int]] = []
    for rect, image in tiles:
        tx, ty = int(rect["x"]) - x0, int(rect["y"]) - y0
        tw, th = image.width, image.height
        if tx < 0 or ty < 0 or tx + tw > width or ty + th > height:
            raise ValueError(f"a {tw}x{th} tile at ({tx}, {ty}) leaves the {width}x{height} layer")
        if any(tx < x + w and x < tx + tw and ty < y + h and y < ty + th for x, y, w, h in placed):
            raise ValueError(f"the tile at ({tx}, {ty}) overlaps another: the tiles do not cover the layer once")
        placed.append((tx, ty, tw, th))
        source = memoryview(image.data).cast("B")
        row = tw * depth
        for line in range(th):
            start = (ty + line) * stride + tx * depth
            out[start : start + row] = source[line * row : (line + 1) * row]
        covered += tw * th
    if covered != width * height:
        raise ValueError(f"the tiles cover {covered} of {width * height} pixels")
    return ImageData(image_format, width, height, out)


def _rect(rect: dict[str, Any]) -> dict[str, int]:
    return {key: int(rect[key]) for key in ("x", "y", "width", "height")}
