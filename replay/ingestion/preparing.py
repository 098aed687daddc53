"""Decisions read from files, prepared in processes of their own: each batch of records
is parsed, checked against its deployment's schema, pseudonymised and sealed under its
people's keys (new keys put on disk there) by processes running behind this one, which
links the batches into the chain and commits them in the order read. Preparing is most
of an entry's cost; linking must be done one entry after another, in one process.

These are a stdlib `ProcessPoolExecutor`'s processes, not Dask's, where replay runs its
other work over many decisions: they read the subject key store and hold the key behind
pseudonyms, which pass to them through private pipes, where a local Dask cluster passes
its tasks over TCP that any local user can connect to; and a cluster takes 1.2 s to
start here (a sixth of ingesting 100,000 decisions). The work is local anyway: the key
store and the ledger are this machine's files.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from itertools import islice
from typing import Any, Protocol

from replay.errors import EnvironmentProblem
from replay.ingestion.events import Event
from replay.ingestion.files import Record
from replay.ingestion.reading import Reading
from replay.ledger.chain import PreparedEntry
from replay.settings import usable_cores

Prepared = tuple[list[PreparedEntry], list[dict[str, Any]]]  # entries, quarantined rows


class Preparer(Protocol):
    """What prepares decisions in those processes (an `Ingestion`)."""

    def prepare(self, events: Iterable[Event]) -> Prepared: ...


MAX_WORKERS = 16
_preparer: Preparer | None = None  # in a preparing process: what it prepares with
_failed: Exception | None = None  # or why it could not be made


def default_workers() -> int:
    """One process per core this one may use, at most MAX_WORKERS (each holds a few
    batches of 10,000 records)."""
    return min(MAX_WORKERS, usable_cores())


@contextmanager
def preparing_processes(
    make: Callable[[], Preparer], reading: Reading, workers: int
) -> Iterator[Callable[[Iterable[list[Record]]], Iterator[Prepared]]]:
    """A function mapping batches of records to their prepared entries and quarantined
    rows, in order, prepared by `workers` processes, each with what `make` makes. Once
    called, the first batches are sent at once (the caller goes on meanwhile) and then
    one more as each result is taken: at most 2 x `workers` batches are in flight. The
    reading goes with each batch (a few kilobytes against 10,000 records)."""
    context = multiprocessing.get_context("spawn")  # no copy of this process's connections
    pool = ProcessPoolExecutor(workers, context, initializer=_start, initargs=(make,))

    def in_order(batches: Iterable[list[Record]]) -> Iterator[Prepared]:
        batches = iter(batches)
        ahead = deque(
            pool.submit(_prepare, reading, batch) for batch in islice(batches, 2 * workers)
        )
        return _in_order(pool, reading, ahead, batches)

    try:
        yield in_order
    finally:  # on a failure, batches sent ahead are not prepared for nothing
        pool.shutdown(cancel_futures=True)


def _in_order(
    pool: ProcessPoolExecutor,
    reading: Reading,
    ahead: deque[Future[Prepared]],
    batches: Iterator[list[Record]],
) -> Iterator[Prepared]:
    """Each batch's result in turn, the next batch sent as one is taken."""
    for batch in batches:
        ahead.append(pool.submit(_prepare, reading, batch))
        yield _result(ahead.popleft())
    while ahead:
        yield _result(ahead.popleft())


def _result(future: Future[Prepared]) -> Prepared:
    try:
        return future.result()
    except BrokenProcessPool:  # the machine, not the input
        raise EnvironmentProblem(
            "a process preparing decisions died: killed, out of memory, or started again by "
            "a script calling replay.ingest at its top level (without `if __name__ == "
            '"__main__":`)'
        ) from None


def _start(make: Callable[[], Preparer]) -> None:
    # Behind the process that links and commits, which they all wait for (on 2 cores,
    # two at the same priority slowed 100,000 decisions from 8.0 s to 9.5 s; behind it,
    # they took 6.5 s). Ctrl-C is the caller's to handle: it shuts these down.
    os.nice(10)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    global _preparer, _failed
    try:
        _preparer = make()
    except Exception as error:  # raised with the first batch: a broken pool would hide it
        _failed = error


def _prepare(reading: Reading, batch: list[Record]) -> Prepared:
    if _preparer is None:
        raise _failed or RuntimeError("a preparing process was not started")
    return _preparer.prepare(reading.events(batch))
