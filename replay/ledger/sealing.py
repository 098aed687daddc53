"""Personal data sealed per subject, so that a person's data can be erased without
breaking the chain.

A decision's inputs and outputs (and those of its replays) are stored as AES-GCM
ciphertext under a key that belongs to its subject alone, and the chain hashes the
ciphertext. Destroying the key (`replay subject erase`) makes every entry sealed under
it unreadable while each hash, and so `ledger verify`, stays as it was.

Keys live in a `SubjectKeyStore`: a private SQLite file in the key folder by default
(`LocalSubjectKeys`); a KMS can stand behind the same three methods. A sealed field
names the key it was sealed under, so a subject who returns after an erasure gets a
new key and the old entries stay erased.
"""

from __future__ import annotations

import base64
import os
import secrets
import sqlite3
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from replay.errors import IntegrityError, ReplayWarning
from replay.stores.sqlite_file import SQLiteFile

CIPHER = "aes-256-gcm"


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

    @abstractmethod
    def find(self, subject: str, key_id: str) -> bytes | None:
        """The secret of `key_id`, or None once it was destroyed (or never existed)."""

    @abstractmethod
    def destroy(self, subject: str) -> str | None:
        """Destroy the subject's key for good; the id of the key destroyed (None if the
        subject had none)."""


class LocalSubjectKeys(SubjectKeyStore):
    """Subjects' keys in one private SQLite file (by default `<key folder>/subjects.db`),
    apart from the ledger. Destroying a key deletes its row with `secure_delete` (the
    page is overwritten) and then empties the WAL, which held the page too. The disk
    itself may keep old blocks (copy-on-write, wear levelling) and backups keep what
    they copied: where erasure must hold against that, keep this file on an encrypted
    filesystem and out of backups that outlive an erasure, or use a KMS."""

    def __init__(self, path: Path) -> None:
        self.file = SQLiteFile(path, "subject key store", pragmas=("secure_delete=ON",))
        self.file.create("subject_keys", _KEYS_SCHEMA)

    def _read(self, subjects: list[str]) -> dict[str, SubjectKey]:
        found = {}
        for start in range(0, len(subjects), 500):  # under SQLite's limit on parameters
            chunk = subjects[start : start + 500]
            rows = self.file.connection().execute(
                "SELECT subject, key_id, secret FROM subject_keys "
                f"WHERE subject IN ({', '.join('?' for _ in chunk)})",
                chunk,
            )
            found.update({subject: SubjectKey(key_id, secret) for subject, key_id, secret in rows})
        return found

    def current(self, subject: str) -> SubjectKey:
        return self.current_many([subject])[subject]

    def current_many(self, subjects: list[str]) -> dict[str, SubjectKey]:
        found = self._read(subjects)
        if found:  # another writer may have made them and not yet flushed them
            self.file.flush()
        missing = [subject for subject in subjects if subject not in found]
        while missing:  # writers may race (all use the key kept) or an erasure intervene
            made = {
                subject: SubjectKey(secrets.token_hex(8), secrets.token_bytes(32))
                for subject in missing
            }
            if self.file.write(partial(_insert_keys, keys=made)) == len(made):
                found.update(made)  # every one kept: no need to read them back
            else:
                found.update(self._read(missing))
            missing = [subject for subject in subjects if subject not in found]
        return found

    def find(self, subject: str, key_id: str) -> bytes | None:
        found = self._read([subject]).get(subject)
        return found.secret if found is not None and found.key_id == key_id else None

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


def seal(key: SubjectKey, plain: bytes, context: str) -> str:
    """`plain` encrypted under `key`, bound to `context` (which entry, which field):
    `aes-256-gcm:<key id>:<base64 of nonce and ciphertext>`."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(12)
    sealed = AESGCM(key.secret).encrypt(nonce, plain, context.encode())
    return f"{CIPHER}:{key.key_id}:{base64.b64encode(nonce + sealed).decode()}"


def key_id_of(sealed: str) -> str:
    cipher, _, rest = sealed.partition(":")
    key_id, _, data = rest.partition(":")
    if cipher != CIPHER or not key_id or not data:
        raise IntegrityError(f"sealed data that is not {CIPHER}:<key id>:<data>")
    return key_id


def unseal(secret: bytes, sealed: str, context: str) -> bytes:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    try:
        data = base64.b64decode(sealed.split(":", 2)[2], validate=True)
        return AESGCM(secret).decrypt(data[:12], data[12:], context.encode())
    except (InvalidTag, ValueError, IndexError):  # binascii.Error is a ValueError
        raise IntegrityError(f"sealed data for {context} does not open with its key") from None
