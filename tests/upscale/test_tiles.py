"""Tiled upscaling: the same pixels as one big tile away from tile borders, no seam at them, memory
bounded by the tile size (a 16k-wide result in a subprocess), and any factor on the exact grid."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from tests.canvas.helpers import photo, seam_ratio
from tests.upscale import models
from underpaint.canvas.geometry import Box
from underpaint.canvas.tiles import TiledPass
from underpaint.daemon.upscaling import Lookahead
from underpaint.engines.upscale import MARGIN, ClassicalUpscaler, SpandrelUpscaler, Upscaler, opaque_rows, tile_process

SEAM_THRESHOLD = 1.10
"""As tests/canvas/test_seam.py: at most 10% more edge energy on the tile borders than the untiled
result has there; a hard per-tile step (test_the_seam_metric_catches_a_tile_step) scores far above."""


def upscale(image: np.ndarray, upscaler: Upscaler, factor: float, tile: int) -> tuple[np.ndarray, TiledPass]:
    height, width = image.shape[:2]
    out_w, out_h = round(width * factor), round(height * factor)
    tiled = TiledPass(width, height, out_w, out_h, tile, MARGIN)
    out = np.zeros((out_h, out_w, 4), np.uint8)

    def emit(row: int, rows: np.ndarray) -> None:
        out[row : row + rows.shape[0]] = rows

    opaque = bool((image[..., 3] == 255).all())
    process = tile_process(upscaler, factor, tiled.scale_x, tiled.scale_y, opaque)
    tiled.run(lambda box: image[box.y : box.bottom, box.x : box.right], process, opaque_rows(emit) if opaque else emit)
    return out, tiled


def borders(tiled: TiledPass) -> tuple[np.ndarray, list[int], list[int]]:
    """A checkerboard of the output's tile cores (its edges are every tile border), and the border lines."""
    out_xs = [round(x * tiled.scale_x) for x in tiled.cuts(tiled.in_w)]
    out_ys = [round(y * tiled.scale_y) for y in tiled.cuts(tiled.in_h)]
    board = np.zeros((tiled.out_h, tiled.out_w), bool)
    for j, (y0, y1) in enumerate(itertools.pairwise(out_ys)):
        for i, (x0, x1) in enumerate(itertools.pairwise(out_xs)):
            board[y0:y1, x0:x1] = (i + j) % 2 == 0
    return board, out_xs[1:-1], out_ys[1:-1]


def away_from(lines_x: list[int], lines_y: list[int], shape: tuple[int, int], distance: int) -> np.ndarray:
    keep = np.ones(shape, bool)
    for x in lines_x:
        keep[:, max(0, x - distance) : x + distance] = False
    for y in lines_y:
        keep[max(0, y - distance) : y + distance] = False
    return keep


@pytest.fixture(scope="module")
def picture() -> np.ndarray:
    return photo("chelsea")[40:136, 100:228].copy()  # 128 x 96: fur, eyes, whiskers


@pytest.fixture(scope="module")
def upscalers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Upscaler]:
    folder = tmp_path_factory.mktemp("models")
    return {
        "classical": ClassicalUpscaler(),
        "compact": SpandrelUpscaler(str(models.compact_x2(folder)), "cpu"),
        "swinir": SpandrelUpscaler(str(models.swinir_x2(folder)), "cpu"),
    }


@pytest.mark.parametrize(
    ("name", "factor", "tolerance"),
    [("classical", 2.5, 1), ("classical", 4.0, 1), ("compact", 2.0, 2), ("compact", 3.0, 2), ("swinir", 2.0, 3)],
)
def test_tiled_equals_one_tile_away_from_borders_and_has_no_seam(
    picture: np.ndarray, upscalers: dict[str, Upscaler], name: str, factor: float, tolerance: int
) -> None:
    upscaler = upscalers[name]
    tiled, grid = upscale(picture, upscaler, factor, tile=40)
    whole, single = upscale(picture, upscaler, factor, tile=4096)
    assert grid.tiles == 12 and single.tiles == 1  # 4 x 3 tiles
    assert tiled.shape == whole.shape == (round(96 * factor), round(128 * factor), 4)
    board, lines_x, lines_y = borders(grid)
    blend = int(MARGIN * factor / 2)
    difference = np.abs(tiled.astype(int) - whole.astype(int))[..., :3].max(axis=2)
    away = away_from(lines_x, lines_y, difference.shape, blend + 1)
    assert difference[away].max() <= tolerance, f"{name}: tiles differ by {difference[away].max()} inside"
    assert difference.mean() < 0.5
    ratio = seam_ratio(whole, tiled, board, np.full(board.shape, 255, np.uint8))
    assert ratio <= SEAM_THRESHOLD, f"{name} x{factor}: seam ratio {ratio:.3f} at tile borders"


def test_the_seam_metric_catches_a_tile_step(picture: np.ndarray) -> None:
    """Tiles that disagree (here: each a little brighter than the last, no blending) must fail."""
    upscaler = ClassicalUpscaler()
    whole, _ = upscale(picture, upscaler, 2.0, tile=4096)
    height, width = picture.shape[:2]
    tiled = TiledPass(width, height, 2 * width, 2 * height, 40, margin=0)
    out = np.zeros_like(whole)
    process = tile_process(upscaler, 2.0, 2.0, 2.0, opaque=False)
    counter = iter(range(100))

    def stepped(tile: np.ndarray, source: Box, target: Box) -> np.ndarray:
        made = process(tile, source, target)
        made[..., :3] += 6 * next(counter)
        return made

    def emit(row: int, rows: np.ndarray) -> None:
        out[row : row + rows.shape[0]] = rows

    tiled.run(lambda box: picture[box.y : box.bottom, box.x : box.right], stepped, emit)
    board, _, _ = borders(tiled)
    assert seam_ratio(whole, out, board, np.full(board.shape, 255, np.uint8)) > SEAM_THRESHOLD


