"""Real-host test infrastructure: find the Krita / GIMP hosts tools/hosts/provision.sh made, run them.

    from hosts import get_krita, run_krita, get_gimp, run_gimp_batch, KRITA_LABELS, GIMP_LABELS

(`hosts` is importable because pytest puts tests/ on sys.path for the package tests/hosts; inside
tests/hosts use `from . import ...`.) See tools/hosts/README.md.
"""

import time
from pathlib import Path

from .discovery import (
    ALL_LABELS,
    GIMP_LABELS,
    KRITA_LABELS,
    REPO_ROOT,
    GimpHost,
    Host,
    HostMissing,
    KritaHost,
    cache_dir,
    get_gimp,
    get_host,
    get_krita,
    gimp_hosts,
    krita_hosts,
)
from .launch import (
    HostRun,
    HostRunError,
    host_command,
    prepare_gimp_config,
    prepare_krita_home,
    run_gimp_batch,
    run_in_host,
    run_krita,
    take_screenshot,
)

ARTIFACTS_DIR = REPO_ROOT / "artifacts"


def daemon_png(path: Path, timeout: float = 60) -> Path:
    """`path`, a PNG in the daemon's outputs folder, once it is there: the daemon writes the PNGs in
    the background after each result (raw first), so a test may look before it has."""
    deadline = time.monotonic() + timeout
    while not path.is_file():
        assert time.monotonic() < deadline, f"the daemon never wrote {path}"
        time.sleep(0.2)
    return path


__all__ = [
    "ALL_LABELS",
    "ARTIFACTS_DIR",
    "GIMP_LABELS",
    "KRITA_LABELS",
    "REPO_ROOT",
    "GimpHost",
    "Host",
    "HostMissing",
    "HostRun",
    "HostRunError",
    "KritaHost",
    "cache_dir",
    "daemon_png",
    "get_gimp",
    "get_host",
    "get_krita",
    "gimp_hosts",
    "host_command",
    "krita_hosts",
    "prepare_gimp_config",
    "prepare_krita_home",
    "run_gimp_batch",
    "run_in_host",
    "run_krita",
    "take_screenshot",
]
