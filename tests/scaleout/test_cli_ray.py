"""`underpaint serve --workers ray` as a real process: starts its own local Ray, serves (jobs on the
replica, interrogations in the daemon), stops cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from tests.test_cli import free_port, wait_for_port
from underpaint.engines.interrogate import terms

pytestmark = [pytest.mark.scaleout, pytest.mark.slow]


def test_serve_on_ray_starts_local_ray_reports_its_worker_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config")}
    command = [sys.executable, "-m", "underpaint", "serve", "--workers", "ray", "--port", str(port), "--no-outputs"]
    command += ["--interrogator", "tiny-random"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        wait_for_port(port, process, timeout=240)  # Ray, Serve and a replica start from nothing
        listed = ""
        for _ in range(20):  # the status arrives once the replica has reported
            done = subprocess.run(
                [sys.executable, "-m", "underpaint", "workers", "--server", f"ws://127.0.0.1:{port}"],
                capture_output=True,
                text=True,
                timeout=60,
                env=env,
            )
            listed = done.stdout
            if len(listed.splitlines()) == 2:
                break
            time.sleep(0.5)
        header, row = listed.splitlines()
        assert header.split()[:3] == ["WHERE", "DEVICE", "STATE"]
        assert socket.gethostname() in row and " idle " in row  # no GPU here: one CPU replica
        # interrogate is answered with Ray workers too (in the daemon's process, not a replica's)
        Image.new("RGB", (64, 48), (200, 120, 40)).save(tmp_path / "photo.png")
        ask = ["interrogate", "--server", f"ws://127.0.0.1:{port}", "--image", str(tmp_path / "photo.png")]
        described = subprocess.run(
            [sys.executable, "-m", "underpaint", *ask],
            capture_output=True,
            text=True,
            timeout=240,
            env=env,
        )
        assert described.returncode == 0, described.stderr
        assert any(medium in described.stdout for medium in terms("mediums")), described.stdout
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=120)
        assert process.returncode == 0, output
        assert "the Ray cluster has no GPU: running 1 CPU replica(s)" in output
        assert "stopped cleanly" in output
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
