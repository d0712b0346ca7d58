"""The `underpaint` command as a user runs it: a real daemon process and real generate runs."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

DATA = Path(__file__).parent / "data"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[str], timeout: float = 60) -> None:
    """Wait until the daemon `process` listens on `port`; fail with its output if it exits or never does."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                if process.poll() is None:
                    process.kill()
                raise AssertionError(process.communicate()[0] or "daemon did not start") from None
            time.sleep(0.1)


def underpaint(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "underpaint", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path, subprocess.Popen[str]]]:
    port = free_port()
    outputs = tmp_path / "outputs"
    process = subprocess.Popen(
        [sys.executable, "-m", "underpaint", "serve", "--port", str(port), "--outputs", str(outputs)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=os.environ.copy(),
    )
    wait_for_port(port, process)
    yield f"ws://127.0.0.1:{port}", outputs, process
    if process.poll() is None:
        process.kill()
        process.wait(10)


def test_generate_inpaint_writes_composite_and_layer(served, tmp_path: Path) -> None:
    url, outputs, _ = served
    photo = np.asarray(Image.open(DATA / "coffee.jpg").convert("RGBA"))
    height, width = photo.shape[:2]
    mask = np.zeros((height, width), np.uint8)
    mask[101:180, 233:311] = 255  # odd offsets and sizes
    Image.fromarray(photo).save(tmp_path / "in.png")
    Image.fromarray(mask).save(tmp_path / "mask.png")
    run = underpaint(
        "generate",
        "inpaint",
        "--server",
        url,
        "--image",
        str(tmp_path / "in.png"),
        "--mask",
        str(tmp_path / "mask.png"),
        "--seed",
        "5",
        "--out",
        str(tmp_path / "out.png"),
        "--layer-out",
        str(tmp_path / "layer.png"),
    )
    assert run.returncode == 0, run.stderr
    out = np.asarray(Image.open(tmp_path / "out.png"))
    assert out.shape == photo.shape
    placement = json.loads((tmp_path / "layer.json").read_text())
    layer = np.asarray(Image.open(tmp_path / "layer.png"))
    assert layer.shape == (placement["height"], placement["width"], 4)
    covered = np.zeros((height, width), bool)
    covered[
        placement["y"] : placement["y"] + placement["height"], placement["x"] : placement["x"] + placement["width"]
    ] = layer[..., 3] > 0
    assert covered[101:180, 233:311].all()
    assert np.array_equal(out[~covered], photo[~covered])  # untouched outside the layer
    assert not np.array_equal(out[101:180, 233:311], photo[101:180, 233:311])  # the hole was filled
    assert placement["params"]["seed"] == 5
    # the daemon's PNG comes from its background writer, which runs on idle CPU only
    deadline = time.monotonic() + 60
    while not list(outputs.glob("*/*.png")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(outputs.glob("*/*.png")) and list(outputs.glob("*/*.json"))


def test_generate_outpaint_grows_the_canvas(served, tmp_path: Path) -> None:
    url, _, _ = served
    Image.open(DATA / "chelsea.jpg").save(tmp_path / "cat.png")
    run = underpaint(
        "generate",
        "outpaint",
        "--server",
        url,
        "--image",
        str(tmp_path / "cat.png"),
        "--extend",
        "40,0,25,10",
        "--out",
        str(tmp_path / "wide.png"),
    )
    assert run.returncode == 0, run.stderr
    with Image.open(tmp_path / "wide.png") as wide, Image.open(DATA / "chelsea.jpg") as cat:
        assert wide.size == (cat.width + 65, cat.height + 10)
        grown = np.asarray(wide.convert("RGBA"))
    assert (grown[..., 3] == 255).all()  # nothing left transparent in the new area


def test_generate_txt2img_on_the_classical_engine_explains_itself(served, tmp_path: Path) -> None:
    url, _, _ = served
    run = underpaint("generate", "txt2img", "--server", url, "--prompt", "a cat", "--out", str(tmp_path / "x.png"))
    assert run.returncode == 1
    assert "cannot paint a new image" in run.stderr and "diffusion model" in run.stderr
    assert "unsupported_mode" not in run.stderr and "Traceback" not in run.stderr


def test_generate_without_a_daemon_says_how_to_start_one(tmp_path: Path) -> None:
    run = underpaint(
        "generate", "txt2img", "--server", f"ws://127.0.0.1:{free_port()}", "--out", str(tmp_path / "x.png"), timeout=60
    )
    assert run.returncode == 1
    assert "underpaint serve" in run.stderr


def test_ctrl_c_shuts_the_daemon_down_cleanly(served) -> None:
    _, _, process = served
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 0
    assert "listening on ws://127.0.0.1" in output
    assert "stopped cleanly" in output


def test_models_lists_the_classical_engine() -> None:
    run = underpaint("models")
    assert run.returncode == 0, run.stderr
    assert "classical" in run.stdout and "inpaint, outpaint" in run.stdout


def test_models_lists_the_segment_models() -> None:
    run = underpaint("models", "--segment-model", "CIDAS/clipseg-rd64-refined+facebook/sam-vit-base")
    assert run.returncode == 0, run.stderr
    rows = {line.split()[0]: line for line in run.stdout.splitlines()[1:]}
    assert "segment (box, points, mask)" in rows["refine"]
    assert "segment (box, points)" in rows["tiny-random-sam"] and "segment (text)" in rows["tiny-random-clipseg"]
    assert "segment (text, box, points)" in rows["CIDAS/clipseg-rd64-refined+facebook/sam-vit-base"]


def test_ctrl_c_says_which_jobs_were_interrupted(tmp_path: Path) -> None:
    """A running diffusion job and a queued one are named in the log when the daemon stops."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "underpaint",
            "serve",
            "--port",
            str(port),
            "--model",
            "tiny-random",
            "--outputs",
            str(tmp_path / "outputs"),
            "--token-file",
            str(tmp_path / "token"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        from underpaint_protocol.client import UnderpaintClient

        wait_for_port(port, process, timeout=120)
        started = []
        client = UnderpaintClient(
            f"ws://127.0.0.1:{port}",
            on_event=lambda event: started.append(event.type) if event.type == "progress" else None,
        )
        client.connect()
        job = {"mode": "txt2img", "model": "tiny-random", "steps": 200, "canvas": {"width": 64, "height": 64}}
        running = client.submit(job).result(timeout=30)["job_id"]
        queued = client.submit(job).result(timeout=30)["job_id"]
        deadline = time.monotonic() + 120
        while not started:
            assert time.monotonic() < deadline, "the job never started"
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
        client.close()
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0
    assert "interrupted:" in output
    assert f"job {running[:8]}" in output and f"job {queued[:8]}" in output


def test_a_cli_result_made_under_a_plugins_client_id_is_in_that_plugins_history(served, tmp_path: Path) -> None:
    """The history a panel shows comes from the daemon: a result the CLI made under the panel's client
    id (while the panel was closed) is listed, fetched with its seed (above 2^31), and reusable."""
    from tests.protocol.fake_host import FakeCanvas, FakeHost
    from underpaint.folders import config_dir
    from underpaint_protocol.controller import Controller, WorkQueue

    url, outputs, _ = served
    client_id = "panel-identity-0123456789"
    Image.open(DATA / "chelsea.jpg").save(tmp_path / "cat.png")
    run = underpaint(
        "generate", "outpaint", "--server", url, "--image", str(tmp_path / "cat.png"), "--extend", "8,0,0,0",
        "--seed", str(2**32 - 5), "--client-id", client_id, "--out", str(tmp_path / "wide.png"),
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    host, work = FakeHost(FakeCanvas.photo()), WorkQueue()
    controller = Controller(host, work.post, client_name="test", client_id=client_id, connect_timeout=5)
    controller.connect(url, (config_dir() / "token").read_text().strip())
    try:
        assert work.run_until(lambda: controller.connection != "connecting", 20), controller.status
        assert controller.connected and controller.client_id == client_id
        assert controller.outputs_folder == str(outputs)
        controller.refresh_history()
        assert work.run_until(lambda: bool(controller.history), 20)
        item = controller.history[0]
        assert (item.summary["mode"], item.summary["model"]) == ("outpaint", "classical")
        controller.fetch_history(item)
        assert work.run_until(lambda: bool(item.results) and not item.fetching, 20)
        assert item.results[0].seed == 2**32 - 5 and max(item.thumbnails[0].width, item.thumbnails[0].height) <= 96
        reused = controller.reuse(item.results[0])
        assert (reused.seed, reused.mode, reused.extend) == (2**32 - 5, "outpaint", (8, 0, 0, 0))
    finally:
        controller.close()


@pytest.mark.parametrize("scheme", ["upscale:", "restore:", "erase:"])
def test_serve_takes_a_spandrel_models_file_by_its_scheme(scheme: str, tmp_path: Path) -> None:
    """`--model upscale:FILE` names a file after its scheme; `.pth` is fine there (read with weights_only)."""
    from underpaint.cli import _check_model_source
    from underpaint.errors import StartupError

    for name in ("x2.safetensors", "x4.pth"):
        (tmp_path / name).write_bytes(b"weights")
        _check_model_source(f"{scheme}{tmp_path / name}#allow_research")
    with pytest.raises(StartupError, match="no such file"):
        _check_model_source(f"{scheme}{tmp_path / 'missing.safetensors'}")
