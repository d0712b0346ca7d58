"""The workers' notice board: a small Ray actor every replica reports its status to.

Replicas report when they load a model, start or end a job, and once a second; the daemon reads
the board from a background thread and shows only replicas heard from recently, so a dead replica
or an unreachable machine drops out of the status within a few seconds.
"""

from __future__ import annotations

import time

import ray

from underpaint.scaleout.replica import HEARTBEAT_SECONDS, WorkerStatus

STALE_SECONDS = 3 * HEARTBEAT_SECONDS


@ray.remote(num_cpus=0)
class WorkerBoard:
    def __init__(self) -> None:
        self._workers: dict[str, tuple[WorkerStatus, float]] = {}

    def report(self, status: WorkerStatus) -> None:
        known = self._workers.get(status.replica)
        if known is None or known[0].sequence < status.sequence:
            self._workers[status.replica] = (status, time.monotonic())

    def snapshot(self) -> list[WorkerStatus]:
        now = time.monotonic()
        for replica, (_, heard) in list(self._workers.items()):
            if now - heard > STALE_SECONDS:
                del self._workers[replica]
        return sorted((status for status, _ in self._workers.values()), key=lambda s: (s.machine, s.device, s.replica))
