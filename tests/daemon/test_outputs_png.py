"""The PNG writer's own encoder: libpng's row filter choice (against a plain per-row rendering of it),
and tile PNGs and the whole layer's PNG joined from them read back exactly by Pillow and OpenCV."""

from __future__ import annotations

import io
import itertools
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from underpaint.daemon import pngrows
from underpaint.daemon.outputs import OutputStore, StoredResult, _Band, _LayerPng

ROOT = Path(__file__).resolve().parents[2]


def libpng_choice(pixels: np.ndarray) -> np.ndarray:
    """Scanlines as libpng's default heuristic makes them, one row at a time in plain integers: the
    five filters of PNG's specification, the one with the least sum of |byte as signed| kept (the
    lowest type on a tie); the first row only None or Sub."""
    height, width, channels = pixels.shape
    flat = pixels.reshape(height, width * channels).astype(np.int64)
    rows = []
    for row in range(height):
        x = flat[row]
        b = flat[row - 1] if row else np.zeros_like(x)
        a, c = np.r_[np.zeros(channels, np.int64), x[:-channels]], np.r_[np.zeros(channels, np.int64), b[:-channels]]
        p = a + b - c
        pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
        paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
        candidates = [(f % 256).astype(np.uint8) for f in (x, x - a, x - b, x - (a + b) // 2, x - paeth)]
        costs = [int(np.abs(f.view(np.int8).astype(np.int64)).sum()) for f in candidates[: 2 if row == 0 else 5]]
        kind = int(np.argmin(costs))
        rows.append(np.r_[np.uint8(kind), candidates[kind]])
    return np.array(rows, np.uint8)


def photo(width: int, height: int, channels: int = 4) -> np.ndarray:
    with Image.open(ROOT / "tests" / "data" / "coffee.jpg") as file:
        return np.asarray(file.convert("RGBA" if channels == 4 else "RGB"))[:height, :width].copy()


def flat(width: int, height: int, channels: int = 4) -> np.ndarray:
    """Flat colours, an anti-aliased edge, identical rows (Up wins: never on a band's first row)."""
    art = np.zeros((height, width, channels), np.uint8)
    art[..., 0] = 200
    art[:, : width // 3, 1] = 90
    cv2.circle(art, (width // 2, height // 2), max(1, min(width, height) // 3), (10, 20, 250), -1, cv2.LINE_AA)
    if channels == 4:
        art[..., 3] = 255
        art[: height // 4, :, 3] = 0
    return art


def stripes(width: int, height: int, channels: int = 4) -> np.ndarray:
    """Every row the same noisy row: Up is free on every row but a band's first."""
    row = np.random.default_rng(3).integers(0, 256, (1, width, channels), dtype=np.uint8)
    return np.repeat(row, height, axis=0)


def smooth(width: int, height: int, channels: int = 4) -> np.ndarray:
    """Noise summed down and across: Average and Paeth get their turns."""
    steps = np.random.default_rng(4).integers(-2, 3, (height, width, channels))
    return np.cumsum(np.cumsum(steps, axis=0), axis=1).astype(np.uint8)


IMAGES = [photo, flat, stripes, smooth]
SIZES = [(1, 1), (5, 1), (1, 7), (17, 13), (211, 150)]


@pytest.mark.parametrize("channels", [3, 4])
@pytest.mark.parametrize("make", IMAGES)
def test_rows_are_filtered_as_libpng_chooses(make, channels: int) -> None:
    for width, height in SIZES:
        pixels = make(width, height, channels)
        assert pixels.shape == (height, width, channels)
        assert np.array_equal(pngrows.filter_rows(pixels), libpng_choice(pixels)), (make.__name__, width, height)


def test_every_filter_is_chosen_somewhere() -> None:
    chosen = np.concatenate([pngrows.filter_rows(make(211, 150))[:, 0] for make in IMAGES])
    assert set(chosen.tolist()) == {0, 1, 2, 3, 4}


def test_deflate_strategy_follows_runs_of_zeros() -> None:
    assert pngrows.deflate_strategy(pngrows.filter_rows(flat(400, 300))) == zlib.Z_RLE
    assert pngrows.deflate_strategy(pngrows.filter_rows(photo(400, 300))) == zlib.Z_HUFFMAN_ONLY


def read_both(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """The PNG as Pillow and OpenCV decode it, both as RGB(A)."""
    with Image.open(io.BytesIO(data)) as file:
        pillow = np.asarray(file)
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded is not None
    opencv = cv2.cvtColor(decoded, cv2.COLOR_BGRA2RGBA if decoded.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    return pillow, opencv


def inflated(data: bytes) -> bytes:
    """The PNG's image data inflated by zlib, which checks the Adler-32 at its end."""
    position, stream = 8, b""
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        if data[position + 4 : position + 8] == b"IDAT":
            stream += data[position + 8 : position + 8 + length]
        position += 12 + length
    return zlib.decompress(stream)


@pytest.mark.parametrize("channels", [3, 4])
@pytest.mark.parametrize("make", IMAGES)
def test_a_band_is_a_png_read_back_exactly(make, channels: int) -> None:
    for width, height in SIZES:
        pixels = make(width, height, channels)
        png = _Band(pixels).png({"prompt": "a band"})
        for decoded in read_both(png):
            assert np.array_equal(decoded, pixels), (make.__name__, width, height)
        assert inflated(png) == pngrows.filter_rows(pixels).tobytes()


LAYOUTS = [[13], [1, 12], [5, 5, 3], [1, 1, 1, 10], [4, 1, 8]]
"""Tile heights of a 13-row layer: a single tile, one-row tiles, odd heights."""


@pytest.mark.parametrize("channels", [3, 4])
@pytest.mark.parametrize("make", IMAGES)
def test_tiles_joined_are_the_whole_layer(make, channels: int, tmp_path: Path) -> None:
    for width in (1, 6, 211):
        pixels = make(width, 13, channels)
        for layout in LAYOUTS:
            path = tmp_path / "layer.png"
            layer = _LayerPng(path, width, 13, channels, {"prompt": "a layer"})
            bounds = np.cumsum([0, *layout])
            for top, bottom in itertools.pairwise(bounds):
                band = _Band(np.ascontiguousarray(pixels[top:bottom]))
                tile = band.png({})
                for decoded in read_both(tile):
                    assert np.array_equal(decoded, pixels[top:bottom])
                layer.add(band)
            layer.finish()
            joined = path.read_bytes()
            for decoded in read_both(joined):
                assert np.array_equal(decoded, pixels), (make.__name__, width, layout)
            scanlines = np.frombuffer(inflated(joined), np.uint8).reshape(13, -1)
            assert (scanlines[bounds[:-1], 0] <= pngrows.SUB).all(), "a band's first row needs no row above"


def test_a_band_of_another_width_or_past_the_end_is_refused(tmp_path: Path) -> None:
    layer = _LayerPng(tmp_path / "layer.png", 6, 4, 4, {})
    with pytest.raises(ValueError, match="band"):
        layer.add(_Band(stripes(5, 2)))
    with pytest.raises(ValueError, match="band"):
        layer.add(_Band(stripes(6, 2, 3)))
    layer.add(_Band(stripes(6, 3)))
    with pytest.raises(ValueError, match="band"):
        layer.add(_Band(stripes(6, 2)))
    with pytest.raises(ValueError, match="3 of 4 rows"):
        layer.finish()
    layer.abandon()


def test_the_store_writes_each_tile_and_the_joined_layer(tmp_path: Path) -> None:
    """Result tiles of an upscale through the store's writer: one PNG each and ``<job>.png``."""
    pixels = np.concatenate([photo(211, 60), flat(211, 41), smooth(211, 50)])
    heights = [60, 41, 50]
    store = OutputStore(tmp_path, memory_budget_bytes=0)
    store.start()
    top, outputs = 0, []
    for index, height in enumerate(heights):
        upscale = {"layer": {"x": 0, "y": 0, "width": 211, "height": 151}, "tiles": len(heights)}
        canvas = {"x": 0, "y": 0, "width": 211, "height": 151}
        tile = np.ascontiguousarray(pixels[top : top + height])
        item = StoredResult("b" * 32, index, "owner", "name", 0, top, canvas, {"seed": 1}, tile, None, upscale)
        outputs.append(store.save(item).output)
        top += height
    store.stop()
    top = 0
    for output, height in zip(outputs, heights, strict=True):
        assert output is not None
        for decoded in read_both(Path(output).read_bytes()):
            assert np.array_equal(decoded, pixels[top : top + height])
        top += height
    whole = Path(str(outputs[0])).with_name("b" * 32 + ".png")
    for decoded in read_both(whole.read_bytes()):
        assert np.array_equal(decoded, pixels)
