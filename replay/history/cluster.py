"""Where work over many decisions runs: Dask distributed, on a `LocalCluster` of this
machine by default, or on any scheduler by address (`--scheduler`, or Dask's own
`DASK_SCHEDULER_ADDRESS`)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from replay.errors import BadInput, EnvironmentProblem

if TYPE_CHECKING:
    from distributed import Client

CONNECT_WITHIN = 10  # seconds to reach a scheduler given by address
IN_FLIGHT_PER_WORKER = 2  # tasks queued per worker: it never waits, nothing piles up

Tag = TypeVar("Tag")


def default_workers() -> int:
    """Worker processes of a local cluster: one per core, each answering through its
    own warm containers (one thread each: a container answers one request at a time)."""
    return max(1, os.cpu_count() or 1)


@contextmanager
def dask_client(scheduler: str | None = None, workers: int | None = None) -> Iterator[Client]:
    """A client of the scheduler at `scheduler` (or DASK_SCHEDULER_ADDRESS), else of a
    new `LocalCluster` of `workers` processes, closed with the block."""
    import dask
    from distributed import Client, LocalCluster  # about 1 s: only history work pays it

    address = scheduler or dask.config.get("scheduler-address", None)
    if address:
        if workers is not None:
            raise BadInput("a number of workers sizes a local cluster; a scheduler has its own")
        try:
            client = Client(address, timeout=CONNECT_WITHIN)
        except ValueError:
            raise BadInput(
                f"{address!r} is not a Dask scheduler address (tcp://HOST:PORT)"
            ) from None
        except (OSError, TimeoutError):
            raise EnvironmentProblem(
                f"no Dask scheduler answers at {address} within {CONNECT_WITHIN} s"
            ) from None
        with client:
            try:  # work sent to a scheduler without workers would wait for ever
                client.wait_for_workers(1, timeout=CONNECT_WITHIN)
            except TimeoutError:
                raise EnvironmentProblem(
                    f"the Dask scheduler at {address} has no workers (none joined within "
                    f"{CONNECT_WITHIN} s)"
                ) from None
            yield client
        return
    count = workers if workers is not None else default_workers()
    if count < 1:
        raise BadInput(f"a local cluster needs at least one worker, not {count}")
    try:
        cluster = LocalCluster(
            n_workers=count,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        )
    except Exception as error:  # no processes, no ports: this machine, not the input
        raise EnvironmentProblem(f"a local Dask cluster could not start: {error}") from None
    with cluster, Client(cluster) as client:
        yield client


def workers_of(client: Client) -> int:
    return len(client.scheduler_info()["workers"])


def streamed(
    client: Client,
    function: Callable[..., Any],
    jobs: Iterable[tuple[Tag, tuple[Any, ...]]],
) -> Iterator[tuple[Tag, Any]]:
    """`function(*arguments)` of each job on the workers, yielded as (tag, result) as
    they finish; a few per worker in flight, so the jobs (read lazily, e.g. from the
    ledger in chunks) are never all in memory. A job that raised yields its exception."""
    from distributed import as_completed

    pending = as_completed()
    tags: dict[Any, Tag] = {}
    limit = max(1, workers_of(client)) * IN_FLIGHT_PER_WORKER

    def finished() -> tuple[Tag, Any]:
        future = next(pending)
        tag = tags.pop(future)
        try:
            return tag, future.result()
        except Exception as problem:  # the task's own error, or its worker died
            return tag, problem

    for tag, arguments in jobs:
        future = client.submit(function, *arguments, pure=False)
        tags[future] = tag
        pending.add(future)
        while pending.count() >= limit:
            yield finished()
    while pending.count():
        yield finished()
