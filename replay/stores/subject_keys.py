"""Where subjects' keys are kept, apart from the ledger: `SubjectKeyStore`, a small
interface a KMS can implement (`current`, `find`, `destroy`), and two stores.

- `LocalSubjectKeys`: a private SQLite file, by default `<key folder>/subjects.db`.
- `PostgresSubjectKeys`: a PostgreSQL database, for a ledger written from several
  machines, which must all seal a subject's entries under the same key.

`open_subject_keys` opens the one a location names (`REPLAY_SUBJECT_KEYS`).
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from replay.errors import ReplayWarning
from replay.settings import load_settings, without_password
from replay.stores.postgres import connect
from replay.stores.sqlite_file import SQLiteFile


@dataclass(frozen=True)
class SubjectKey:
    key_id: str
    secret: bytes = field(repr=False)


class SubjectKeyStore(ABC):
    """Where subjects' keys are kept; `subject` is always the pseudonym, never the
    person's identifier."""

    @abstractmethod
    def current(self, subject: str) -> SubjectKey:
        """The key new entries of `subject` are sealed under, made on first use and
        durable before it is returned."""

    def current_many(self, subjects: list[str]) -> dict[str, SubjectKey]:
        """`current` for several subjects (a store may make the new keys in one go)."""
        return {subject: self.current(subject) for subject in subjects}

    def existing(self, subjects: list[str]) -> dict[str, SubjectKey]:
        """The keys these subjects have (none made), as they are: for opening what was
        sealed, and so written, under them. A store may read them in one go; by default
        none, and each is then found by `find` when it is needed."""
        return {}

    @abstractmethod
    def find(self, subject: str, key_id: str) -> bytes | None:
        """The secret of `key_id`, or None once it was destroyed (or never existed)."""

    @abstractmethod
    def destroy(self, subject: str) -> str | None:
        """Destroy the subject's key for good; the id of the key destroyed (None if the
        subject had none)."""


class TableKeys(SubjectKeyStore):
    """A store keeping one row per subject (key id, secret) in a database table: it
    reads and keeps rows; making, racing and matching keys is the same for all."""

    @abstractmethod
    def _read(self, subjects: list[str], durable: bool = True) -> dict[str, SubjectKey]:
        """The keys these subjects have; with `durable`, on disk before they are
        returned (they are about to seal new data)."""

    @abstractmethod
    def _keep(self, keys: dict[str, SubjectKey]) -> int:
        """Keep the keys of subjects that have none yet; how many were kept."""

    def current(self, subject: str) -> SubjectKey:
        return self.current_many([subject])[subject]

    def current_many(self, subjects: list[str]) -> dict[str, SubjectKey]:
        found = self._read(subjects)
        missing = [subject for subject in subjects if subject not in found]
        while missing:  # writers may race (all use the key kept) or an erasure intervene
            made = {
                subject: SubjectKey(secrets.token_hex(8), secrets.token_bytes(32))
                for subject in missing
            }
            if self._keep(made) == len(made):
                found.update(made)  # every one kept: no need to read them back
            else:
                found.update(self._read(missing))
            missing = [subject for subject in subjects if subject not in found]
        return found

    def existing(self, subjects: list[str]) -> dict[str, SubjectKey]:
        # data sealed under a key was written only once its key was on disk
        return self._read(subjects, durable=False)

    def find(self, subject: str, key_id: str) -> bytes | None:
        # data sealed under a key was written only once its key was on disk
        found = self._read([subject], durable=False).get(subject)
        return found.secret if found is not None and found.key_id == key_id else None


class LocalSubjectKeys(TableKeys):
    """Subjects' keys in one private SQLite file, apart from the ledger. Destroying a
    key deletes its row with `secure_delete` (the page is overwritten) and then empties
    the WAL, which held the page too. The disk itself may keep old blocks (copy-on-write,
    wear levelling) and backups keep what they copied: where erasure must hold against
    that, keep this file on an encrypted filesystem and out of backups that outlive an
    erasure, or use a KMS. One machine only: a ledger written from several needs one
    store they all reach (`PostgresSubjectKeys`)."""

    def __init__(self, path: Path) -> None:
        self.file = SQLiteFile(path, "subject key store", pragmas=("secure_delete=ON",))
        self.file.create("subject_keys", _KEYS_SCHEMA)

    def _read(self, subjects: list[str], durable: bool = True) -> dict[str, SubjectKey]:
        found = {}
        for start in range(0, len(subjects), 500):  # under SQLite's limit on parameters
            chunk = subjects[start : start + 500]
            rows = self.file.connection().execute(
                "SELECT subject, key_id, secret FROM subject_keys "
                f"WHERE subject IN ({', '.join('?' for _ in chunk)})",
                chunk,
            )
            found.update({subject: SubjectKey(key_id, secret) for subject, key_id, secret in rows})
        if found and durable:  # another writer may have made them and not yet flushed them
            self.file.flush()
        return found

    def _keep(self, keys: dict[str, SubjectKey]) -> int:
        kept: int = self.file.write(partial(_insert_keys, keys=keys))
        return kept

    def destroy(self, subject: str) -> str | None:
        deleted = self.file.write(partial(_delete_key, subject=subject))
        if not self.file.empty_wal():
            warnings.warn(
                f"{self.file}: readers kept its WAL from being emptied; the destroyed key "
                "stays in it until the next checkpoint",
                ReplayWarning,
                stacklevel=2,
            )
        return deleted


