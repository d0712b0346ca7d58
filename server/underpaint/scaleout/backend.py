"""``underpaint serve --workers ray``: start or join a Ray cluster and put the engines on Serve replicas.

Start-up checks every machine that can host a replica (each loads weights from its own disk) and
refuses to serve, naming the machine, when one lacks a configured model. Then one replica per GPU
of the cluster is deployed; the daemon gets one ``RemoteEngine`` per engine and runs as many jobs at
once as there are replicas. The workers' status comes from the replicas' notice board, read on a
background thread so that the daemon's event loop never waits on Ray.
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass, replace
from typing import Any

import ray
from ray import serve
from ray.serve.handle import DeploymentHandle
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from underpaint.engines.base import Engine, LoraInfo
from underpaint.engines.upscale import UpscaleEngine
from underpaint.scaleout.board import WorkerBoard
from underpaint.scaleout.remote import DEVICE, RemoteEngine, RemoteUpscaler
from underpaint.scaleout.replica import EngineEntry, EngineReplica, EngineSettings, Survey, WorkerStatus, survey
from underpaint_protocol import messages as wire

log = logging.getLogger("underpaint.scaleout")

STATUS_SECONDS = 0.5


def _engine(entry: EngineEntry, handle: DeploymentHandle) -> Engine:
    """The daemon's engine for one engine of the replicas. Upscalers stay an ``UpscaleEngine`` in the
    daemon (it plans and runs the tiled pass, the classical upscaler locally) whose models' passes run
    on the replicas; every other engine is a ``RemoteEngine``."""
    if entry.name == UpscaleEngine.name:
        return UpscaleEngine([], DEVICE, [RemoteUpscaler(facts, handle) for facts in entry.upscalers])
    return RemoteEngine(entry, handle)


def _everywhere(lists: list[tuple[LoraInfo, ...]]) -> tuple[LoraInfo, ...]:
    """The LoRAs of the first list that every list has (a job may run on any replica)."""
    names = set.intersection(*({lora.name for lora in found} for found in lists))
    return tuple(lora for lora in lists[0] if lora.name in names)


def _shared_loras(found: list[Survey]) -> tuple[EngineEntry, ...]:
    """The first machine's engines offering only the LoRAs every machine has; the others are named in the log."""
    entries = []
    for index, entry in enumerate(found[0].engines):
        shared = _everywhere([s.engines[index].loras for s in found])
        for lora in set(entry.loras) - set(shared):
            log.warning("LoRA %s is not on every Ray machine: jobs cannot name it", lora.name)
        entries.append(replace(entry, loras=shared))
    return tuple(entries)


class ScaleoutError(RuntimeError):
    """Ray workers could not be started; the message says why and on which machine."""


@dataclass(frozen=True)
class RayOptions:
    address: str | None = None
    """A running cluster to join (``ray start --head`` on the GPU server); None starts Ray locally."""
    replicas: int | None = None
    """Default: one per GPU of the cluster (one CPU replica when it has none)."""
    cpus_per_replica: float = 1.0
    max_queued: int | None = None
    """Requests Serve may hold beyond the running ones (default: as many as replicas); more fail as queue_full."""
    app: str = "underpaint"
    """The Serve application's name: daemons sharing one cluster need different names."""


