"""An upscale in the history: its thumbnail made tile by tile and its re-apply streamed from the
daemon again into one host layer, so the client never holds the whole layer (issue 16)."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from tests.daemon.conftest import RunningDaemon, start_daemon
from tests.protocol.fake_host import FakeCanvas, TilingCanvas
from tests.protocol.test_controller import Live, scripted
from tests.protocol.test_upscale_client import _bands, _tile
from underpaint.engines.registry import build_engines
from underpaint_protocol.controller import HistoryItem, Request
from underpaint_protocol.messages import Limits
from underpaint_protocol.panel import thumbnail
from underpaint_protocol.session import ImageData
from underpaint_protocol.upscale import TileThumbnail, UpscaleRequest, assemble

# ------------------------------------------------------------------------------------ thumbnails


def _grid(whole: dict[str, int], columns: list[int], rows: list[int], image_format: str = "rgba8") -> list[tuple]:
    """Tiles cutting ``whole`` at the given inner column and row borders, random pixels."""
    rng = np.random.default_rng(len(columns) * 7 + len(rows))
    xs = [whole["x"], *(whole["x"] + c for c in columns), whole["x"] + whole["width"]]
    ys = [whole["y"], *(whole["y"] + r for r in rows), whole["y"] + whole["height"]]
    tiles = []
    for top, bottom in itertools.pairwise(ys):
        for left, right in itertools.pairwise(xs):
            pixels = rng.integers(0, 256, (bottom - top, right - left, 4), np.uint8)
            rect = {"x": left, "y": top, "width": right - left, "height": bottom - top}
            tiles.append((rect, ImageData(image_format, right - left, bottom - top, pixels.tobytes())))
    return tiles


@pytest.mark.parametrize(
    ("width", "height", "columns", "rows"),
    [
        (400, 300, [], [75, 150, 225]),  # the daemon's bands
        (1000, 37, [333, 334, 900], []),  # wide and flat: thumbnail rows from one band
        (257, 611, [100], [1, 300, 610]),  # a grid, one-pixel tiles at the edges
        (96, 50, [40], [25]),  # small enough to stay as it is
        (97, 97, [48], [48]),  # just over: the scale is barely above 1
    ],
)
def test_a_thumbnail_made_tile_by_tile_is_the_joined_layers_thumbnail(
    width: int, height: int, columns: list[int], rows: list[int]
) -> None:
    whole = {"x": 12, "y": 5, "width": width, "height": height}
    for image_format in ("rgba8", "bgra8"):
        tiles = _grid(whole, columns, rows, image_format)
        expected = thumbnail(assemble(tiles, whole))
        order = list(range(len(tiles)))
        random.Random(width).shuffle(order)  # tiles come in any order
        small = TileThumbnail(image_format, width, height, len(tiles))
        for done, index in enumerate(order, 1):
            rect, image = tiles[index]
            assert small.add(index, rect["x"] - whole["x"], rect["y"] - whole["y"], image) == (done == len(tiles))
        assert not small.add(order[0], 0, 0, tiles[order[0]][1]), "a repeat adds nothing"
        got = small.image
        assert (got.format, got.width, got.height) == (image_format, expected.width, expected.height)
        assert max(got.width, got.height) <= 96
        assert bytes(got.data) == bytes(expected.data)


def test_a_thumbnail_refuses_tiles_it_cannot_scale() -> None:
    with pytest.raises(ValueError, match="rgba8 or bgra8"):
        TileThumbnail("png", 10, 10, 1)
    small = TileThumbnail("rgba8", 10, 10, 2)
    with pytest.raises(ValueError, match="bgra8 tile"):
        small.add(0, 0, 0, ImageData("bgra8", 10, 5, bytes(200)))


# ------------------------------------------------------------------- sans-I/O: the scripted client


class FetchingClient:
    """What the history needs of the scripted client: ``fetch`` recorded (the test sends the events)."""

    def __init__(self, client: Any) -> None:
        self.fetches: list[str] = []
        client.fetch = lambda job_id, replay=False: self.fetches.append(job_id)


def _history(canvas: FakeCanvas, job_id: str = "u1") -> tuple[Any, Any, FetchingClient, HistoryItem]:
    controller, client, _ = scripted(canvas)
    fetching = FetchingClient(client)
    item = HistoryItem({"job_id": job_id, "mode": "upscale", "model": "up", "state": "finished", "results": 3})
    controller.history = [item]
    return controller, client, fetching, item


def _replay(client: Any, bands: list[tuple], job_id: str = "u1", order: tuple[int, ...] = (0, 1, 2)) -> None:
    for index in order:
        client.event(*bands[index])
    client.event({"type": "finished", "job_id": job_id, "results": len(bands)})


def _joined(bands: list[tuple]) -> np.ndarray:
    return np.concatenate([np.frombuffer(bytes(i.data), np.uint8).reshape(i.height, i.width, 4) for _, i in bands])


def _bands_with_params(job_id: str) -> list[tuple]:
    bands = _bands(job_id, 400, 300, 3)
    for message, _ in bands:
        message["params"] = {"mode": "upscale", "model": "up", "seed": 4, "prompt": ""}
        message["output"] = f"/out/2026-12-02/{job_id}-{message['index']}.png"
    return bands


def test_a_fetched_upscale_keeps_its_message_and_thumbnail_not_its_pixels() -> None:
    controller, client, fetching, item = _history(TilingCanvas.photo(20, 15))
    bands = _bands_with_params("u1")
    controller.fetch_history(item)
    assert fetching.fetches == ["u1"] and item.fetching
    _replay(client, bands, order=(2, 0, 1))
    assert not item.fetching and not controller.error
    (result,) = item.results
    assert result.thumbnail_only and result.image is item.thumbnails[0]
    whole = {"x": 0, "y": 0, "width": 400, "height": 300}
    expected = thumbnail(assemble([(m["layer"], i) for m, i in bands], whole))
    assert bytes(result.image.data) == bytes(expected.data) and result.image.width == 96
    assert result.message["layer"] | {"name": "up"} == {"name": "up", **whole} and result.message["index"] == 0
    assert result.message["output"] == "/out/2026-12-02/u1.png", "the daemon's picture of the whole layer"
    assert result.seed == 4 and "seed 4" in item.label()
    assert controller.reuse(result).model == "up", "Use parameters works from the message"


def test_reapply_streams_the_tiles_into_one_layer_where_it_was_made() -> None:
    canvas = TilingCanvas.photo(400, 300)  # the image has the upscale's scaled size
    controller, client, fetching, item = _history(canvas)
    bands = _bands_with_params("u1")
    controller.fetch_history(item)
    _replay(client, bands)
    controller.reapply(item)
    assert fetching.fetches == ["u1", "u1"] and item.fetching
    assert len(canvas.detached) == 1 and canvas.undo_steps == []
    client.event(*bands[1])
    client.event(*bands[1])  # a repeat lands nothing twice
    client.event(*bands[0])
    assert canvas.undo_steps == [] and len(canvas.layers) == 1, "nothing in the image before the last tile"
    client.event(*bands[2])
    assert canvas.undo_steps == ["paste"] and not canvas.detached, "one undo step, no scaling"
    assert canvas.size() == (400, 300)
    layer = canvas.layers[0]
    assert (layer.name, layer.x, layer.y) == ("up", 0, 0) and np.array_equal(layer.pixels, _joined(bands))
    assert canvas.largest_tile == max(len(i.data) for _, i in bands), "one tile at a time"
    client.event({"type": "finished", "job_id": "u1", "results": 3})
    assert not item.fetching and not controller.error and item.results[0].thumbnail_only


def test_reapply_of_a_region_upscale_lands_at_its_region_or_top_left() -> None:
    whole = {"x": 10, "y": 20, "width": 30, "height": 12}
    tiles = [_tile(0, 2, 10, 20, 30, 5, whole), _tile(1, 2, 10, 25, 30, 7, whole)]
    for message, _ in tiles:
        message["job_id"] = "r1"
    joined = _joined(tiles)
    for size, where in (((40, 30), (10, 20)), ((64, 64), (0, 0))):
        canvas = TilingCanvas.photo(*size)
        controller, client, _fetching, item = _history(canvas, "r1")
        controller.fetch_history(item)
        _replay(client, tiles, "r1", (0, 1))
        controller.reapply(item)
        _replay(client, tiles, "r1", (0, 1))
        layer = canvas.layers[0]
        assert (layer.x, layer.y) == where and np.array_equal(layer.pixels, joined), size
        assert canvas.undo_steps == ["paste"] and canvas.size() == size and not controller.error


def test_the_end_of_the_stream_handled_inside_the_last_host_call_lands_once() -> None:
    """Krita runs queued events inside its calls: ``finished`` may be handled while the layer joins."""
    canvas = TilingCanvas.photo(400, 300)
    controller, client, _fetching, item = _history(canvas)
    bands = _bands_with_params("u1")
    controller.fetch_history(item)
    _replay(client, bands)
    end_layer = canvas.end_layer

    def ending_inside(handle: Any, keep: bool) -> list[Any]:
        client.event({"type": "finished", "job_id": "u1", "results": 3})
        return end_layer(handle, keep)

    canvas.end_layer = ending_inside  # type: ignore[method-assign]
    controller.reapply(item)
    for band in bands:
        client.event(*band)
    assert canvas.undo_steps == ["paste"] and not canvas.detached and not controller.error and not item.fetching


@pytest.mark.parametrize("end", ["lost", "failed", "error", "missing", "closed"])
def test_a_reapply_that_breaks_off_leaves_nothing_behind(end: str) -> None:
    canvas = TilingCanvas.photo(400, 300)
    controller, client, _fetching, item = _history(canvas)
    bands = _bands_with_params("u1")
    controller.fetch_history(item)
    _replay(client, bands)
    controller.reapply(item)
    client.event(*bands[0])
    assert len(canvas.detached) == 1
    if end == "lost":
        controller._on_client_state(controller._generation, "reconnecting")
        assert "lost while re-applying" in controller.error
    elif end == "failed":
        client.event({"type": "failed", "job_id": "u1", "code": "internal_error", "message": "x"})
    elif end == "error":
        client.event({"type": "error", "job_id": "u1", "code": "unknown_job", "message": "no such job"})
    elif end == "missing":
        client.event({"type": "finished", "job_id": "u1", "results": 3})
        assert "Not every tile" in controller.error
    else:
        canvas.open = False
        client.event(*bands[1])
        assert "closed" in controller.error
    assert not canvas.detached and canvas.undo_steps == [] and len(canvas.layers) == 1 and controller.error
    assert item.fetching == (end == "closed"), "the rest of a stream given up is let pass first"
    client.event(*bands[2])  # a straggler finds nothing to land in
    client.event({"type": "finished", "job_id": "u1", "results": 3})
    assert not canvas.detached and canvas.undo_steps == [] and item.results[0].thumbnail_only
    assert not item.fetching and "re-applying" not in item.label()


def test_a_reapply_after_one_given_up_gets_only_its_own_stream() -> None:
    canvas = TilingCanvas.photo(400, 300)
    controller, client, fetching, item = _history(canvas)
    bands = _bands_with_params("u1")
    controller.fetch_history(item)
    _replay(client, bands)
    canvas.open = False
    controller.reapply(item)
    client.event(*bands[0])  # the image was closed: given up
    assert "closed" in controller.error and not canvas.detached
    canvas.open = True
    controller.reapply(item)
    assert "being fetched already" in controller.error, "refused until the first stream has passed"
    client.event(*bands[1])
    client.event(*bands[2])
    client.event({"type": "finished", "job_id": "u1", "results": 3})
    controller.reapply(item)
    assert not controller.error and item.label().endswith("re-applying…")
    client.event(*bands[0])
    assert item.label().endswith("re-applying tile 1 of 3")
    _replay(client, bands, order=(1, 2))
    assert fetching.fetches == ["u1"] * 3 and canvas.undo_steps == ["paste"] and not controller.error
    assert np.array_equal(canvas.layers[0].pixels, _joined(bands)) and "re-applying" not in item.label()


def test_a_thumbnail_fetch_cut_off_can_be_fetched_again() -> None:
    controller, client, fetching, item = _history(TilingCanvas.photo(20, 15))
    bands = _bands_with_params("u1")
    controller.fetch_history(item)
    client.event(*bands[0])
    controller._on_client_state(controller._generation, "reconnecting")
    assert not item.fetching and item.results == [] and item.partial is None
    controller.fetch_history(item)
    _replay(client, bands)
    assert fetching.fetches == ["u1", "u1"] and item.results[0].thumbnail_only


def test_reapply_waits_for_the_thumbnail_and_for_the_connection() -> None:
    canvas = TilingCanvas.photo(400, 300)
    controller, client, fetching, item = _history(canvas)
    controller.reapply(item)
    assert "not loaded yet" in controller.error
    controller.fetch_history(item)
    _replay(client, _bands_with_params("u1"))
    controller.reapply(item)
    controller.reapply(item)  # a second click while the first streams
    assert "being fetched already" in controller.error and fetching.fetches == ["u1", "u1"]
    assert len(canvas.detached) == 1
    controller._on_client_state(controller._generation, "reconnecting")
    controller.reapply(item)
    assert controller.error.startswith("Not connected to the daemon") and not canvas.detached


def test_a_canvas_without_the_tile_calls_gets_the_joined_layer() -> None:
    """The CLI's canvas (no ``TileCanvas``): the stream is joined, then pasted as one layer."""
    canvas = FakeCanvas.photo(400, 300)
    controller, client, _fetching, item = _history(canvas)
    bands = _bands_with_params("u1")
    controller.fetch_history(item)
    _replay(client, bands)
    controller.reapply(item)
    _replay(client, bands, order=(1, 2, 0))
    assert canvas.undo_steps == ["paste"] and np.array_equal(canvas.layers[0].pixels, _joined(bands))
    assert not item.fetching and not controller.error


