"""The shared client's live session model without any I/O: what changed, frames, results, state."""

from __future__ import annotations

import random

from underpaint_protocol.controller import Request
from underpaint_protocol.jobs import Bounds
from underpaint_protocol.live import LiveRequest, LiveSession, crop, dirty_bounds
from underpaint_protocol.session import ImageData


def image(width: int, height: int, fill: int = 0) -> ImageData:
    return ImageData("rgba8", width, height, bytes([fill]) * (width * height * 4))


def painted(base: ImageData, rect: Bounds, value: int) -> ImageData:
    data = bytearray(base.data)
    for y in range(rect.y, rect.y + rect.height):
        start = (y * base.width + rect.x) * 4
        data[start : start + rect.width * 4] = bytes([value]) * (rect.width * 4)
    return ImageData(base.format, base.width, base.height, bytes(data))


def test_dirty_bounds_is_exactly_the_changed_rectangle() -> None:
    base = image(100, 70)
    assert dirty_bounds(base, base) is None
    rng = random.Random(3)
    for _ in range(40):
        x, y = rng.randrange(100), rng.randrange(70)
        rect = Bounds(x, y, rng.randint(1, 100 - x), rng.randint(1, 70 - y))
        assert dirty_bounds(base, painted(base, rect, 200)) == rect


def test_crop_cuts_rows_of_the_rectangle() -> None:
    base = painted(image(20, 10), Bounds(3, 2, 4, 5), 9)
    cut = crop(base, Bounds(3, 2, 4, 5))
    assert (cut.width, cut.height) == (4, 5) and set(bytes(cut.data)) == {9}


def test_request_spec_covers_the_selection_or_the_whole_canvas() -> None:
    selection = Bounds(4, 5, 30, 20)
    spec = LiveRequest(prompt="fox", strength=0.4, seed=7).spec(64, 48, selection)
    assert spec == {
        "prompt": "fox",
        "negative_prompt": "",
        "canvas": {"width": 64, "height": 48},
        "selection": selection.as_dict(),
        "strength": 0.4,
        "seed": 7,
    }
    assert "selection" not in LiveRequest(whole_canvas=True).spec(64, 48, selection)


def test_session_sends_the_region_first_then_only_what_changed() -> None:
    session = LiveSession()
    assert session.state == "off" and not session.active
    session.starting(LiveRequest(), canvas=None)
    assert session.state == "starting" and session.active
    region = session.started({"session_id": "s1", "region": {"x": 10, "y": 20, "width": 40, "height": 30}})
    assert session.state == "live" and region == Bounds(10, 20, 40, 30)
    whole = image(40, 30)
    assert session.changed(whole) == region  # nothing sent yet: the whole region
    assert session.frame(region, whole) == 1
    assert session.changed(whole) is None
    stroke = painted(whole, Bounds(5, 6, 3, 2), 255)
    changed = session.changed(stroke)
    assert changed == Bounds(15, 26, 3, 2)  # canvas coordinates
    assert session.frame(changed, crop(stroke, Bounds(5, 6, 3, 2))) == 2
    assert session.changed(stroke) is None  # the kept copy was patched
    assert session.bytes_sent == 40 * 30 * 4 + 3 * 2 * 4
    assert session.clip(Bounds(0, 0, 12, 22)) == Bounds(10, 20, 2, 2)
    assert session.clip(Bounds(0, 0, 5, 5)) is None


def test_session_shows_results_in_order_and_ignores_other_sessions() -> None:
    session = LiveSession()
    session.starting(LiveRequest(), canvas=None)
    session.started({"session_id": "s1", "region": {"x": 0, "y": 0, "width": 4, "height": 4}})
    pixels = image(4, 4)

    def result(seq: int, session_id: str = "s1") -> dict:
        layer = {"name": "Live", "x": 0, "y": 0, "width": 4, "height": 4}
        return {"session_id": session_id, "seq": seq, "layer": layer, "dropped": seq - 1, "latency_ms": 5.0}

    assert session.result(result(3), pixels) is not None
    assert session.result(result(2), pixels) is None  # older than what is shown
    assert session.result(result(5, "old"), pixels) is None
    shown = session.result(result(6), pixels)
    assert shown is not None and shown.seq == 6 and session.dropped == 5 and session.results == 2
    assert "frame 6" in session.status()
    session.stopped("gone")
    assert session.state == "off" and session.status() == "Live is off. gone"


def test_live_settings_come_from_the_generate_fields() -> None:
    """The hosts' Live toggle paints with what the panel shows (``LiveRequest.like`` a ``Request``);
    the batch, the outpaint sides and the mode are Generate's own."""
    fields = Request(prompt="a cat", negative_prompt="blur", strength=0.4, seed=9, batch=4, model="tiny-random")
    fields.steps, fields.style, fields.mode, fields.extend = 3, "ink", "outpaint", (0, 0, 8, 0)
    live = LiveRequest.like(fields)
    assert live == LiveRequest(
        prompt="a cat", negative_prompt="blur", strength=0.4, seed=9, model="tiny-random", steps=3, style="ink"
    )
    assert live.spec(64, 48, None) == {
        "prompt": "a cat",
        "negative_prompt": "blur",
        "canvas": {"width": 64, "height": 48},
        "strength": 0.4,
        "seed": 9,
        "model": "tiny-random",
        "steps": 3,
        "style": "ink",
    }