def _delete_key(connection: sqlite3.Connection, subject: str) -> str | None:
    found = connection.execute(
        "SELECT key_id FROM subject_keys WHERE subject = ?", [subject]
    ).fetchone()
    connection.execute("DELETE FROM subject_keys WHERE subject = ?", [subject])
    return str(found[0]) if found else None


def _insert_keys(connection: sqlite3.Connection, keys: dict[str, SubjectKey]) -> int:
    """Keep the keys of subjects that have none yet; how many were kept."""
    return connection.executemany(
        "INSERT OR IGNORE INTO subject_keys VALUES (?, ?, ?)",
        [(subject, key.key_id, key.secret) for subject, key in keys.items()],
    ).rowcount


_KEYS_SCHEMA = """
CREATE TABLE IF NOT EXISTS subject_keys (
    subject TEXT PRIMARY KEY,
    key_id TEXT NOT NULL,
    secret BLOB NOT NULL
) WITHOUT ROWID;
"""


class PostgresSubjectKeys(TableKeys):
    """Subjects' keys in a PostgreSQL database that every machine writing the ledger
    reaches. Keep it apart from the ledger's own database (another database, other
    credentials). Destroying deletes the row, then VACUUMs the table so that its space
    is reused; the server's WAL archive and backups keep it until they are recycled:
    keep their retention shorter than your erasure deadline."""

    def __init__(self, url: str, connect_timeout: float | None = None) -> None:
        self.url = url
        # seconds to connect (None: REPLAY_CONNECT_TIMEOUT)
        self.connect_timeout = (
            load_settings().connect_timeout if connect_timeout is None else connect_timeout
        )
        self._local = threading.local()
        self._connection().execute(_KEYS_SCHEMA_POSTGRES)

    def __str__(self) -> str:
        return f"subject key store {without_password(self.url)}"

    def _connection(self) -> Any:
        connection = getattr(self._local, "connection", None)
        if connection is None or connection.closed:
            connection = self._local.connection = connect(self.url, self.connect_timeout, str(self))
        return connection

    def _read(self, subjects: list[str], durable: bool = True) -> dict[str, SubjectKey]:
        rows = self._connection().execute(  # a commit here is on disk: durable either way
            "SELECT subject, key_id, secret FROM subject_keys WHERE subject = ANY(%s)",
            [subjects],
        )
        return {subject: SubjectKey(key_id, bytes(secret)) for subject, key_id, secret in rows}

    def _keep(self, keys: dict[str, SubjectKey]) -> int:
        with self._connection().cursor() as cursor:
            cursor.executemany(
                "INSERT INTO subject_keys VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                [(subject, key.key_id, key.secret) for subject, key in keys.items()],
            )
            kept: int = cursor.rowcount
        return kept

    def destroy(self, subject: str) -> str | None:
        connection = self._connection()
        row = connection.execute(
            "DELETE FROM subject_keys WHERE subject = %s RETURNING key_id", [subject]
        ).fetchone()
        connection.execute("VACUUM subject_keys")
        return str(row[0]) if row else None


_KEYS_SCHEMA_POSTGRES = """
CREATE TABLE IF NOT EXISTS subject_keys (
    subject TEXT PRIMARY KEY,
    key_id TEXT NOT NULL,
    secret BYTEA NOT NULL
)
"""


def open_subject_keys(location: str, connect_timeout: float | None = None) -> SubjectKeyStore:
    """A `postgresql://` URL (reached within `connect_timeout` seconds, None:
    REPLAY_CONNECT_TIMEOUT), or the path of a SQLite file."""
    if location.startswith(("postgresql://", "postgres://")):
        return PostgresSubjectKeys(location, connect_timeout)
    return LocalSubjectKeys(Path(location))
