"""The shared client's side of tiled upscale results: collecting, joining, and landing them."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.protocol.fake_host import TilingCanvas
from tests.protocol.test_controller import planned, scripted
from underpaint_protocol.controller import Request
from underpaint_protocol.jobs import build_job
from underpaint_protocol.session import ImageData
from underpaint_protocol.upscale import TileSet, UpscaleRequest, assemble, scaled_size, tile_text


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


def test_progress_names_the_tile_and_the_step_within_it() -> None:
    """A refine-upscale's work units mix tiles and diffusion steps: the line says which tile of which
    pass, and the step within the tile; without ``tile`` (another mode) it stays "step k of n"."""
    controller, client, _ = scripted(TilingCanvas.photo())
    controller.welcome = {**controller.welcome, "models": [{"id": "sd", "modes": ["refine_upscale"]}]}
    job = controller.generate(Request(mode="refine_upscale", model="sd", upscale=UpscaleRequest(2.0)))
    assert job is not None, controller.error
    planned(client, 0, 0, 0, 160, 120)
    client.submits[0][4].set_result({"type": "accepted", "job_id": "j1", "seed": 1})
    tile = {"stage": "upscale", "index": 2, "count": 4}
    client.event({"type": "progress", "job_id": "j1", "step": 2, "total": 28, "tile": tile})
    assert job.describe() == "refine_upscale: upscaling tile 2 of 4"
    tile = {"stage": "refine", "index": 3, "count": 6, "step": 2, "steps": 4}
    client.event({"type": "progress", "job_id": "j1", "step": 14, "total": 28, "tile": tile})
    assert job.describe() == "refine_upscale: refining tile 3 of 6, step 2 of 4"
    assert job.progress_text(job.started + 5).startswith("refining tile 3 of 6, step 2 of 4, 5 s")
    assert controller.progress == (14, 28), "the bar still runs over the whole job's units"
    assert tile_text({"stage": "upscale", "index": 1, "count": 9}, "upscale") == "tile 1 of 9"


def _upscale_job(canvas: TilingCanvas, job_id: str) -> tuple[Any, Any, Any]:
    controller, client, _ = scripted(canvas)
    controller.welcome = {**controller.welcome, "models": [{"id": "up", "modes": ["upscale"]}]}
    job = controller.generate(Request(mode="upscale", model="up", strength=None, upscale=UpscaleRequest(2.0)))
    assert job is not None, controller.error
    planned(client, 0, 0, 0, canvas.width, canvas.height)
    client.submits[0][4].set_result({"type": "accepted", "job_id": job_id, "seed": 1})
    return controller, client, job


def _bands(job_id: str, width: int, height: int, count: int) -> list[tuple[dict[str, Any], ImageData]]:
    whole = {"x": 0, "y": 0, "width": width, "height": height}
    out = []
    for index in range(count):
        top, bottom = height * index // count, height * (index + 1) // count
        message, image = _tile(index, count, 0, top, width, bottom - top, whole)
        message["job_id"] = job_id
        message["upscale"]["canvas"] = {"width": width, "height": height}
        out.append((message, image))
    return out


def test_a_tile_canvas_gets_each_tile_as_it_comes_and_the_layer_after_the_last() -> None:
    canvas = TilingCanvas.photo(20, 15)
    controller, client, job = _upscale_job(canvas, "u1")
    bands = _bands("u1", 40, 30, 3)
    for message, image in bands:
        assert canvas.size() == (20, 15) and canvas.undo_steps == []
        client.event(message, image)
    assert canvas.size() == (40, 30) and canvas.undo_steps == ["scale", "paste"] and not canvas.detached
    assert canvas.largest_tile == max(len(image.data) for _, image in bands), "one tile at a time"
    joined = np.concatenate([np.frombuffer(bytes(i.data), np.uint8).reshape(i.height, i.width, 4) for _, i in bands])
    assert np.array_equal(canvas.layers[0].pixels, joined) and canvas.layers[0].name == "up"
    client.event({"type": "finished", "job_id": "u1", "results": 3})
    assert job.settled and job.results == [] and job.describe() == "upscale: done, 1 layer" and not controller.error


def test_an_upscale_that_cannot_land_leaves_the_image_as_it_was() -> None:
    canvas = TilingCanvas.photo(20, 15)
    controller, client, job = _upscale_job(canvas, "u1")
    first, second, third = _bands("u1", 40, 30, 3)
    client.event(*first)
    assert len(canvas.detached) == 1
    canvas.width = 21  # the artist resized the image meanwhile
    client.event(*second)
    assert not canvas.detached and "resized" in controller.error and job.note == "not pasted"
    canvas.width = 20
    client.event(*third)  # later tiles are ignored
    client.event({"type": "finished", "job_id": "u1", "results": 3})
    assert canvas.undo_steps == [] and not canvas.detached and len(canvas.layers) == 1 and "resized" in controller.error

    canvas = TilingCanvas.photo(20, 15)
    controller, client, job = _upscale_job(canvas, "u2")
    first, *_ = _bands("u2", 40, 30, 3)
    client.event(*first)
    client.event({"type": "finished", "job_id": "u2", "results": 3})  # the rest never came
    assert canvas.undo_steps == [] and not canvas.detached and "Not every tile" in controller.error


def test_an_upscale_for_a_closed_image_says_where_the_daemon_saved_it() -> None:
    canvas = TilingCanvas.photo(20, 15)
    controller, client, job = _upscale_job(canvas, "u1")
    first, *_ = _bands("u1", 40, 30, 3)
    canvas.open = False
    client.event({**first[0], "output": "/out/2026-12-02/u1-0.png"}, first[1])
    assert "They are saved in /out/2026-12-02/u1.png" in controller.error and job.note == "image closed"
    assert not canvas.detached
