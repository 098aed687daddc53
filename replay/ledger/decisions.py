"""Decisions in the ledger: record them, look them up, verify the chain (against its
signed checkpoints), checkpoint its head.

`record_decision` is for services that keep their own serving stack: they decide,
then hand replay the inputs, outputs and seed. `replay serve` uses the same path.
"""

from __future__ import annotations

import secrets
from collections import Counter
from dataclasses import replace
from datetime import datetime
from typing import Any

from replay.ledger import open_ledger
from replay.ledger.chain import (
    Ledger,
    LedgerEntry,
    LedgerVerification,
    NewEntry,
    access_entry,
    pseudonym,
)
from replay.ledger.checkpoints import (
    Checkpoint,
    check_checkpoints,
    open_checkpoint_store,
    write_checkpoint,
)
from replay.settings import Settings, load_settings
from replay.stores.keys import create_private, signing_key, verifying_key
from replay.stores.manifests import manifest_store


def subject_key(settings: Settings) -> bytes:
    """The key behind pseudonymous subject ids: REPLAY_SUBJECT_KEY, or one kept in home."""
    if settings.subject_key:
        return settings.subject_key
    path = settings.home / "subject.key"
    if not path.exists():
        create_private(path, secrets.token_hex(32).encode())
    return path.read_text().strip().encode()


def new_seed() -> int:
    return secrets.randbelow(2**32)


def record_decision(
    manifest_id: str,
    inputs: dict[str, Any],
    outputs: dict[str, Any],
    *,
    seed: int | None = None,
    subject: str | None = None,
    fingerprint_id: str | None = None,
    settings: Settings | None = None,
) -> LedgerEntry:
    """Log a decision made elsewhere; `subject` is stored only as a keyed pseudonym.

    A decision logged without a seed was made (and replays) with the manifest's seed."""
    settings = settings or load_settings()
    manifest = manifest_store(settings).load(manifest_id)
    checked = manifest.schema.check(inputs)
    return open_ledger(settings).record(
        NewEntry(
            manifest_id=manifest.manifest_id,
            deployment=manifest.name,
            inputs=checked,
            outputs=outputs,
            seed=seed,
            fingerprint=fingerprint_id,
            subject=pseudonym(subject, subject_key(settings)) if subject else None,
        )
    )


def show_transaction(
    txn_id: str, *, by: str | None = None, settings: Settings | None = None
) -> LedgerEntry:
    """One entry, in clear where it can be; showing a person's data is recorded as an
    `access` entry by `by` (default: the user running replay)."""
    settings = settings or load_settings()
    ledger = open_ledger(settings)
    entry = ledger.get(txn_id)
    if entry.subject is not None and entry.opened is not None:
        ledger.record(access_entry(entry.subject, by or settings.user, "show", refers_to=txn_id))
    if entry.kind == "decision":
        entry = replace(entry, reviews=tuple(ledger.list(kind="review", refers_to=txn_id)))
    return entry


def list_transactions(
    *,
    deployment: str | None = None,
    since: datetime | None = None,
    subject: str | None = None,
    kind: str | None = "decision",
    limit: int | None = None,
    settings: Settings | None = None,
) -> list[LedgerEntry]:
    """Ledger entries oldest first; `subject` is the plain identifier (pseudonymised here).
    Opening people's sealed entries is recorded: one `access` entry per person."""
    settings = settings or load_settings()
    pseudonymous = pseudonym(subject, subject_key(settings)) if subject else None
    ledger = open_ledger(settings)
    entries = ledger.list(
        deployment=deployment, since=since, subject=pseudonymous, kind=kind, limit=limit
    )
    opened = Counter(entry.subject for entry in entries if entry.subject and entry.opened)
    if opened:
        ledger.append(
            access_entry(person, settings.user, "list", entries=count)
            for person, count in opened.items()
        )
    return entries


def verify_ledger(
    *, settings: Settings | None = None, ledger: Ledger | None = None
) -> LedgerVerification:
    """Walk the chain, then check it against every signed checkpoint of its head (of
    `ledger` when the caller has it open)."""
    settings = settings or load_settings()
    ledger = ledger or open_ledger(settings)
    walked = ledger.verify()
    if not walked.ok:
        return walked
    store = open_checkpoint_store(settings.checkpoint_location, ledger)
    return check_checkpoints(ledger, store, verifying_key(settings.key_folder), walked)


def checkpoint_ledger(*, settings: Settings | None = None) -> Checkpoint | None:
    """Sign the ledger's head now and keep it in the checkpoint store (None if empty)."""
    settings = settings or load_settings()
    ledger = open_ledger(settings)
    store = open_checkpoint_store(settings.checkpoint_location, ledger)
    return write_checkpoint(ledger, store, signing_key(settings.key_folder))
