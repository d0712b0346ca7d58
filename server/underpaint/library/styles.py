"""Styles: named prompt templates, the shipped set plus the user's own in one file.

The user's file lives in their config folder so a style saved from one host is there for every
other; it is read again whenever it changed on disk (a hand edit counts) and written atomically.
A file that cannot be read is never overwritten: it is renamed aside and the user is told where.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from functools import cache
from importlib import resources
from pathlib import Path

from pydantic import ValidationError

from underpaint.errors import JobError
from underpaint_protocol import messages as wire

log = logging.getLogger("underpaint.styles")

PLACEHOLDER = "{prompt}"
FILE_VERSION = 1
MAX_USER_STYLES = 1000


@cache
def builtin_styles() -> tuple[wire.Style, ...]:
    """The shipped set (package data), marked built in."""
    text = resources.files("underpaint.library").joinpath("builtin_styles.json").read_text(encoding="utf-8")
    return tuple(wire.Style(**{**item, "builtin": True}) for item in json.loads(text)["styles"])


def apply_style(spec: wire.JobSpec, style: wire.Style) -> wire.JobSpec:
    """The job with the style applied: its prompt in the template, the negatives joined, and the
    style's settings where the job left them unset."""
    prompt = style.prompt.replace(PLACEHOLDER, spec.prompt)
    if PLACEHOLDER in style.negative_prompt:
        negative = style.negative_prompt.replace(PLACEHOLDER, spec.negative_prompt)
    else:
        negative = ", ".join(part for part in (spec.negative_prompt.strip(), style.negative_prompt.strip()) if part)
    update: dict[str, object] = {"prompt": prompt[:10000], "negative_prompt": negative[:10000]}
    for key in ("model", "steps", "guidance", "strength"):
        if getattr(spec, key) is None and getattr(style, key) is not None:
            update[key] = getattr(style, key)
    if style.loras:
        own = list(spec.loras or [])
        update["loras"] = own + [ref for ref in style.loras if ref.name not in {mine.name for mine in own}]
    return spec.model_copy(update=update)


def _key(name: str) -> str:
    return name.strip().casefold()


class StyleStore:
    """The shipped styles and the user's file. Callable from any thread."""

    def __init__(self, path: Path | None) -> None:
        """``path`` None: only the shipped styles (nothing can be saved)."""
        self.path = path
        self.notice: str | None = None
        """Said to every client listing styles after the user's file was found unreadable (until a restart)."""
        self._lock = threading.Lock()
        self._seen: tuple[int, int] | None = None
        self._user: list[wire.Style] = []

    # ------------------------------------------------------------ reading

    def all(self) -> list[wire.Style]:
        with self._lock:
            return [*builtin_styles(), *self._read()]

    def get(self, name: str, field: str = "job.style") -> wire.Style:
        for style in self.all():
            if _key(style.name) == _key(name):
                return style
        known = ", ".join(style.name for style in self.all())
        raise JobError("unknown_style", f"no style named {name!r}; there are: {known}", field)

    def _read(self) -> list[wire.Style]:
        """The user's styles, re-read only when the file changed; an unreadable file is set aside."""
        if self.path is None:
            return []
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._seen, self._user = None, []
            return []
        seen = (stat.st_mtime_ns, stat.st_size)
        if seen == self._seen:
            return list(self._user)
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or not isinstance(data.get("styles"), list):
                raise ValueError('expected {"version": 1, "styles": [...]}')
            styles = [wire.Style(**{**item, "builtin": False}) for item in data["styles"]]
        except (OSError, ValueError, TypeError, ValidationError) as error:
            self._set_aside(error)
            return []
        self._seen, self._user = seen, styles
        return list(styles)

    def _set_aside(self, error: Exception) -> None:
        assert self.path is not None
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = self.path.with_name(f"{self.path.name}.unreadable-{stamp}")
        number = 1
        while aside.exists():
            number += 1
            aside = self.path.with_name(f"{self.path.name}.unreadable-{stamp}-{number}")
        os.replace(self.path, aside)
        reason = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
        self.notice = (
            f"Your styles file could not be read ({reason}). It was kept as {aside.name} in {aside.parent}; "
            "your styles start afresh. Fix that file and copy the styles back to recover them."
        )
        log.warning("%s", self.notice)
        self._seen, self._user = None, []

    # ------------------------------------------------------------ changing

    def save(self, style: wire.Style) -> None:
        """Add the style, or replace the user's style of the same name."""
        if PLACEHOLDER not in style.prompt:
            where = f"a style's prompt must contain {PLACEHOLDER} where the job's prompt goes"
            raise JobError("invalid_value", where, "style.prompt")
        with self._lock:
            self._refuse_builtin(style.name, "style.name")
            user = [item for item in self._read() if _key(item.name) != _key(style.name)]
            if len(user) >= MAX_USER_STYLES:
                raise JobError("invalid_value", f"at most {MAX_USER_STYLES} styles can be saved", "style")
            self._write([*user, style.model_copy(update={"name": style.name.strip(), "builtin": False})])

    def rename(self, name: str, new_name: str) -> None:
        with self._lock:
            self._refuse_builtin(name, "name")
            self._refuse_builtin(new_name, "new_name")
            user = self._read()
            index = self._index(user, name)
            if _key(name) != _key(new_name) and any(_key(item.name) == _key(new_name) for item in user):
                raise JobError("invalid_value", f"a style named {new_name!r} exists already", "new_name")
            user[index] = user[index].model_copy(update={"name": new_name.strip()})
            self._write(user)

    def delete(self, name: str) -> None:
        with self._lock:
            self._refuse_builtin(name, "name")
            user = self._read()
            del user[self._index(user, name)]
            self._write(user)

    def _index(self, user: list[wire.Style], name: str) -> int:
        for index, item in enumerate(user):
            if _key(item.name) == _key(name):
                return index
        raise JobError("unknown_style", f"you have no style named {name!r}", "name")

    @staticmethod
    def _refuse_builtin(name: str, field: str) -> None:
        if any(_key(style.name) == _key(name) for style in builtin_styles()):
            raise JobError("invalid_value", f"{name!r} is a shipped style; save your version under another name", field)

    def _write(self, styles: list[wire.Style]) -> None:
        if self.path is None:
            raise JobError("invalid_value", "this daemon keeps no styles file; styles cannot be saved", "style")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        items = [style.model_dump(exclude={"builtin"}, exclude_none=True) for style in styles]
        partial = self.path.with_name(self.path.name + ".partial")
        partial.write_text(json.dumps({"version": FILE_VERSION, "styles": items}, indent=2, ensure_ascii=False))
        os.replace(partial, self.path)
        stat = self.path.stat()
        self._seen, self._user = (stat.st_mtime_ns, stat.st_size), list(styles)


def answer(store: StyleStore, request: wire.StylesRequest) -> wire.StyleList:
    """Carry out a ``styles`` request; every action answers with the full list."""
    if request.action == "save":
        if request.style is None:
            raise JobError("invalid_field", "save needs `style`", "style")
        store.save(request.style)
    elif request.action in ("rename", "delete"):
        if request.name is None:
            raise JobError("invalid_field", f"{request.action} needs `name`", "name")
        if request.action == "delete":
            store.delete(request.name)
        elif request.new_name is None:
            raise JobError("invalid_field", "rename needs `new_name`", "new_name")
        else:
            store.rename(request.name, request.new_name)
    return wire.StyleList(request_id=request.request_id, styles=store.all(), notice=store.notice)
