"""Find the real Krita / GIMP hosts that tools/hosts/provision.sh made available.

provision.sh writes ``$UNDERPAINT_HOSTS_CACHE/hosts.json`` (default ``/var/cache/underpaint-hosts``);
each entry names a host label, whether it runs on the machine itself or inside a Debian root, and its
executable. A host is only reported when its files are really there (root stamp + executable).
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOLS_DIR = REPO_ROOT / "tools" / "hosts"
IN_ROOT = TOOLS_DIR / "in-root.sh"
PROVISION = TOOLS_DIR / "provision.sh"

KRITA_LABELS = ("krita5", "krita6")
GIMP_LABELS = ("gimp3.0", "gimp3.2")
ALL_LABELS = KRITA_LABELS + GIMP_LABELS


def cache_dir() -> Path:
    return Path(os.environ.get("UNDERPAINT_HOSTS_CACHE", "/var/cache/underpaint-hosts"))


class HostMissing(RuntimeError):
    """A host the tests need is not provisioned on this machine."""


def _missing_message(label: str, why: str) -> str:
    return (
        f"host {label!r} is not available: {why}. Run `sudo {PROVISION.relative_to(REPO_ROOT)}` "
        f"(as root; caches under {cache_dir()}, override with UNDERPAINT_HOSTS_CACHE), then rerun the tests."
    )


@dataclass(frozen=True)
class Host:
    label: str  # "krita5", "krita6", "gimp3.0", "gimp3.2"
    kind: str  # "krita" or "gimp"
    exe: str  # absolute path of the executable, inside `root` when there is one
    root: Path | None  # Debian root the host runs in (via tools/hosts/in-root.sh); None = this machine
    package_version: str  # Debian package version, e.g. "1:5.1.5+dfsg-2+deb12u1"

    @property
    def in_root(self) -> bool:
        return self.root is not None

    def describe(self) -> str:
        where = f"root {self.root}" if self.root else "this machine"
        return f"{self.label} ({self.exe} {self.package_version}, {where})"


@dataclass(frozen=True)
class KritaHost(Host):
    @property
    def major(self) -> int:
        return int(self.label.removeprefix("krita"))


@dataclass(frozen=True)
class GimpHost(Host):
    @property
    def series(self) -> str:  # "3.0" / "3.2": also the config folder name GIMP uses
        return self.label.removeprefix("gimp")


def _load_manifest(label: str) -> dict:
    path = cache_dir() / "hosts.json"
    if not path.is_file():
        raise HostMissing(_missing_message(label, f"no manifest {path} (nothing provisioned yet)"))
    return json.loads(path.read_text())


def _validate(entry: dict) -> Host:
    label = entry["label"]
    root = Path(entry["root"]) if entry.get("root") else None
    exe = entry["exe"]
    if root is not None:
        stamp = root.parent / f"{root.name}.stamp"
        if not stamp.is_file():
            raise HostMissing(_missing_message(label, f"root {root} is incomplete (no {stamp})"))
        exe_path = Path(str(root) + exe)
    else:
        exe_path = Path(exe)
    if not (exe_path.is_file() and os.access(exe_path, os.X_OK)):
        raise HostMissing(_missing_message(label, f"{exe_path} is missing"))
    cls = KritaHost if entry["kind"] == "krita" else GimpHost
    return cls(label=label, kind=entry["kind"], exe=exe, root=root, package_version=entry.get("package_version", ""))


def get_host(label: str) -> Host:
    """The host with this label, or HostMissing saying to run provision.sh (tests must not skip)."""
    if label not in ALL_LABELS:
        raise ValueError(f"unknown host label {label!r}; known: {ALL_LABELS}")
    for entry in _load_manifest(label).get("hosts", []):
        if entry.get("label") == label:
            return _validate(entry)
    raise HostMissing(_missing_message(label, "not listed in the manifest"))


def get_krita(label: str) -> KritaHost:
    host = get_host(label)
    assert isinstance(host, KritaHost)
    return host


def get_gimp(label: str) -> GimpHost:
    host = get_host(label)
    assert isinstance(host, GimpHost)
    return host


def _available(labels: tuple[str, ...]) -> list[Host]:
    out = []
    for label in labels:
        with contextlib.suppress(HostMissing):
            out.append(get_host(label))
    return out


def krita_hosts() -> list[KritaHost]:
    """The Krita hosts that are provisioned (any subset of krita5, krita6).

    Tests should parametrize over KRITA_LABELS and call get_krita(label) instead, so that a missing host
    fails the run rather than silently shrinking it.
    """
    return [h for h in _available(KRITA_LABELS) if isinstance(h, KritaHost)]


def gimp_hosts() -> list[GimpHost]:
    """The GIMP hosts that are provisioned (any subset of gimp3.0, gimp3.2); see krita_hosts()."""
    return [h for h in _available(GIMP_LABELS) if isinstance(h, GimpHost)]
