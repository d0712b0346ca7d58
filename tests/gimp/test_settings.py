"""The panel's remembered settings."""

from __future__ import annotations

import stat
from pathlib import Path

from underpaint_gimp import settings


def test_round_trip_private_file(tmp_path: Path) -> None:
    path = settings.settings_path(tmp_path / "GIMP" / "3.0")
    s = settings.Settings(server="ws://10.0.0.2:7423", token="secret", prompt="a fox", seed=5, batch=3)
    settings.save(path, s)
    assert settings.load(path) == s
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_bad_or_missing_files_give_defaults(tmp_path: Path) -> None:
    assert settings.load(tmp_path / "none.json") == settings.Settings()
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert settings.load(bad) == settings.Settings()
    odd = tmp_path / "odd.json"
    odd.write_text('{"batch": 99, "strength": "x", "seed": "12", "unknown": 1}')
    loaded = settings.load(odd)
    assert loaded.batch == 16 and loaded.strength == 1.0 and loaded.seed == 12


def test_daemon_token_from_the_users_config(tmp_path: Path) -> None:
    assert settings.daemon_token({"HOME": str(tmp_path)}) == ""
    (tmp_path / ".config" / "underpaint").mkdir(parents=True)
    (tmp_path / ".config" / "underpaint" / "token").write_text("tok\n")
    assert settings.daemon_token({"HOME": str(tmp_path)}) == "tok"


def test_full_seed_range_and_the_old_magic_values(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    s = settings.Settings(seed=settings.SEED_MAX, seed_locked=True, steps=30, model_steps=False, strength=0.35)
    settings.save(path, s)
    assert settings.load(path) == s
    path.write_text('{"seed": -1, "steps": 0}')  # 0.1 wrote -1 for "random", 0 for "model default"
    old = settings.load(path)
    assert (old.seed_locked, old.model_steps, old.steps) == (False, True, 20)
    path.write_text('{"seed": 99999999999}')
    assert settings.load(path).seed == settings.SEED_MAX