# ------------------------------------------------------------------------------- a real daemon


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDaemon]:
    """The classical upscaler with 2 MiB frames: a 1200x800 result comes as four tiles."""
    engines, _ = build_engines("classical", [], [], "cpu")
    running = start_daemon(
        tmp_path_factory.mktemp("history-tiles"), limits=Limits(max_frame_bytes=2 * 1024 * 1024), engines=engines
    )
    yield running
    running.thread.stop()


def _upscaled(daemon: RunningDaemon, canvas: TilingCanvas, live: Live) -> Any:
    request = Request(mode="upscale", model="classical-upscale", strength=None, upscale=UpscaleRequest(4.0))
    job = live.controller.generate(request)
    assert job is not None, live.controller.error
    live.until(lambda: job.settled, 120)
    assert job.state == "finished" and job.landing is not None and job.landing.landed, job.error
    return job


def test_history_thumbnail_and_reapply_of_a_real_upscale(daemon: RunningDaemon) -> None:
    canvas = TilingCanvas.photo(300, 200)
    live = Live(daemon.url, daemon.token, canvas)
    live.connect()
    try:
        job = _upscaled(daemon, canvas, live)
        layer = canvas.layers[0].pixels.copy()
        tile_bytes = canvas.largest_tile
        assert layer.shape == (800, 1200, 4) and tile_bytes < layer.nbytes / 2, "it came as tiles"
        controller = live.controller
        controller.refresh_history()
        live.until(lambda: any(item.job_id == job.job_id for item in controller.history))
        item = next(item for item in controller.history if item.job_id == job.job_id)
        controller.fetch_history(item)
        live.until(lambda: bool(item.results) and not item.fetching)
        (result,) = item.results
        whole = ImageData("rgba8", 1200, 800, layer.tobytes())
        assert result.thumbnail_only and bytes(result.image.data) == bytes(thumbnail(whole).data)
        assert result.message["params"]["mode"] == "upscale" and str(result.message["output"]).endswith(
            f"{job.job_id}.png"
        )

        # onto an image of the scaled size: where it was made, no scaling, one undo step
        target = TilingCanvas.photo(1200, 800)
        live.host.active = target
        controller.reapply(item)
        live.until(lambda: not item.fetching)
        assert not controller.error and target.undo_steps == ["paste"] and target.size() == (1200, 800)
        assert np.array_equal(target.layers[0].pixels, layer) and (target.layers[0].x, target.layers[0].y) == (0, 0)
        assert target.largest_tile == tile_bytes, "the client held one tile at a time"

        # the socket drops as the re-apply asks for the tiles: the layer begun goes, nothing lands
        other = TilingCanvas.photo(500, 400)
        live.host.active = other
        client = live.clients[-1]
        fetch = client.fetch

        def drop_then_fetch(job_id: str, replay: bool = False) -> None:
            assert client._connection is not None and other.detached, "the layer is begun first"
            client._connection.close()
            fetch(job_id, replay)

        client.fetch = drop_then_fetch  # type: ignore[method-assign]
        controller.reapply(item)
        live.until(lambda: not item.fetching and controller.connection != "connected")
        assert not other.detached and other.undo_steps == [] and len(other.layers) == 1 and controller.error
        client.fetch = fetch  # type: ignore[method-assign]
        live.until(lambda: controller.connection == "connected", 30)
        controller.reapply(item)  # once it is back, Re-apply lands: top-left, as the size differs
        live.until(lambda: not item.fetching)
        assert not controller.error and other.undo_steps == ["paste"] and other.size() == (500, 400)
        assert np.array_equal(other.layers[0].pixels, layer) and (other.layers[0].x, other.layers[0].y) == (0, 0)
    finally:
        live.controller.close()
