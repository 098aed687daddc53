"""What runs inside a Dask worker: the warm containers it keeps, one per manifest it
meets, and the tasks that use them. Tasks receive decisions already read (and opened)
by the coordinator, so a worker needs a Docker engine and the manifest and image stores,
never the ledger or the subjects' keys."""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any

from distributed import Worker, WorkerPlugin, get_worker

from replay.errors import IntegrityError
from replay.execution.predictor import PredictionError
from replay.execution.reexecution import ReplayResult, failed, replay_batch
from replay.execution.warm import WarmDeployment
from replay.images.container import RunnerFailed
from replay.ledger.chain import LedgerEntry
from replay.settings import Settings


class WarmContainers(WorkerPlugin):
    """A worker's warm deployments, started when a task first needs one and closed when
    the worker stops."""

    name = "replay-warm-containers"
    idempotent = True  # registered by every run; one set per worker all the same

    def setup(self, worker: Worker) -> None:
        self.deployments: dict[str, WarmDeployment] = {}
        self.lock = threading.Lock()

    def deployment(self, manifest_id: str, settings: Settings) -> WarmDeployment:
        with self.lock:
            if manifest_id not in self.deployments:
                self.deployments[manifest_id] = WarmDeployment(manifest_id, settings=settings)
            return self.deployments[manifest_id]

    def teardown(self, worker: Worker) -> None:
        with self.lock:
            deployments, self.deployments = list(self.deployments.values()), {}
        for warm in deployments:
            warm.close()


def containers() -> WarmContainers:
    plugin: Any = get_worker().plugins[WarmContainers.name]
    return plugin


def replay_on_worker(
    manifest_id: str, entries: list[LedgerEntry], settings: Settings
) -> list[ReplayResult]:
    """Replay one manifest's decisions in one batch, in this worker's warm container; a
    container that cannot be had fails them all, saying why."""
    try:
        warm = containers().deployment(manifest_id, settings)
        return replay_batch(warm, entries)
    except IntegrityError as problem:  # the image was refused: its decisions fail, as one would
        return [failed(entry, str(problem)) for entry in entries]
    # anything else (no engine, no store): the run stops, saying why, before more is recorded


def rerun_on_worker(
    manifest_id: str, rows: list[dict[str, Any]], seeds: list[int], settings: Settings
) -> list[dict[str, Any] | str]:
    """Logged inputs, each with its logged seed, answered by this worker's container of
    `manifest_id` (a challenger) in one batch; a row the deployment refuses is answered
    with its error, as text."""
    warm = containers().deployment(manifest_id, settings)
    try:
        answers: list[dict[str, Any] | str] = list(warm.predict_each(rows, seeds))
        return answers
    except (PredictionError, RunnerFailed):  # refused, or one row killed it: which, singly
        answers = []
        for row, seed in zip(rows, seeds, strict=True):
            try:
                answers.append(warm.predict(row, seed))
            except (PredictionError, RunnerFailed) as problem:
                answers.append(str(problem))
        return answers


def worker_settings(settings: Settings) -> Settings:
    """What a worker is sent: the stores it recovers images from, never the ledger's or
    the key store's location (a URL may hold a password) nor the pseudonym key."""
    return replace(settings, subject_key=None, ledger="", subject_keys="", checkpoint_location="")
