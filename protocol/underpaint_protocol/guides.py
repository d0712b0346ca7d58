"""Control layers and reference images, host-independent: what a job asks for, whether the model can
take it, and reading the pixels over the planned region (issue 18).

A host only names its layers: a ``ControlLayer`` or ``ReferenceImage`` carries the host's own handle for
a layer (a Krita node, a GIMP layer, a Figma node id, a file for the CLI), and the host's canvas reads
pixels when asked (``LayerCanvas``). Everything else -- the job's ``controls`` / ``references`` items,
the refusal before sending, which rectangle to read -- lives here, once for every host. Standard library
only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from underpaint_protocol.jobs import Bounds
from underpaint_protocol.session import ImageData

CONTROL_KINDS = ("scribble", "lineart", "softedge", "canny", "depth", "pose", "tile")
"""The kinds the protocol knows (a model announces the ones it takes in ``control_kinds``)."""
REFERENCE_TAKES = ("style", "composition", "both")


@dataclass(frozen=True)
class ControlLayer:
    """One layer used as a control: ``layer`` is the host's handle for it, never sent."""

    layer: Any
    kind: str
    strength: float = 1.0
    start: float = 0.0
    end: float = 1.0
    preprocess: bool = False

    def job_item(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "strength": self.strength,
            "start": self.start,
            "end": self.end,
            "preprocess": self.preprocess,
        }


@dataclass(frozen=True)
class ReferenceImage:
    """One reference image (a layer or a file, any size): ``layer`` is the host's handle for it."""

    layer: Any
    take: str = "both"
    weight: float = 0.6

    def job_item(self) -> dict[str, Any]:
        return {"take": self.take, "weight": self.weight}


@runtime_checkable
class LayerCanvas(Protocol):
    """What a host's ``Canvas`` adds to take control layers and references: pixel reads only."""

    def read_layer_region(self, layer: Any, rect: Bounds) -> ImageData:
        """One layer's own pixels (not the merged image) over ``rect`` in canvas coordinates, exactly
        ``rect``'s size, transparent where the layer has no pixels (rgba8, bgra8 or png)."""

    def read_layer(self, layer: Any) -> ImageData:
        """A whole layer (or file) as a reference image, at its own size."""


def add_guides(job: dict[str, Any], controls: tuple[ControlLayer, ...], references: tuple[ReferenceImage, ...]) -> None:
    """Put the ``controls`` / ``references`` items into a ``job`` object (none: the job is unchanged)."""
    if controls:
        job["controls"] = [control.job_item() for control in controls]
    if references:
        job["references"] = [reference.job_item() for reference in references]


def guide_problem(
    model: dict[str, Any] | None,
    controls: tuple[ControlLayer, ...],
    references: tuple[ReferenceImage, ...],
    limits: dict[str, Any],
) -> str | None:
    """What to do instead when the model (its ``welcome.models`` entry) cannot take these, else None."""
    max_controls = int(limits.get("max_controls", len(controls)))
    if len(controls) > max_controls:
        return f"Use at most {max_controls} control layers at once (the daemon's limit)."
    max_references = int(limits.get("max_references", len(references)))
    if len(references) > max_references:
        return f"Use at most {max_references} reference image(s) at once (the daemon's limit)."
    for control in controls:
        if not control.start < control.end:
            return f"The {control.kind} control must start before it ends."
    if model is None:
        return None
    kinds = model.get("control_kinds") or []
    name = model.get("id", "this")
    for control in controls:
        if control.kind not in kinds:
            offer = ", ".join(kinds) if kinds else "no control layers"
            return (
                f"The {name} model cannot use a {control.kind} control layer (it takes {offer}). "
                "Pick another kind or model."
            )
    if references and not model.get("reference_modes"):
        return f"The {name} model cannot use reference images. Pick a model that takes them, or remove them."
    return None


def read_guides(
    canvas: Any,
    planned: dict[str, Any],
    controls: tuple[ControlLayer, ...],
    references: tuple[ReferenceImage, ...],
) -> tuple[list[ImageData], list[ImageData]]:
    """Each control layer over ``planned["control"]`` and each reference whole, in the job's order."""
    if not controls and not references:
        return [], []
    if not isinstance(canvas, LayerCanvas):
        raise TypeError("this host cannot read layers as control layers or references")
    rect = planned.get("control")
    read = []
    if controls:
        if rect is None:
            raise ValueError("the daemon planned no control region; update it")
        bounds = Bounds(**{key: int(rect[key]) for key in ("x", "y", "width", "height")})
        read = [canvas.read_layer_region(control.layer, bounds) for control in controls]
    return read, [canvas.read_layer(reference.layer) for reference in references]
