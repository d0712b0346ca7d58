"""Real-host test infrastructure: find the Krita / GIMP hosts tools/hosts/provision.sh made, run them.

    from hosts import get_krita, run_krita, get_gimp, run_gimp_batch, KRITA_LABELS, GIMP_LABELS

(`hosts` is importable because pytest puts tests/ on sys.path for the package tests/hosts; inside
tests/hosts use `from . import ...`.) See tools/hosts/README.md.
"""

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
