"""Data subjects' rights: everything the ledger holds about one person, exported as
JSON, and erasure of their data without breaking the chain.

A person is named by their identifier and found by its keyed pseudonym, the only form
the ledger keeps. Their decisions, the replays and reviews of those decisions and every
access to them carry that pseudonym; entries written before replays carried one are
found by the decision they refer to. Erasing destroys the subject's key
(`replay.ledger.sealing`): their sealed entries stay in the chain, unreadable, and the
erasure is an entry of its own. Decisions logged without a subject cannot be found
this way: they are readable by transaction id only.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from replay.errors import BadInput
from replay.ledger import open_ledger, subject_keys
from replay.ledger.chain import (
    SEALED_KINDS,
    Ledger,
    LedgerEntry,
    NewEntry,
    access_entry,
    pseudonym,
)
from replay.ledger.decisions import subject_key
from replay.ledger.sealing import key_id_of, seal, unseal
from replay.settings import Settings, load_settings
from replay.stores.blobs import open_blob_store
from replay.stores.keys import write_once


@dataclass(frozen=True)
class Erasure:
    subject: str  # the pseudonym
    erased_on: str  # when (the erasure entry's time)
    entries: int  # sealed entries made unreadable
    txn_id: str  # the erasure's own entry
    already: bool = False  # erased before; nothing was done now
    in_clear: list[str] = field(default_factory=list)  # written before sealing: still readable

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SubjectExport:
    subject: str  # the pseudonym
    exported_at: str
    exported_by: str
    entries: list[dict[str, Any]]  # oldest first, in clear where not erased
    access_txn: str  # the entry recording this export
    reports: list[dict[str, Any]] = field(default_factory=list)  # PDFs written beside

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def keep_sealed(data: bytes, subject: str, txn_id: str, settings: Settings) -> str:
    """Keep a file made for a person (a report's PDF) in the blob store, sealed under
    their key, so that their export can include it and their erasure reaches it; the
    blob's name."""
    key = subject_keys(settings).current(subject)
    sealed = seal(key, data, f"{txn_id}/report").encode()
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "sealed"
        path.write_bytes(sealed)
        return open_blob_store(settings.blobs).put(path)


def _kept_reports(
    entries: list[LedgerEntry], out: Path, settings: Settings
) -> list[dict[str, Any]]:
    """The report PDFs kept for these entries, opened and written beside `out`."""
    found = []
    keys, blobs = subject_keys(settings), open_blob_store(settings.blobs)
    for entry in entries:
        if entry.kind != "report" or "sealed_pdf" not in entry.outputs:
            continue
        decision = entry.refers_to or ""
        item: dict[str, Any] = {"report": entry.txn_id, "decision": decision, "file": None}
        with tempfile.TemporaryDirectory() as scratch:
            sealed = blobs.get(entry.outputs["sealed_pdf"], Path(scratch) / "pdf").read_text()
        secret = keys.find(entry.subject or "", key_id_of(sealed))
        if secret is None:
            item["erased"] = True  # the key went with an erasure
        else:
            path = out.with_name(f"{out.stem}-report-{decision}.pdf")
            write_once(path, unseal(secret, sealed, f"{decision}/report"), 0o600)
            item["file"] = str(path)
        found.append(item)
    return found


def _entries_of(ledger: Ledger, subject: str) -> list[LedgerEntry]:
    """Every entry about `subject` (a pseudonym), oldest first, with the replays and
    reviews of their decisions logged before those carried the subject."""
    own = ledger.list(subject=subject, kind=None)
    seen = {entry.txn_id for entry in own}
    referring = [
        entry
        for decision in own
        if decision.kind == "decision"
        for entry in ledger.list(refers_to=decision.txn_id, kind=None)
        if entry.txn_id not in seen
    ]
    return sorted(own + referring, key=lambda entry: entry.seq)


def _known(ledger: Ledger, subject: str, identifier: str) -> list[LedgerEntry]:
    entries = _entries_of(ledger, subject)
    if not entries:
        raise BadInput(f"the ledger {ledger} holds nothing about subject {identifier!r}")
    return entries


def export_subject(
    subject: str, *, out: Path | None = None, settings: Settings | None = None
) -> SubjectExport:
    """Everything the ledger holds about one person, in clear where not erased; the
    export is itself recorded (an `access` entry). With `out`, also written there as
    JSON, private to its owner and whole or not at all."""
    settings = settings or load_settings()
    ledger = open_ledger(settings)
    pseudonymous = pseudonym(subject, subject_key(settings))
    entries = _known(ledger, pseudonymous, subject)
    if out is not None and out.exists():
        raise BadInput(f"{out} exists; name a new file")
    access = ledger.record(
        access_entry(pseudonymous, settings.user, "export", entries=len(entries))
    )
    export = SubjectExport(
        subject=pseudonymous,
        exported_at=access.time,
        exported_by=settings.user,
        entries=[entry.to_dict() for entry in [*entries, access]],
        access_txn=access.txn_id,
        reports=_kept_reports(entries, out, settings) if out is not None else [],
    )
    if out is not None:
        document = json.dumps(export.to_dict(), indent=2, ensure_ascii=False) + "\n"
        try:
            write_once(out, document.encode(), 0o600)  # a person's data: theirs and ours only
        except FileNotFoundError:
            raise BadInput(f"no folder {out.parent} to write {out.name} in") from None
    return export


def erase_subject(subject: str, *, settings: Settings | None = None) -> Erasure:
    """Make one person's data unreadable: their key is destroyed, every entry sealed
    under it stays in the chain (which still verifies) and reads as erased, and the
    erasure is recorded, naming the key. Running it again finishes an erasure that was
    interrupted. Entries written before sealing hold the data in clear: they cannot be
    erased without breaking the chain, and are named in `in_clear`."""
    settings = settings or load_settings()
    ledger = open_ledger(settings)
    pseudonymous = pseudonym(subject, subject_key(settings))
    entries = _known(ledger, pseudonymous, subject)
    sealed = [entry for entry in entries if entry.is_sealed and entry.erased_on is None]
    in_clear = [
        entry.txn_id
        for entry in entries
        if entry.kind in SEALED_KINDS and not entry.is_sealed and entry.inputs_json != "{}"
    ]
    if not sealed:
        last = next((entry for entry in reversed(entries) if entry.kind == "erasure"), None)
        if last is not None:
            count = int(last.outputs["entries"])
            return Erasure(pseudonymous, last.time, count, last.txn_id, True, in_clear)
    # The key goes first, then the record names it (with the keys of entries whose key
    # is already gone: an erasure interrupted before its record). An entry sealed under
    # the key while this runs reads as erased by this record too.
    destroyed = subject_keys(settings).destroy(pseudonymous)
    key_ids = {key_id_of(entry.inputs_json) for entry in sealed}
    if destroyed is not None:
        key_ids.add(destroyed)
    record = ledger.record(
        NewEntry(
            manifest_id="",
            deployment="",
            kind="erasure",
            subject=pseudonymous,
            inputs={},
            outputs={"by": settings.user, "entries": len(sealed), "key_ids": sorted(key_ids)},
        )
    )
    return Erasure(pseudonymous, record.time, len(sealed), record.txn_id, False, in_clear)
