"""Where work over many decisions runs: Dask distributed, on a `LocalCluster` of this
machine by default, or on any scheduler by address (`--scheduler`, or Dask's own
`DASK_SCHEDULER_ADDRESS`)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from replay.errors import BadInput, EnvironmentProblem
from replay.settings import load_settings, usable_cores, without_password

if TYPE_CHECKING:
    from distributed import Client

JOINED_WITHIN = 10  # seconds a reached scheduler has for its first worker to join
IN_FLIGHT_PER_WORKER = 2  # tasks queued per worker: it never waits, nothing piles up

Tag = TypeVar("Tag")


def default_workers() -> int:
    """Worker processes of a local cluster: one per core, each answering through its
    own warm containers (one thread each: a container answers one request at a time)."""
    return usable_cores()


@contextmanager
def dask_client(
    scheduler: str | None = None,
    workers: int | None = None,
    connect_timeout: float | None = None,
) -> Iterator[Client]:
    """A client of the scheduler at `scheduler` (or DASK_SCHEDULER_ADDRESS), reached
    within `connect_timeout` seconds (None: REPLAY_CONNECT_TIMEOUT), else of a new
    `LocalCluster` of `workers` processes, closed with the block."""
    import dask
    from distributed import Client, LocalCluster  # about 1 s: only history work pays it

    address = scheduler or dask.config.get("scheduler-address", None)
    if address:
        if workers is not None:
            raise BadInput("a number of workers sizes a local cluster; a scheduler has its own")
        shown = without_password(address)
        seconds = load_settings().connect_timeout if connect_timeout is None else connect_timeout
        try:
            _handshake(address, seconds)
            client = Client(address, timeout=seconds)
        except ValueError:
            raise BadInput(f"{shown!r} is not a Dask scheduler address (tcp://HOST:PORT)") from None
        except (OSError, TimeoutError):
            raise EnvironmentProblem(
                f"no Dask scheduler answers at {shown} within {seconds:g} s"
            ) from None
        with client:
            try:  # work sent to a scheduler without workers would wait for ever
                client.wait_for_workers(1, timeout=JOINED_WITHIN)
            except TimeoutError:
                raise EnvironmentProblem(
                    f"the Dask scheduler at {shown} has no workers (none joined within "
                    f"{JOINED_WITHIN} s)"
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


def _handshake(address: str, seconds: float) -> None:
    """Raise OSError or TimeoutError unless a scheduler at `address` completes Dask's
    handshake within `seconds`: a Client's own timeout covers connecting only, and a
    port that accepts but never answers would hold it in the handshake for ever."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from distributed.comm import connect
    from distributed.security import Security

    async def greeted() -> None:
        arguments = Security().get_connection_args("client")  # as a Client's own
        comm = await asyncio.wait_for(connect(address, timeout=seconds, **arguments), seconds)
        await comm.close()

    # on a thread of its own: the caller may be running an event loop (a notebook's)
    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, greeted()).result()


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
