"""A pickle that proves it was opened: what a malicious checkpoint does, made harmless. Every refusal
of pickled weights is tested with it, and each test also unpickles it the ordinary way or checks the
marker, so that the refusal is what kept the marker away."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class Payload:
    """Unpickling this creates ``marker`` (an empty file)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))
