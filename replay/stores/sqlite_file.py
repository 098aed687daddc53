"""A SQLite file that many threads and processes write at once, every commit on disk
before its writer returns, and writers sharing the disk flushes (group commit across
processes). The ledger and the subject key store are each one.

In WAL mode, `synchronous=FULL` syncs inside the write lock, so writers queue on the
disk one at a time (about 3,800 commits/s from 8 processes on this project's machines).
Here a commit is written under the lock without a sync (`synchronous=NORMAL`), and its
writer then fsyncs the WAL file itself, outside the lock: a flush carries every commit
written before it, so writers that wait on the disk together share one. Linux flushes
a file's data whichever descriptor asks; a checkpoint (WAL into the database file)
syncs both files itself.

Writers queue on an flock of `<file>-lock` before `BEGIN IMMEDIATE`: the kernel wakes
the next one the moment the lock is free, where SQLite's busy handler would poll
(5,200 rather than 3,400 durable commits/s from 8 processes here). The wait has no
limit, but the lock is held only for one commit and the kernel drops it when its
process dies, however it dies. Other programs writing the file without that lock are
still waited for, with short jittered sleeps, for at most `busy_timeout`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import TypeVar

from replay.errors import EnvironmentProblem
from replay.stores.keys import private_folder

T = TypeVar("T")


class SQLiteFile:
    """One database file, created private (0600 in a 0700 folder when made here): it
    holds personal data or keys. `name` says what it is in messages."""

    def __init__(
        self,
        path: Path,
        name: str,
        *,
        pragmas: Sequence[str] = (),
        busy_timeout: float = 60.0,
    ) -> None:
        self.path = path
        self.name = name
        self.busy_timeout = busy_timeout
        self.pragmas = ("synchronous=NORMAL", *pragmas)
        self._local = threading.local()
        self._flush_failed = ""
        if not path.parent.exists():
            private_folder(path.parent)
        if not path.exists():  # SQLite gives its -wal and -shm files this file's mode
            with contextlib.suppress(FileExistsError):
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))

    def __str__(self) -> str:
        return f"{self.name} {self.path}"

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (autocommit: transactions are explicit)."""
        connection = getattr(self._local, "connection", None)
        if connection is None:
            try:
                connection = sqlite3.connect(self.path, timeout=0, isolation_level=None)
            except sqlite3.Error as error:
                raise EnvironmentProblem(f"{self} cannot be opened: {error}") from None
            self._local.connection = connection
            for pragma in self.pragmas:  # may find the file locked, like any first statement
                self.retry(partial(connection.execute, f"PRAGMA {pragma}"))
        return connection

    def create(self, table: str, schema: str) -> bool:
        """Run `schema` (in WAL mode) unless `table` exists; whether it existed."""
        connection = self.connection()
        # Even this read can find the file locked while another process creates it.
        exists = self.retry(
            lambda: connection.execute(
                "SELECT 1 FROM sqlite_master WHERE name = ?", [table]
            ).fetchone()
        )
        if not exists:
            self.retry(lambda: connection.execute("PRAGMA journal_mode=WAL"))
            self.retry(lambda: connection.executescript(f"BEGIN IMMEDIATE;{schema}COMMIT;"))
        return exists is not None

    def retry(self, call: Callable[[], T]) -> T:
        """Run `call`, waiting while another writer holds the lock."""
        deadline = time.monotonic() + self.busy_timeout
        pause = 0.0002
        while True:
            try:
                return call()
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) and "busy" not in str(error):
                    raise EnvironmentProblem(f"{self}: {error}") from None
                if time.monotonic() > deadline:
                    raise EnvironmentProblem(
                        f"{self} stayed locked for {self.busy_timeout:.0f} s"
                    ) from None
                time.sleep(random.uniform(0, pause))
                pause = min(pause * 2, 0.01)

    def write(self, work: Callable[[sqlite3.Connection], T], flush: bool = True) -> T:
        """Run `work(connection)` in one transaction holding the write lock; return once
        it is committed and, with `flush`, on disk. Nothing of it is kept if it fails."""
        self._after_failed_flush()
        connection = self.connection()
        with self._writers_lock():
            self.retry(lambda: connection.execute("BEGIN IMMEDIATE"))
            try:
                result = work(connection)
                connection.execute("COMMIT")
            except BaseException as error:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                if isinstance(error, sqlite3.OperationalError):  # disk full, I/O error, ...
                    raise EnvironmentProblem(f"{self}: {error}") from None
                raise
        if flush:
            self.flush()
        return result

    @contextlib.contextmanager
    def _writers_lock(self) -> Iterator[None]:
        """This file's writers, threads and processes, one at a time (an flock is held
        by an open file, so each thread opens its own; file objects, so that they are
        closed with the thread's connection when this file or the thread goes away)."""
        lock = getattr(self._local, "lock", None)
        if lock is None:
            try:
                descriptor = os.open(f"{self.path}-lock", os.O_RDWR | os.O_CREAT, 0o600)
            except OSError as error:
                raise EnvironmentProblem(f"{self}: no lock file beside it: {error}") from None
            lock = self._local.lock = os.fdopen(descriptor, "rb")
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)

    def flush(self) -> None:
        """Put every commit written so far on disk (see the module's note)."""
        self._after_failed_flush()
        wal = Path(f"{self.path}-wal")
        try:
            inode = wal.stat().st_ino
        except FileNotFoundError:  # checkpointed and removed: the database file was synced
            return
        held = getattr(self._local, "wal", None)
        if held is None or os.fstat(held.fileno()).st_ino != inode:
            if held is not None:
                held.close()
            held = self._local.wal = wal.open("rb")
        try:
            os.fsync(held.fileno())
        except OSError as error:
            self._flush_failed = f"the disk refused to flush: {error}"
            raise EnvironmentProblem(f"{self}: {self._flush_failed}") from None

    def _after_failed_flush(self) -> None:
        """Refuse to write or flush once a flush failed: the kernel may have dropped
        those pages, and a later flush could succeed without them (acknowledging
        commits made after the ones lost)."""
        if self._flush_failed:
            raise EnvironmentProblem(f"{self}: {self._flush_failed}; restart to recover")

    def empty_wal(self, within: float = 5.0) -> bool:
        """Move the WAL into the database file and truncate it (so that what a commit
        removed is no longer in the WAL either); whether readers let it finish in time."""
        connection = self.connection()
        deadline = time.monotonic() + within
        while True:
            busy = self.retry(
                lambda: connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            )
            if not busy:
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
