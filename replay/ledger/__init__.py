"""The decision ledger: the chain (`chain`), one module per backend (`sqlite`,
`postgres`), and the decisions recorded in it (`decisions`).

`open_ledger` opens the backend the settings name: a SQLite file by default, or a
`postgresql://` URL.
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

__all__ = [
    "Ledger",
    "LedgerEntry",
    "LedgerVerification",
    "NewEntry",
    "PostgresLedger",
    "SQLiteLedger",
    "entry_hash",
    "open_ledger",
    "open_ledger_at",
    "pseudonym",
]


def open_ledger_at(location: str | Path) -> Ledger:
    """A `postgresql://` URL, or the path of a SQLite file."""
    location = str(location)
    if location.startswith(("postgresql://", "postgres://")):
        return PostgresLedger(location)
    return SQLiteLedger(location)


def open_ledger(settings: Settings | None = None) -> Ledger:
    """The ledger the settings name (`REPLAY_LEDGER`)."""
    return open_ledger_at((settings or load_settings()).ledger)
