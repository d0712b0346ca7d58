"""Who may drive the daemon: loopback by default, a token for browsers and remote clients.

A web page in the user's browser can open a websocket to localhost; it always sends an ``Origin``
header (Figma's plugin iframe sends ``Origin: null``). So any connection with an Origin, and every
connection when the daemon listens beyond loopback, must present the token from the user's config
folder.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import secrets
import stat
import sys
from pathlib import Path

log = logging.getLogger("underpaint.auth")


def load_or_create_token(path: Path) -> str:
    """Read the token, creating it (mode 600, folder 700) on first run; a token file others can
    read is tightened to 600 with a warning."""
    try:
        token = path.read_text(encoding="utf-8").strip()
        if token:
            _tighten(path)
            return token
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    token = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(token + "\n")
    os.chmod(path, 0o600)
    return token


def _tighten(path: Path) -> None:
    if sys.platform == "win32":
        return  # permissions there are ACLs, inherited from the user's profile folder
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        os.chmod(path, 0o600)
        log.warning("the token file %s was readable by others (mode %03o); it is now 600", path, mode)


def is_loopback_host(host: str) -> bool:
    """Whether binding ``host`` keeps the daemon reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def token_required(origin: str | None, loopback_bind: bool) -> bool:
    return origin is not None or not loopback_bind


def token_matches(expected: str, presented: str | None) -> bool:
    return presented is not None and hmac.compare_digest(expected.encode(), presented.encode())
