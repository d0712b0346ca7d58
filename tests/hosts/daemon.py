"""The daemon every real-host test drives, one configuration for Krita, GIMP and Figma.

``underpaint serve`` runs as its own process on a free port with its own token, outputs, config and
data folders (styles and history are the run's own), offering what the hosts' scenarios use:

- ``tiny-random`` (diffusion) and the classical engines, the tiny interrogator;
- a canny ControlNet (the built-in tiny one) and a tiny IP-Adapter for reference images;
- a tiny style LoRA in a models folder, with a trigger word in its metadata;
- a tiny Real-ESRGAN Compact 2x upscaler and a tiny restore model (RestoreFormer, marked for
  research use: the only face architecture spandrel builds small).

The weights are random and built in code (a few seconds). Python tests use :func:`host_daemon`; the
Figma end-to-end test (node) runs ``python -m tests.hosts.daemon FOLDER PORT``, which builds the models
and becomes the daemon.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CONTROL = "canny=tiny-random"
"""The daemon's tiny random ControlNet (built in code) for the tiny-random model."""
LORA = "tiny-style"
LORA_TRIGGER = "inkwash"
"""The trigger word the LoRA's metadata names (what a host's LoRA picker shows beside it)."""
UPSCALER = "tiny-compact-x2"
RESTORER = "tiny-restoreformer"


@dataclass
class HostDaemon:
    url: str
    token: str
    folder: Path
    outputs: Path
    log: Path

    def sidecars(self, prompt: str) -> list[dict[str, Any]]:
        """The sidecars of every result whose prompt was ``prompt``, in result order, each with its PNG."""
        found = []
        for path in sorted(self.outputs.rglob("*.json")):
            data = json.loads(path.read_text())
            if data["params"].get("prompt") == prompt:  # upscale tiles carry no prompt
                data["png"] = path.with_suffix(".png")
                found.append(data)
        return sorted(found, key=lambda item: item["index"])


def write_models(folder: Path) -> list[str]:
    """Build the tiny models under ``folder``; returns the ``serve`` options that offer them."""
    from tests.upscale import models as spandrel_models
    from underpaint.engines.diffusion import tiny

    folder.mkdir(parents=True, exist_ok=True)
    unet = tiny.build_sd15(tiny.write_tokenizer(folder / "tokenizer")).unet
    loras = folder / "models"
    loras.mkdir(exist_ok=True)
    _save_lora(unet, loras / f"{LORA}.safetensors")
    adapter = tiny.save_ip_adapter(unet, folder / "ip-adapter", "ip-adapter_tiny.safetensors")
    upscaler = spandrel_models.compact_x2(folder, UPSCALER)
    restorer = spandrel_models.restoreformer(folder, RESTORER)
    return [
        "--model",
        "tiny-random",
        "--interrogator",
        "tiny-random",
        "--control",
        CONTROL,
        "--ip-adapter",
        str(adapter),
        "--models-dir",
        str(loras),
        "--model",
        f"upscale:{upscaler}",
        "--model",
        f"restore:{restorer}#allow_research",
    ]


def _save_lora(unet: Any, path: Path) -> None:
    """A random rank-4 LoRA on the UNet's attention projections, saved as diffusers saves one, with
    kohya's tag frequencies in its metadata (so it has a trigger word)."""
    import torch
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import save_file

    torch.manual_seed(42)
    unet.add_adapter(
        LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"], init_lora_weights=False)
    )
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    tensors = {f"unet.{key}": value.contiguous() for key, value in layers.items()}
    tags = json.dumps({"1_style": {LORA_TRIGGER: 40, "ink": 3}})
    save_file(tensors, str(path), metadata={"format": "pt", "ss_tag_frequency": tags})


def serve_argv(folder: Path, port: int) -> list[str]:
    """The whole ``serve`` command line for a daemon whose files live in ``folder``."""
    argv = [sys.executable, "-m", "underpaint", "serve", "--port", str(port), "--outputs", str(folder / "outputs")]
    return [*argv, "--token-file", str(folder / "token"), *write_models(folder / "fixtures")]


def daemon_env(folder: Path) -> dict[str, str]:
    """The daemon keeps the user's styles and history in their config and data folders: the run's own.
    Its torch uses one thread: the host under test needs the machine's other core (two busy-waiting
    torch threads beside a host on two cores made tiny jobs take minutes)."""
    own = {"XDG_CONFIG_HOME": str(folder / "config"), "XDG_DATA_HOME": str(folder / "data"), "OMP_NUM_THREADS": "1"}
    return os.environ | own


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def host_daemon(folder: Path, timeout: float = 300) -> Iterator[HostDaemon]:
    """The daemon running (its port answers) until the block ends; its output goes to ``daemon.log``."""
    port = free_port()
    log = folder / "daemon.log"
    repo = Path(__file__).resolve().parents[2]
    with open(log, "w") as handle:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.hosts.daemon", str(folder), str(port)],
            stdout=handle,
            stderr=subprocess.STDOUT,
            cwd=repo,
            env=daemon_env(folder),
        )
    try:
        deadline = time.monotonic() + timeout  # importing torch on a loaded machine can take a minute
        while not _port_open(port):
            assert proc.poll() is None, f"the daemon exited:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"the daemon did not start:\n{log.read_text()}"
            time.sleep(0.2)
        token = (folder / "token").read_text().strip()
        yield HostDaemon(f"ws://127.0.0.1:{port}", token, folder, folder / "outputs", log)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


if __name__ == "__main__":  # python -m tests.hosts.daemon FOLDER PORT: build the models, become the daemon
    target, port_arg = Path(sys.argv[1]), int(sys.argv[2])
    target.mkdir(parents=True, exist_ok=True)
    command = serve_argv(target, port_arg)
    os.execve(command[0], command, daemon_env(target))
