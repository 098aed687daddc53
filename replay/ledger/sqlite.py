"""The ledger in one SQLite file (WAL): the embedded default.

Writers, threads or processes, take turns under `BEGIN IMMEDIATE` and each commit is
on disk before its writer returns, with flushes shared (`replay.stores.sqlite_file`).
Triggers refuse UPDATE and DELETE through the database (the chain catches edits made
with other tools).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from replay.ledger.chain import ADDED_COLUMNS, INDEX_SQL, Ledger, table_sql
from replay.ledger.holding import HOLDING_SQL
from replay.stores.sqlite_file import SQLiteFile
from replay.stores.subject_keys import SubjectKeyStore

_SCHEMA = (
    table_sql("INTEGER")
    + INDEX_SQL
    + HOLDING_SQL
    + """
CREATE TRIGGER IF NOT EXISTS entries_no_update BEFORE UPDATE ON entries
    BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER IF NOT EXISTS entries_no_delete BEFORE DELETE ON entries
    BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
"""
)


class SQLiteLedger(Ledger):
    """One file in WAL mode, created private: it holds personal data."""

    def __init__(
        self, path: Path | str, busy_timeout: float = 60.0, keys: SubjectKeyStore | None = None
    ) -> None:
        self.path = Path(path)
        self.keys = keys
        # A cache of 16 MiB a connection (SQLite's default: 2 MiB) keeps the subject index,
        # whose keys are random, in memory: appending 100,000 decisions took 12% less time.
        self.file = SQLiteFile(
            self.path, "ledger", pragmas=("cache_size=-16384",), busy_timeout=busy_timeout
        )
        if self.file.create("entries", _SCHEMA) and self._missing_columns(self._connection()):
            self._write(self._add_columns)

    def __str__(self) -> str:
        return str(self.path)

    def _connection(self) -> sqlite3.Connection:
        return self.file.connection()

    def _write(self, work: Callable[[sqlite3.Connection], Any], durable: bool = True) -> Any:
        return self.file.write(work, flush=durable)

    def flush(self) -> None:
        self.file.flush()

    @staticmethod
    def _missing_columns(connection: sqlite3.Connection) -> list[str]:
        present = {row[1] for row in connection.execute("PRAGMA table_info(entries)")}
        added = [name for names in ADDED_COLUMNS.values() for name in names]
        return [name for name in added if name not in present]

    def _add_columns(self, connection: sqlite3.Connection) -> None:
        """A ledger made before later entry formats gets their columns, indexes and
        tables (its entries, NULL in them, keep their format and verify as they did)."""
        for name in self._missing_columns(connection):  # again, now holding the lock
            kind = "TEXT" if name in ADDED_COLUMNS[3] else "INTEGER"
            connection.execute(f"ALTER TABLE entries ADD COLUMN {name} {kind}")
        for statement in (INDEX_SQL + HOLDING_SQL).split(";"):
            if statement.strip():
                connection.execute(statement)

    def _is_duplicate(self, error: Exception) -> bool:
        return isinstance(error, sqlite3.IntegrityError)