class RayWorkers:
    """The Serve application running the engines, and what the daemon needs from it."""

    def __init__(self, settings: EngineSettings, options: RayOptions) -> None:
        self.settings = settings
        self.options = options
        self.engines: list[Engine] = []
        self.default_model = ""
        self.parallel = 1
        self._started_ray = False
        self._status: list[WorkerStatus] = []
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._board: Any = None

    def start(self) -> RayWorkers:
        if not ray.is_initialized():
            ray.init(address=self.options.address, include_dashboard=False, log_to_driver=False)
            self._started_ray = True
        gpus = int(ray.cluster_resources().get("GPU", 0))
        replicas = self.options.replicas or max(gpus, 1)
        gpus_per_replica = 1 if gpus else 0
        if gpus and replicas > gpus:
            raise ScaleoutError(f"{replicas} replicas asked for, but the Ray cluster has {gpus} GPU(s)")
        if not gpus:
            log.warning("the Ray cluster has no GPU: running %d CPU replica(s)", replicas)
        found = self._survey(gpus_per_replica > 0)
        first = found[0]
        self.default_model = first.default_model
        self.parallel = replicas
        board = self._board = WorkerBoard.options(name=f"underpaint-board-{uuid.uuid4().hex[:8]}").remote()  # type: ignore[attr-defined]
        serve.start(proxy_location="Disabled")  # the daemon is the only front; no HTTP proxies
        deployment = serve.deployment(
            name="engines",
            num_replicas=replicas,
            max_ongoing_requests=1,
            max_queued_requests=self.options.max_queued or replicas,
            ray_actor_options={"num_gpus": gpus_per_replica, "num_cpus": self.options.cpus_per_replica},
        )(EngineReplica)
        handle = serve.run(deployment.bind(self.settings, board), name=self.options.app, route_prefix=None)
        self.engines = [_engine(entry, handle) for entry in first.engines]
        self._poller = threading.Thread(target=self._poll, args=(board,), name="underpaint-workers", daemon=True)
        self._poller.start()
        log.info("%d Ray replica(s) on %s", replicas, ", ".join(sorted({s.machine for s in found})))
        return self

    def _survey(self, gpu_nodes_only: bool) -> list[Survey]:
        """Ask every machine that can host a replica what it can run; fail naming those lacking a model."""
        nodes = [
            node
            for node in ray.nodes()
            if node["Alive"] and (not gpu_nodes_only or node["Resources"].get("GPU", 0) > 0)
        ]
        task = ray.remote(num_cpus=0)(survey)
        found: list[Survey] = ray.get(
            [
                task.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)).remote(
                    self.settings
                )
                for node in nodes
            ]
        )
        lacking = [f"{s.machine} lacks {', '.join(s.missing)}" for s in found if s.missing]
        if lacking:
            raise ScaleoutError("; ".join(lacking))
        ids = {s.machine: sorted(info.id for entry in s.engines for info in entry.models) for s in found}
        if len({tuple(models) for models in ids.values()}) > 1:
            raise ScaleoutError(f"the machines offer different models: {ids}")
        return [replace(found[0], engines=_shared_loras(found)), *found[1:]]

    def _poll(self, board: object) -> None:
        while not self._stop.wait(STATUS_SECONDS):
            try:
                self._status = ray.get(board.snapshot.remote(), timeout=5)  # type: ignore[attr-defined]
            except Exception as error:  # the head node or the board is gone: show no workers, keep trying
                if self._status:
                    log.warning("cannot reach the Ray workers' status: %s", error)
                self._status = []
            self._offer_loras(self._status)

    def _offer_loras(self, statuses: list[WorkerStatus]) -> None:
        """Each engine offers the LoRAs every replica heard from has now (a job may run on any)."""
        if not statuses:
            return  # nobody heard from: keep what was offered
        for engine in self.engines:
            if isinstance(engine, RemoteEngine):
                engine.offer_loras(list(_everywhere([dict(status.loras).get(engine.name, ()) for status in statuses])))

    def workers(self) -> list[WorkerStatus]:
        """The replicas heard from in the last few seconds."""
        return list(self._status)

    def threads(self) -> dict[str, int]:
        """The daemon hands Serve as many jobs at once as there are replicas; the rest wait in its fair queue."""
        return {DEVICE: self.parallel}

    def describe(self) -> list[wire.WorkerDescription]:
        return [
            wire.WorkerDescription(where=w.machine, device=w.device, models=list(w.models), busy=w.busy)
            for w in self._status
        ]

    def close(self) -> None:
        self._stop.set()
        if self._board is not None:  # deployed: take the application and the board down again
            try:
                serve.delete(self.options.app)
                ray.kill(self._board)
            except Exception as error:  # the cluster may already be gone
                log.warning("could not remove the Serve application: %s", error)
            self._board = None
        if self._started_ray:
            serve.shutdown()
            ray.shutdown()
