"""Selecting an object in GIMP: the ``underpaint-segment`` procedure's arguments and the request a
panel or a procedure call makes from them, free of GTK. The job itself is the shared controller's
(``Controller.segment``); the mask becomes the selection in ``GimpCanvas.apply_selection``.

Click points come from GIMP's own Paths tool: every anchor of the path "add points" is a point on
the object, every anchor of "remove points" one off it.
"""

from __future__ import annotations

from typing import Any

from underpaint_protocol.controller import UserError
from underpaint_protocol.jobs import Bounds
from underpaint_protocol.segment import COMBINE_MODES, SegmentRequest

ADD_PATH = "add points"
REMOVE_PATH = "remove points"
PROCEDURE = "underpaint-segment"


def parse_points(text: str, name: str) -> tuple[tuple[int, int], ...]:
    """``"x,y; x,y"`` -> points (the procedure's string arguments)."""
    points = []
    for item in text.replace(" ", "").split(";"):
        if not item:
            continue
        try:
            x, y = (int(v) for v in item.split(","))
        except ValueError:
            raise UserError(f"{name}: write points as x,y;x,y (whole pixels), not {item!r}") from None
        points.append((x, y))
    return tuple(points)


def parse_box(text: str) -> Bounds | None:
    """``"x,y,width,height"`` -> a box; empty -> None."""
    text = text.replace(" ", "")
    if not text:
        return None
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        raise UserError(f"box: write it as x,y,width,height (whole pixels), not {text!r}") from None
    return Bounds(x, y, w, h)


def request_for(
    canvas: Any,
    *,
    combine: str,
    model: str | None,
    refine_selection: bool = False,
    box: Bounds | None = None,
    text: str | None = None,
    points: tuple[tuple[int, int], ...] | None = None,
    negative_points: tuple[tuple[int, int], ...] | None = None,
) -> SegmentRequest:
    """What the user gave: ``refine_selection`` also takes the selection's bounds as the box (a
    drawn rectangle is such a box); points default to the "add points" / "remove points" paths."""
    if refine_selection and box is None:
        box = canvas.selection()
    return SegmentRequest(
        box=box,
        points=points if points is not None else tuple(canvas.points(ADD_PATH)),
        negative_points=negative_points if negative_points is not None else tuple(canvas.points(REMOVE_PATH)),
        text=text,
        refine_selection=refine_selection and canvas.selection() is not None,
        model=model or None,
        combine=combine,
    )


def add_segment_arguments(procedure: Any, flags: Any) -> None:
    procedure.add_string_argument(
        "combine", "_Combine", f"How the object joins the selection: {', '.join(COMBINE_MODES)}", "replace", flags
    )
    procedure.add_boolean_argument(
        "refine-selection",
        "_Refine the selection",
        "Start from the current selection: its bounds as the box, its shape as the rough mask",
        True,
        flags,
    )
    procedure.add_string_argument("box", "_Box", "x,y,width,height; empty: the selection's bounds", "", flags)
    procedure.add_string_argument("text", "_Words", "What to select, in words; empty: none", "", flags)
    procedure.add_string_argument(
        "points", "_Add points", f"x,y;x,y on the object; empty: the anchors of the path '{ADD_PATH}'", "", flags
    )
    procedure.add_string_argument(
        "negative-points",
        "_Remove points",
        f"x,y;x,y off the object; empty: the anchors of the path '{REMOVE_PATH}'",
        "",
        flags,
    )
    procedure.add_string_argument("model", "_Model", "Segment model id; empty: the daemon's choice", "", flags)


def request_from_config(config: Any, canvas: Any) -> SegmentRequest:
    def text(name: str) -> str:
        return str(config.get_property(name) or "")

    points, negative = text("points"), text("negative-points")
    return request_for(
        canvas,
        combine=text("combine").strip() or "replace",
        model=text("model").strip() or None,
        refine_selection=bool(config.get_property("refine-selection")),
        box=parse_box(text("box")),
        text=text("text") or None,
        points=parse_points(points, "points") if points.strip() else None,
        negative_points=parse_points(negative, "negative-points") if negative.strip() else None,
    )
