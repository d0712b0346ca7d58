"""One real local Ray cluster (two logical GPUs on this CPU machine) for this folder, one daemon on it per module.

Ray and Serve take tens of seconds to start here, so the cluster is shared by every module here (each
module's deployment, under its own Serve application, is taken down again when the module ends) and
the deployment by a module's tests; the tests are written in the order they run and each leaves the
workers idle.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import ray

from tests.daemon.conftest import Recorder, client_maker
from underpaint.daemon.config import DaemonConfig
from underpaint.daemon.server import Daemon, DaemonThread
from underpaint.scaleout.backend import RayOptions, RayWorkers
from underpaint.scaleout.replica import EngineSettings
from underpaint_protocol.client import UnderpaintClient


@dataclass
class RayDaemon:
    thread: DaemonThread
    workers: RayWorkers
    outputs: Path

    @property
    def url(self) -> str:
        return self.thread.url


@pytest.fixture(scope="package")
def ray_cluster() -> Iterator[None]:
    from ray import serve

    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False)
    yield
    serve.shutdown()
    ray.shutdown()


@contextlib.contextmanager
def ray_daemon_with(tmp: Path, settings: EngineSettings) -> Iterator[RayDaemon]:
    """A daemon on a real socket whose engines run on two Serve replicas (half a CPU each)."""
    workers = RayWorkers(settings, RayOptions(cpus_per_replica=0.5)).start()
    config = DaemonConfig(port=0, token_file=tmp / "token", outputs=tmp / "outputs")
    thread = DaemonThread(Daemon(config, workers.engines, workers.default_model, workers=workers)).start()
    try:
        yield RayDaemon(thread, workers, tmp / "outputs")
    finally:
        thread.stop()
        workers.close()


@pytest.fixture(scope="module")
def ray_daemon(ray_cluster: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayDaemon]:
    settings = EngineSettings(engine="classical", models=("tiny-random",), device="cpu", max_models=2, torch_threads=1)
    with ray_daemon_with(tmp_path_factory.mktemp("ray-daemon"), settings) as running:
        yield running


@pytest.fixture
def make_client(ray_daemon: RayDaemon) -> Iterator[Callable[..., tuple[UnderpaintClient, Recorder]]]:
    yield from client_maker(ray_daemon.url)


def welcome_workers(url: str) -> list[dict[str, Any]]:
    """The workers as a newly connecting host sees them."""
    client = UnderpaintClient(url, client_name="pytest-status", reconnect=False)
    try:
        welcome = client.connect(timeout=10)
    finally:
        client.close()
    workers = welcome.get("workers")
    assert workers is not None, "a daemon on Ray reports its workers"
    return list(workers)


def wait_workers(url: str, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 30) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        workers = welcome_workers(url)
        if predicate(workers):
            return workers
        if time.monotonic() > deadline:
            raise AssertionError(f"workers never matched; last seen: {workers}")
        time.sleep(0.2)
