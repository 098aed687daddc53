"""The ledger on PostgreSQL (`REPLAY_LEDGER=postgresql://user@host/db`), for many writers
on many machines. Same table, same chain as SQLite (`replay.ledger.chain`).

An append locks the table in SHARE ROW EXCLUSIVE mode for its transaction: writers
queue for it, readers (verification, lookups) are never blocked. Triggers refuse
UPDATE, DELETE and TRUNCATE; the chain catches what a superuser could still do.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from replay.ledger.chain import INDEX_SQL, Ledger, table_sql
from replay.ledger.holding import HOLDING_SQL
from replay.settings import load_settings, without_password
from replay.stores.postgres import connect
from replay.stores.subject_keys import SubjectKeyStore

if TYPE_CHECKING:
    import psycopg

# One number for this project's advisory lock: creating the schema from several
# processes at once would otherwise race inside PostgreSQL's catalog.
_SCHEMA_LOCK = 0x7265706C6179  # "replay"

_SCHEMA = (
    table_sql("BIGINT")
    + """
-- a ledger made before later entry formats: its entries keep theirs (NULL in these)
ALTER TABLE entries ADD COLUMN IF NOT EXISTS format BIGINT;
ALTER TABLE entries ADD COLUMN IF NOT EXISTS sealed BIGINT;
ALTER TABLE entries ADD COLUMN IF NOT EXISTS source TEXT;
ALTER TABLE entries ADD COLUMN IF NOT EXISTS source_id TEXT;
"""
    + INDEX_SQL
    + HOLDING_SQL
    + """
CREATE OR REPLACE FUNCTION replay_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'the ledger is append-only'; END $$;
CREATE OR REPLACE TRIGGER entries_no_change BEFORE UPDATE OR DELETE ON entries
    FOR EACH ROW EXECUTE FUNCTION replay_append_only();
CREATE OR REPLACE TRIGGER entries_no_truncate BEFORE TRUNCATE ON entries
    FOR EACH STATEMENT EXECUTE FUNCTION replay_append_only();
"""
)


class PostgresLedger(Ledger):
    placeholder = "%s"

    def __init__(
        self, url: str, connect_timeout: float | None = None, keys: SubjectKeyStore | None = None
    ) -> None:
        self.url = url
        # seconds to connect (None: REPLAY_CONNECT_TIMEOUT)
        self.connect_timeout = (
            load_settings().connect_timeout if connect_timeout is None else connect_timeout
        )
        self.keys = keys
        self._local = threading.local()
        self._initialise()

    def __str__(self) -> str:
        return without_password(self.url)

    def _connection(self) -> psycopg.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None or connection.closed:
            connection = connect(self.url, self.connect_timeout, f"ledger {self}")
            self._local.connection = connection
        return connection

    def _initialise(self) -> None:
        connection = self._connection()
        with connection.transaction():
            connection.execute("SELECT pg_advisory_xact_lock(%s)", [_SCHEMA_LOCK])
            connection.execute(_SCHEMA)

    def _write(self, work: Callable[[psycopg.Connection], Any], durable: bool = True) -> Any:
        # PostgreSQL's commit is on disk when it returns (synchronous_commit, its default)
        connection = self._connection()
        with connection.transaction():
            connection.execute("LOCK TABLE entries IN SHARE ROW EXCLUSIVE MODE")
            return work(connection)

    def flush(self) -> None:
        """Nothing to do: each commit was on disk when it returned."""

    def _is_duplicate(self, error: Exception) -> bool:
        import psycopg

        return isinstance(error, psycopg.errors.UniqueViolation)
