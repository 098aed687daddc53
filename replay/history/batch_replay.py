"""`replay replay --all`: logged decisions replayed in batches on Dask.

The coordinator reads the ledger in chunks, splits each by manifest into batches and
hands them to the workers, at most a few per worker at a time; each worker replays a
batch in its warm container of that manifest (every row with its own logged seed) and
sends the results back, which are written to the ledger as they arrive. Only the
decisions that did not reproduce are kept whole, so a history of any length replays in
bounded memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from replay.errors import BadInput, EnvironmentProblem, ReplayError
from replay.execution.reexecution import (
    DIVERGED,
    FAILED,
    REPRODUCED,
    ReplayResult,
    record_replays,
)
from replay.history.cluster import dask_client, streamed, workers_of
from replay.history.selection import BATCH_ROWS, READ_ROWS
from replay.history.workers import WarmContainers, replay_on_worker, worker_settings
from replay.ledger import open_ledger
from replay.ledger.chain import LedgerEntry
from replay.settings import Settings, load_settings


@dataclass
class ReplaySummary:
    counts: dict[str, int] = field(default_factory=lambda: {REPRODUCED: 0, DIVERGED: 0, FAILED: 0})
    results: list[ReplayResult] = field(default_factory=list)  # kept ones, in ledger order
    erased: int = 0  # decisions left out because their subject's data was erased
    workers: int = 0  # Dask workers the replay ran on

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def all_reproduced(self) -> bool:
        return self.counts[REPRODUCED] == self.total

    def to_dict(self) -> dict[str, Any]:
        return {
            "counts": self.counts,
            "erased": self.erased,
            "workers": self.workers,
            "results": [result.to_dict() for result in self.results],
        }


def replay_many(
    *,
    deployment: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    source: str | None = None,
    ingested: bool = False,
    txn_ids: list[str] | None = None,
    record: bool = True,
    keep_reproduced: bool = True,
    scheduler: str | None = None,
    workers: int | None = None,
    settings: Settings | None = None,
    progress: Callable[[int, int], None] | None = None,
    observe: Callable[[LedgerEntry, ReplayResult], None] | None = None,
) -> ReplaySummary:
    """Replay many decisions on Dask (a local cluster of `workers` processes, or the
    scheduler at `scheduler`); `progress(done, total)` as batches come back, and
    `observe(entry, result)` for each decision. Results of reproduced decisions are
    counted, and kept only with `keep_reproduced`. Ingested decisions are selected by
    their `source`, or all of them with `ingested`."""
    settings = settings or load_settings()
    ledger = open_ledger(settings)
    filters: dict[str, Any] = ledger.selection(
        deployment=deployment, since=since, until=until, source=source, ingested=ingested
    )
    if txn_ids is not None:
        chunks: Iterator[list[LedgerEntry]] = iter([[ledger.get(txn) for txn in txn_ids]])
        total = len(txn_ids)
    else:
        total = ledger.count(**filters)
        if not total:
            raise BadInput("no logged decisions match: nothing to replay")
        chunks = ledger.chunks(READ_ROWS, **filters)
    summary = ReplaySummary()
    with dask_client(scheduler, workers) as client:
        client.register_plugin(WarmContainers())
        summary.workers = workers_of(client)
        # Workers need the stores, not the pseudonym key: it never leaves this process.
        shipped = worker_settings(settings)
        kept: list[tuple[int, ReplayResult]] = []  # with the decision's place in the chain
        jobs = _batches(chunks, shipped, summary)
        for batch_entries, answer in streamed(client, replay_on_worker, jobs):
            if isinstance(answer, ReplayError):  # no engine, no store: stop, say why
                raise answer
            if isinstance(answer, Exception):  # the worker died, the scheduler went
                raise EnvironmentProblem(f"a Dask worker failed: {type(answer).__name__}: {answer}")
            results = answer
            by_txn = {entry.txn_id: entry for entry in batch_entries}
            if record:
                results = record_replays(results, by_txn, settings)
            for result in results:
                summary.counts[result.verdict] += 1
                if observe is not None:
                    observe(by_txn[result.txn_id], result)
                if keep_reproduced or not result.reproduced:
                    kept.append((by_txn[result.txn_id].seq, result))
            if progress:
                progress(summary.total, total - summary.erased)
    summary.results = [result for _, result in sorted(kept, key=lambda pair: pair[0])]
    return summary


def _batches(
    chunks: Iterator[list[LedgerEntry]], settings: Settings, summary: ReplaySummary
) -> Iterator[tuple[list[LedgerEntry], tuple[Any, ...]]]:
    """Each manifest's readable decisions of each chunk, BATCH_ROWS at a time, with the
    worker's arguments; erased decisions are counted and left out."""
    for chunk in chunks:
        by_manifest: dict[str, list[LedgerEntry]] = {}
        for entry in chunk:
            if entry.erased_on is not None:
                summary.erased += 1
            else:
                by_manifest.setdefault(entry.manifest_id, []).append(entry)
        for manifest_id, group in by_manifest.items():
            for start in range(0, len(group), BATCH_ROWS):
                batch = group[start : start + BATCH_ROWS]
                yield batch, (manifest_id, batch, settings)
