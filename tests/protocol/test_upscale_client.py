"""The shared client's side of tiled upscale results: collecting, joining, and landing them."""

from __future__ import annotations

import pytest

from underpaint_protocol.jobs import build_job
from underpaint_protocol.session import ImageData
from underpaint_protocol.upscale import TileSet, UpscaleRequest, assemble, scaled_size


def _tile(index: int, tiles: int, x: int, y: int, width: int, height: int, whole: dict[str, int]) -> tuple:
    data = bytes((index * 40 + x + row) % 256 for row in range(height) for _ in range(width) for _ in range(4))
    message = {
        "type": "result",
        "index": index,
        "layer": {"name": "up", "x": x, "y": y, "width": width, "height": height},
        "canvas": {"x": 0, "y": 0, "width": 40, "height": 30},
        "upscale": {"factor": 2.0, "layer": whole, "tiles": tiles, "canvas": {"width": 40, "height": 30}},
    }
    return message, ImageData("rgba8", width, height, data)


def test_tiles_arriving_in_any_order_join_into_the_whole_layer() -> None:
    whole = {"x": 4, "y": 2, "width": 10, "height": 9}
    parts = [_tile(0, 3, 4, 2, 10, 4, whole), _tile(1, 3, 4, 6, 6, 5, whole), _tile(2, 3, 10, 6, 4, 5, whole)]
    tiles = TileSet()
    assert not tiles.add(*parts[2])
    assert not tiles.add(*parts[0])
    assert not tiles.add(*parts[2])  # a repeat (a replay after a reconnect) changes nothing
    assert tiles.add(*parts[1])
    message, image = tiles.assemble()
    assert (image.width, image.height) == (10, 9)
    assert message["index"] == 0 and message["layer"]["x"] == 4 and message["layer"]["width"] == 10
    for tile_message, tile_image in parts:
        rect = tile_message["layer"]
        for row in range(rect["height"]):
            start = ((rect["y"] - 2 + row) * 10 + rect["x"] - 4) * 4
            got = bytes(image.data[start : start + rect["width"] * 4])
            want = bytes(tile_image.data[row * rect["width"] * 4 : (row + 1) * rect["width"] * 4])
            assert got == want
    assert not tiles.tiles  # the pieces are dropped once joined


def test_tiles_that_leave_or_do_not_cover_the_layer_are_refused() -> None:
    whole = {"x": 0, "y": 0, "width": 4, "height": 4}
    _, image = _tile(0, 2, 0, 0, 4, 2, whole)
    with pytest.raises(ValueError, match="overlaps"):
        assemble([({"x": 0, "y": 0}, image), ({"x": 0, "y": 0}, image)], whole)
    with pytest.raises(ValueError, match="leaves"):
        assemble([({"x": 0, "y": 3}, image), ({"x": 0, "y": 0}, image)], whole)
    png = ImageData("png", 4, 2, b"")
    with pytest.raises(ValueError, match="rgba8"):
        assemble([({"x": 0, "y": 0}, png), ({"x": 0, "y": 2}, png)], whole)


def test_the_job_carries_the_upscale_object() -> None:
    job = build_job(100, 80, None, mode="upscale", upscale=UpscaleRequest(2.5, tile=256).as_dict())
    assert job["upscale"] == {"factor": 2.5, "tile": 256}
    assert scaled_size(101, 3, 2.5) == (252, 8)
