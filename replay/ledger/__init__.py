"""The decision ledger: the chain (`chain`), one module per backend (`sqlite`,
`postgres`), personal data sealed per subject (`sealing`), signed checkpoints
(`checkpoints`), the decisions recorded in it (`decisions`) and data subjects' rights
(`subjects`).

`open_ledger` opens the backend the settings name (a SQLite file by default, or a
`postgresql://` URL) with the subject key store kept in the key folder.
"""

from __future__ import annotations

from pathlib import Path

from replay.ledger.chain import (
    Ledger,
    LedgerEntry,
    LedgerVerification,
    NewEntry,
    entry_hash,
    pseudonym,
)
from replay.ledger.postgres import PostgresLedger
from replay.ledger.sqlite import SQLiteLedger
from replay.settings import Settings, load_settings
from replay.stores.subject_keys import LocalSubjectKeys, SubjectKeyStore, open_subject_keys

__all__ = [
    "Ledger",
    "LedgerEntry",
    "LedgerVerification",
    "LocalSubjectKeys",
    "NewEntry",
    "PostgresLedger",
    "SQLiteLedger",
    "entry_hash",
    "open_ledger",
    "open_ledger_at",
    "pseudonym",
    "subject_keys",
]


def open_ledger_at(
    location: str | Path,
    keys: SubjectKeyStore | None = None,
    connect_timeout: float | None = None,
) -> Ledger:
    """A `postgresql://` URL (reached within `connect_timeout` seconds, None:
    REPLAY_CONNECT_TIMEOUT), or the path of a SQLite file; without `keys`, entries
    with a subject can be neither written nor read (the chain still verifies)."""
    location = str(location)
    if location.startswith(("postgresql://", "postgres://")):
        return PostgresLedger(location, connect_timeout, keys=keys)
    return SQLiteLedger(location, keys=keys)


def subject_keys(settings: Settings) -> SubjectKeyStore:
    """The subjects' key store (`REPLAY_SUBJECT_KEYS`), apart from the ledger."""
    return open_subject_keys(settings.subject_keys, settings.connect_timeout)


def open_ledger(settings: Settings | None = None) -> Ledger:
    """The ledger the settings name (`REPLAY_LEDGER`), able to seal and open entries."""
    settings = settings or load_settings()
    return open_ledger_at(settings.ledger, subject_keys(settings), settings.connect_timeout)
