"""What the panel remembers between sessions, in a small JSON file in GIMP's config folder."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from underpaint_protocol.constants import DEFAULT_URL
from underpaint_protocol.panel import SEED_MAX

FILE_NAME = "underpaint.json"


@dataclass
class Settings:
    server: str = DEFAULT_URL
    token: str = ""
    model: str = ""
    prompt: str = ""
    negative_prompt: str = ""
    strength: float = 1.0
    """A fraction 0..1 (the panel shows it as 0-100%)."""
    seed: int = 0
    """The locked seed, or the one used last."""
    seed_locked: bool = False
    """False: a new random seed for every job."""
    batch: int = 1
    steps: int = 20
    model_steps: bool = True
    """True: the model's own default number of steps (``steps`` is kept for when it is unticked)."""
    expand_left: int = 0
    expand_top: int = 0
    expand_right: int = 256
    expand_bottom: int = 0
    land_directly: bool = False
    """False: results first appear in a preview layer, to step through and Apply or Discard."""
    style: str = ""
    """The style chosen in the prompt library ("" for none)."""
    client_id: str = ""
    """The identity the daemon gave this panel: the history shows its results across restarts."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Settings:
        settings = cls()
        for item in fields(cls):
            if item.name not in data:
                continue
            value = data[item.name]
            default = getattr(settings, item.name)
            try:
                value = type(default)(value)
            except (TypeError, ValueError):
                continue
            setattr(settings, item.name, value)
        if isinstance(data.get("seed"), int) and data["seed"] < 0:  # written by 0.1: -1 meant random
            settings.seed, settings.seed_locked = 0, False
        if data.get("steps") == 0 and "model_steps" not in data:  # written by 0.1: 0 meant the model's default
            settings.steps, settings.model_steps = 20, True
        settings.strength = min(1.0, max(0.0, settings.strength))
        settings.seed = min(SEED_MAX, max(0, settings.seed))
        settings.batch = min(16, max(1, settings.batch))
        settings.steps = min(200, max(1, settings.steps))
        return settings


def settings_path(config_dir: str | os.PathLike[str]) -> Path:
    return Path(config_dir) / FILE_NAME


def load(path: Path) -> Settings:
    """The saved settings, or the defaults when there are none (or the file is unreadable)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return Settings()
    return Settings.from_dict(data) if isinstance(data, dict) else Settings()


def save(path: Path, settings: Settings) -> None:
    """Write atomically; the token is a secret, so the file is readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(path.name + ".tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(asdict(settings), handle, indent=2)
    os.replace(temp, path)


def daemon_token(environ: dict[str, str] | None = None) -> str:
    """The local daemon's token, when this user's daemon left one where `underpaint serve` puts it.

    Loopback connections without a browser Origin do not need it, but a daemon started with
    ``--host`` does; reading it spares the user a copy and paste on their own machine.
    """
    env = os.environ if environ is None else environ
    candidates = []
    if env.get("APPDATA"):
        candidates.append(Path(env["APPDATA"]) / "underpaint" / "token")
    home = Path(env.get("HOME") or Path.home())
    candidates.append(Path(env.get("XDG_CONFIG_HOME") or home / ".config") / "underpaint" / "token")
    candidates.append(home / "Library" / "Application Support" / "underpaint" / "token")
    for path in candidates:
        try:
            token = path.read_text(encoding="utf-8").strip()
        except OSError:
            continue
        if token:
            return token
    return ""