def test_the_lookahead_gives_the_pass_the_same_tiles_and_hands_back_a_failure(picture: np.ndarray, upscalers) -> None:
    """The daemon's pass computes the next tile on a thread of its own: same pixels as the plain pass,
    at most one tile ahead, and a model that fails fails the pass (no hang)."""
    compact = upscalers["compact"]
    height, width = picture.shape[:2]
    tiled = TiledPass(width, height, 2 * width, 2 * height, 40, MARGIN)
    process = tile_process(compact, 2.0, 2.0, 2.0, opaque=False)
    made: list[Box] = []

    def counted(tile: np.ndarray, source: Box, target: Box) -> np.ndarray:
        made.append(source)
        if len(made) == 5:
            raise RuntimeError("the model failed")
        return process(tile, source, target)

    def read(box: Box) -> np.ndarray:
        return picture[box.y : box.bottom, box.x : box.right]

    rows: list[tuple[int, np.ndarray]] = []
    ahead = Lookahead(tiled, read, counted, threading.Event())
    with pytest.raises(RuntimeError, match="the model failed"):
        tiled.run(read, ahead, lambda row, band: rows.append((row, band)))
    ahead.close()
    assert len(rows) == 1  # the first tile row (4 tiles) finished, the fifth failed
    assert len(made) in (5, 6)  # the sixth may have started: at most one tile ahead
    again = Lookahead(tiled, read, process, threading.Event())
    out = np.zeros((2 * height, 2 * width, 4), np.uint8)
    tiled.run(read, again, lambda row, band: out.__setitem__(slice(row, row + band.shape[0]), band))
    again.close()
    plain, _ = upscale(picture, compact, 2.0, tile=40)
    assert np.array_equal(out, plain)


def test_a_model_pass_then_exact_resampling_gives_any_factor(picture: np.ndarray, upscalers) -> None:
    """A 2x model at x3 runs two passes (4x) and shrinks exactly; x1.5 one pass and shrinks."""
    compact = upscalers["compact"]
    assert (compact.passes(3.0), compact.passes(1.5), compact.passes(2.0), compact.passes(4.0)) == (2, 1, 1, 2)
    out, _ = upscale(picture, compact, 1.5, tile=64)
    assert out.shape[:2] == (144, 192)
    assert (out[..., 3] == 255).all()  # an opaque picture stays opaque (its alpha added to the finished rows)
    half = picture.copy()
    half[:, :64, 3] = 0
    out, _ = upscale(half, compact, 1.5, tile=40)
    assert (out[:, :90, 3] == 0).all() and (out[:, 102:, 3] == 255).all()  # the alpha scaled alongside


BIG = """
import json, sys
import numpy as np
from underpaint.canvas.tiles import TiledPass
import threading
from underpaint.daemon.upscaling import Lookahead, memory_bound
from underpaint.engines.upscale import MARGIN, ClassicalUpscaler, UpscalePlan, tile_process
from underpaint.canvas.geometry import Box
width, height, factor = 4096, int(sys.argv[1]), 4.0
rng = np.random.default_rng(0)
image = np.empty((height, width, 4), np.uint8)
image[..., :3] = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
image[..., 3] = 255
up = ClassicalUpscaler()
out_w, out_h = round(width * factor), round(height * factor)
tile = min(up.tile_for(factor, None), 32 * 1024 * 1024 // (4 * out_w * 4))
plan = UpscalePlan(factor, up, Box(0, 0, width, height), Box(0, 0, out_w, out_h), Box(0, 0, out_w, out_h), tile, 128)
tiled = TiledPass(width, height, out_w, out_h, tile, MARGIN)
process = tile_process(up, factor, tiled.scale_x, tiled.scale_y, opaque=False)
process(image[:64, :64], Box(0, 0, 64, 64), Box(0, 0, 200, 200))  # warm up OpenCV's buffers
def status(field):
    with open("/proc/self/status") as lines:
        return next(int(line.split()[1]) * 1024 for line in lines if line.startswith(field + ":"))
with open("/proc/self/clear_refs", "w") as clear:
    clear.write("5")  # the peak (VmHWM) restarts from here: what imports and set-up reached does not count
before = status("VmRSS")
rows = []
read = lambda b: image[b.y:b.bottom, b.x:b.right]
ahead = Lookahead(tiled, read, process, threading.Event())  # the next tile made while one is blended
tiled.run(read, ahead, lambda y, r: rows.append((y, r.shape, int(r[..., :3].mean()))))
ahead.close()
peak = status("VmHWM")
print(json.dumps({"growth": peak - before, "bound": memory_bound(plan), "rows": sum(s[0] for _, s, _ in rows),
                  "width": rows[0][1][1], "output_bytes": out_w * out_h * 4}))
"""


def test_a_16k_wide_result_stays_within_the_stated_memory_bound(tmp_path: Path) -> None:
    """4096 x 1024 -> 16384 x 4096 (classical x4) in a fresh process: the peak RSS grows by less than
    ``memory_bound`` (about a third of the 256 MiB result), so a 16384 x 16384 result needs no more."""
    script = tmp_path / "big.py"
    script.write_text(BIG)
    done = subprocess.run([sys.executable, str(script), "1024"], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    facts = json.loads(done.stdout.strip().splitlines()[-1])
    assert facts["rows"] == 4096 and facts["width"] == 16384
    assert facts["growth"] <= facts["bound"], facts
    assert facts["bound"] < facts["output_bytes"] / 2, facts
