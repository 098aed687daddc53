"""The ledger in one SQLite file (WAL): the embedded default.

`BEGIN IMMEDIATE` serialises writers across processes; triggers refuse UPDATE and
DELETE through the database (the chain catches edits made with other tools).
"""

from __future__ import annotations

import contextlib
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from replay.errors import EnvironmentProblem
from replay.ledger.chain import FORMAT_2_COLUMNS, Ledger, table_sql
from replay.ledger.sealing import SubjectKeyStore
from replay.stores.keys import private_folder

_SCHEMA = (
    table_sql("INTEGER")
    + """
CREATE TRIGGER IF NOT EXISTS entries_no_update BEFORE UPDATE ON entries
    BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER IF NOT EXISTS entries_no_delete BEFORE DELETE ON entries
    BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
"""
)


class SQLiteLedger(Ledger):
    """One file in WAL mode; `BEGIN IMMEDIATE` serialises writers across processes."""

    def __init__(
        self, path: Path | str, busy_timeout: float = 60.0, keys: SubjectKeyStore | None = None
    ) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self.keys = keys
        self._local = threading.local()
        if not self.path.parent.exists():
            private_folder(self.path.parent)
        if not self.path.exists():  # personal data: only its owner may read it (SQLite
            # gives its -wal and -shm files the database file's mode)
            with contextlib.suppress(FileExistsError):
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        self._initialise()

    def __str__(self) -> str:
        return str(self.path)

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            try:
                # timeout=0: busy waits are ours (short, jittered), not SQLite's ms sleeps.
                connection = sqlite3.connect(self.path, timeout=0, isolation_level=None)
            except sqlite3.Error as error:
                raise EnvironmentProblem(f"ledger {self.path} cannot be opened: {error}") from None
            self._local.connection = connection
            # Durable in WAL, fsync at checkpoint. Like any first statement on a file that
            # another process is creating, it may find the file locked.
            self._retry(lambda: connection.execute("PRAGMA synchronous=NORMAL"))
        return connection

    def _retry(self, call: Callable[[], Any]) -> Any:
        """Run `call`, waiting while another writer holds the lock."""
        deadline = time.monotonic() + self.busy_timeout
        pause = 0.0002
        while True:
            try:
                return call()
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) and "busy" not in str(error):
                    raise EnvironmentProblem(f"ledger {self.path}: {error}") from None
                if time.monotonic() > deadline:
                    raise EnvironmentProblem(
                        f"ledger {self.path} stayed locked for {self.busy_timeout:.0f} s"
                    ) from None
                time.sleep(random.uniform(0, pause))
                pause = min(pause * 2, 0.01)

    def _initialise(self) -> None:
        connection = self._connection()
        # Even this read can find the file locked while another process creates it.
        exists = self._retry(
            lambda: connection.execute(
                "SELECT 1 FROM sqlite_master WHERE name = 'entries'"
            ).fetchone()
        )
        if not exists:
            self._retry(lambda: connection.execute("PRAGMA journal_mode=WAL"))
            self._retry(lambda: connection.executescript(f"BEGIN IMMEDIATE;{_SCHEMA}COMMIT;"))
        elif self._missing_columns(connection):
            self._write(self._add_columns)

    @staticmethod
    def _missing_columns(connection: sqlite3.Connection) -> list[str]:
        present = {row[1] for row in connection.execute("PRAGMA table_info(entries)")}
        return [name for name in FORMAT_2_COLUMNS if name not in present]

    def _add_columns(self, connection: sqlite3.Connection) -> None:
        """A ledger made before entry formats gets their columns (its entries, NULL in
        them, stay format 1 and verify as they did)."""
        for name in self._missing_columns(connection):  # again, now holding the lock
            connection.execute(f"ALTER TABLE entries ADD COLUMN {name} INTEGER")

    def _write(self, work: Callable[[sqlite3.Connection], Any]) -> Any:
        connection = self._connection()
        self._retry(lambda: connection.execute("BEGIN IMMEDIATE"))
        try:
            result = work(connection)
            connection.execute("COMMIT")
            return result
        except BaseException as error:
            if connection.in_transaction:
                connection.execute("ROLLBACK")  # nothing of this append is kept
            if isinstance(error, sqlite3.OperationalError):  # disk full, I/O error, ...
                raise EnvironmentProblem(f"ledger {self.path}: {error}") from None
            raise

    def _is_duplicate(self, error: Exception) -> bool:
        return isinstance(error, sqlite3.IntegrityError)
