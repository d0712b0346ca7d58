"""Loopback by default, a token for every browser origin and for any non-loopback bind."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed

from tests.daemon.conftest import RunningDaemon, hello, raw_connect, recv_json, start_daemon
from underpaint.daemon.auth import is_loopback_host, load_or_create_token


def refused(url: str, origin: str | None, token: str | None) -> dict:
    connection = raw_connect(url, origin=origin)
    connection.send(hello(token=token))
    reply = recv_json(connection)
    with pytest.raises(ConnectionClosed):
        connection.recv(timeout=5)
    assert connection.close_code == 1008
    return reply


@pytest.mark.parametrize("origin", ["null", "https://evil.example", "http://localhost:7860"])
def test_browser_origins_need_the_token(daemon: RunningDaemon, origin: str) -> None:
    for token in (None, "wrong-token"):
        reply = refused(daemon.url, origin, token)
        assert reply["type"] == "error" and reply["code"] == "unauthorized" and reply["field"] == "token"
    connection = raw_connect(daemon.url, origin=origin)
    connection.send(hello(token=daemon.token))
    assert recv_json(connection)["type"] == "welcome"
    connection.close()


def test_loopback_clients_without_origin_need_no_token(daemon: RunningDaemon) -> None:
    connection = raw_connect(daemon.url)
    connection.send(hello())
    assert recv_json(connection)["type"] == "welcome"
    connection.close()


def test_non_loopback_bind_requires_the_token_from_everyone(tmp_path: Path) -> None:
    running = start_daemon(tmp_path, host="0.0.0.0")
    try:
        url = running.url  # reached through loopback; the daemon listens on all interfaces
        reply = refused(url, None, None)
        assert reply["code"] == "unauthorized"
        connection = raw_connect(url)
        connection.send(hello(token=running.token))
        assert recv_json(connection)["type"] == "welcome"
        connection.close()
    finally:
        running.thread.stop()


def test_token_file_is_private_and_stable(tmp_path: Path) -> None:
    path = tmp_path / "config" / "underpaint" / "token"
    token = load_or_create_token(path)
    assert len(token) >= 32
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_or_create_token(path) == token


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("127.5.5.5", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.2", False),
        ("myhost", False),
    ],
)
def test_loopback_detection(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def test_token_command_prints_the_token(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from underpaint.cli import main

    assert main(["token", "--token-file", str(tmp_path / "t")]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed and printed == (tmp_path / "t").read_text().strip()


def test_client_gives_up_at_once_when_refused_for_good(tmp_path: Path) -> None:
    import time

    from underpaint_protocol.client import DaemonError, UnderpaintClient

    running = start_daemon(tmp_path, host="0.0.0.0")
    try:
        client = UnderpaintClient(running.url, client_name="pytest", reconnect=True)
        started = time.monotonic()
        with pytest.raises(DaemonError) as refused:
            client.connect(timeout=20)
        assert refused.value.code == "unauthorized"
        assert time.monotonic() - started < 5
    finally:
        running.thread.stop()
