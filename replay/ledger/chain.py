"""The chain: append-only, hash-linked entries over any SQL database a backend connects
to (`replay.ledger.sqlite` by default, `replay.ledger.postgres` for many writers on many
machines).

Each entry's `hash = sha256(prev_hash ‖ canonical JSON of the entry)`, so changing,
removing or reordering any stored entry breaks the chain from that entry on, and
`verify` names it. Triggers refuse UPDATE and DELETE through the database; the chain
catches what a trigger cannot (someone editing the data with other tools).

Many writers (threads or processes) may append at once: each append takes the
database's write lock, reads the head and links to it inside that lock, and
`prev_hash` is UNIQUE, so the chain can never fork. `Ledger` holds all of that; a
backend only says how to connect, lock and create its table.

Entries have a format version. Format 1 (no `format` column) held inputs and outputs
in clear. Format 2 seals them per subject (`replay.ledger.sealing`) when the entry has
one, and hashes the ciphertext. Format 3 adds where a decision made elsewhere came from
(`source`, `source_id`: one entry per source event, `replay.ingestion`); its `time` is
then when the decision was made, not when it was logged. Every format verifies, so
ledgers written before keep their proof.
"""

from __future__ import annotations

import builtins
import hmac
import json
import secrets
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from replay.errors import (
    BadInput,
    EnvironmentProblem,
    Erased,
    IntegrityError,
    ReplayError,
    one_line,
)
from replay.ledger.sealing import key_id_of, seal, unseal
from replay.manifests.canonical import canonical_json, sha256_bytes
from replay.stores.subject_keys import SubjectKey, SubjectKeyStore

GENESIS = "0" * 64
FORMAT = 3  # the entry format this version writes
KINDS = ("decision", "replay", "review", "access", "erasure", "report", "backtest", "audit")
# Kinds whose inputs and outputs are a person's data, sealed when the entry has a
# subject. An access (someone read a person's entries) or an erasure says nothing
# about the person and stays readable after the erasure, as evidence.
SEALED_KINDS = ("decision", "replay", "review")


def table_sql(integer: str) -> str:
    """The entries table and its indexes, in the dialect's name for a 64-bit integer."""
    return f"""
CREATE TABLE IF NOT EXISTS entries (
    seq {integer} PRIMARY KEY,
    txn_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    manifest_id TEXT NOT NULL,
    deployment TEXT NOT NULL,
    time TEXT NOT NULL,
    subject TEXT,
    inputs TEXT NOT NULL,
    outputs TEXT NOT NULL,
    seed {integer},
    fingerprint TEXT,
    refers_to TEXT,
    prev_hash TEXT NOT NULL UNIQUE,
    hash TEXT NOT NULL,  -- no index needed: prev_hash UNIQUE already stops a fork
    format {integer},
    sealed {integer},
    source TEXT,
    source_id TEXT
);
"""


# Made after the columns of later formats were added to an older ledger's table.
INDEX_SQL = """
CREATE INDEX IF NOT EXISTS entries_deployment_time ON entries (deployment, time);
CREATE INDEX IF NOT EXISTS entries_subject ON entries (subject);
CREATE INDEX IF NOT EXISTS entries_refers_to ON entries (refers_to);
-- one entry per source event: ingesting it again adds nothing (NULLs never collide)
CREATE UNIQUE INDEX IF NOT EXISTS entries_source ON entries (source, source_id);
"""


_COLUMNS = (
    "seq",
    "txn_id",
    "kind",
    "manifest_id",
    "deployment",
    "time",
    "subject",
    "inputs",
    "outputs",
    "seed",
    "fingerprint",
    "refers_to",
    "prev_hash",
    "hash",
    "format",
    "sealed",
    "source",
    "source_id",
)
# Added by formats 2 and 3: a ledger made before gets them as NULL columns, and its
# entries' hashes cover none of them.
ADDED_COLUMNS = {2: ("format", "sealed"), 3: ("source", "source_id")}
LATER_COLUMNS = {
    version: tuple(
        name for later, names in ADDED_COLUMNS.items() if later > version for name in names
    )
    for version in range(1, FORMAT + 1)
}


@dataclass(frozen=True)
class NewEntry:
    """What a caller records; the ledger adds seq, id, time and the chain."""

    manifest_id: str
    deployment: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    seed: int | None = None
    subject: str | None = None  # already pseudonymous (see `pseudonym`); seals the data
    fingerprint: str | None = None
    kind: str = "decision"
    refers_to: str | None = None
    txn_id: str | None = None
    time: datetime | None = None  # when it was decided, if not now (a decision made elsewhere)
    source: str | None = None  # where a decision made elsewhere came from: kserve, sagemaker, file
    source_id: str | None = None  # its event's id there


@dataclass(frozen=True)
class PreparedEntry:
    """An entry sealed and ready to commit."""

    columns: dict[str, Any]  # all but seq and the links; time None: now
    plain: tuple[str, str] | None  # a sealed entry's inputs and outputs JSON


@dataclass(frozen=True)
class LedgerEntry:
    seq: int
    txn_id: str
    kind: str
    manifest_id: str
    deployment: str
    time: str
    subject: str | None
    inputs_json: str  # exactly as stored and hashed: canonical JSON, or sealed
    outputs_json: str
    seed: int | None
    fingerprint: str | None
    refers_to: str | None
    prev_hash: str
    hash: str
    format: int | None  # None: format 1, written before entries had one
    sealed: int | None  # 1: inputs and outputs are sealed under the subject's key
    source: str | None = None  # format 3: a decision made elsewhere, from where
    source_id: str | None = None
    # Not stored: a sealed entry's inputs and outputs JSON when its key was found, the
    # day its subject was erased, or why it cannot be opened.
    opened: tuple[str, str] | None = field(default=None, repr=False, compare=False)
    erased_on: str | None = None
    unreadable: ReplayError | None = field(default=None, repr=False, compare=False)
    # A decision's reviews, when it is shown (`show_transaction`).
    reviews: tuple[LedgerEntry, ...] = field(default=(), repr=False, compare=False)

    @property
    def is_sealed(self) -> bool:
        """Inputs and outputs are ciphertext (only format 2 and later seal)."""
        return bool(self.format and self.sealed)

    @property
    def plain(self) -> tuple[str, str]:
        """The inputs' and outputs' canonical JSON, in clear."""
        if not self.is_sealed:
            return self.inputs_json, self.outputs_json
        if self.opened is not None:
            return self.opened
        if self.erased_on is not None:
            raise Erased(
                f"transaction {self.txn_id}: its subject's data was erased on {self.erased_on[:10]}"
            )
        problem = self.unreadable or EnvironmentProblem(
            f"transaction {self.txn_id} is sealed and was read without the subject key store"
        )
        raise type(problem)(str(problem))

    def readable(self) -> LedgerEntry:
        """This entry, if its data can be read: else `Erased` (or EnvironmentProblem for
        a key that is missing without an erasure), raised before any work starts."""
        self.plain  # noqa: B018 - raises if it cannot be read
        return self

    @property
    def inputs(self) -> dict[str, Any]:
        inputs: dict[str, Any] = json.loads(self.plain[0])
        return inputs

    @property
    def outputs(self) -> dict[str, Any]:
        outputs: dict[str, Any] = json.loads(self.plain[1])
        return outputs

    @property
    def outcome(self) -> str:
        """A replay's verdict, a decision's `decision` field, else its outputs cut short."""
        if self.is_sealed and self.opened is None:
            return "erased" if self.erased_on else "unreadable"
        outputs = self.outputs
        found = outputs.get("verdict") or outputs.get("decision")
        return str(found) if found is not None else one_line(self.plain[1], 40)

    def columns(self) -> dict[str, Any]:
        """The entry as the table stores it (column name: value)."""
        stored = (getattr(self, name) for name in _FIELDS)
        return dict(zip(_COLUMNS, stored, strict=True))

    def to_dict(self) -> dict[str, Any]:
        """The entry in clear; an erased entry's inputs and outputs are None (an entry
        that cannot be opened otherwise raises)."""
        inputs: dict[str, Any] | None
        outputs: dict[str, Any] | None
        try:
            inputs, outputs = self.inputs, self.outputs
        except Erased:
            inputs = outputs = None
        shown: dict[str, Any] = {"inputs": inputs, "outputs": outputs, "erased_on": self.erased_on}
        if self.reviews:
            shown["reviews"] = [review.to_dict() for review in self.reviews]
        return {**self.columns(), **shown}


_FIELDS = tuple(
    {"inputs": "inputs_json", "outputs": "outputs_json"}.get(name, name) for name in _COLUMNS
)


def access_entry(subject: str, by: str, action: str, **details: Any) -> NewEntry:
    """The record that someone (`by`) read a person's data: reading is an entry too."""
    refers_to = details.pop("refers_to", None)
    return NewEntry(
        manifest_id="",
        deployment="",
        kind="access",
        subject=subject,
        inputs={},
        outputs={"action": action, "by": by, **details},
        refers_to=refers_to,
    )


def entry_hash(prev_hash: str, body: dict[str, Any]) -> str:
    return sha256_bytes(prev_hash.encode() + canonical_json(body))


def _body(entry: dict[str, Any]) -> dict[str, Any]:
    """What an entry's hash covers: every column but the links and those added by
    formats later than its own."""
    left_out = {"prev_hash", "hash", *LATER_COLUMNS[entry["format"] or 1]}
    return {key: entry[key] for key in _COLUMNS if key not in left_out}


def new_transaction_id(at: datetime | None = None) -> str:
    """Sortable by time (milliseconds; `at`, else now), unique by 48 random bits."""
    moment = time.time() if at is None else at.timestamp()
    return f"txn_{int(moment * 1000):012x}{secrets.token_hex(6)}"


def pseudonym(subject: str, key: bytes) -> str:
    """A stable pseudonymous id for a person: the ledger never holds the identifier."""
    return "s_" + hmac.new(key, subject.encode(), "sha256").hexdigest()[:32]


@dataclass(frozen=True)
class LedgerVerification:
    entries: int
    first_bad: int | None = None
    reason: str = ""
    checkpoints: int = 0  # signed checkpoints the chain was checked against

    @property
    def ok(self) -> bool:
        return self.first_bad is None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}

    def raise_for_mismatch(self) -> None:
        if self.first_bad is not None:
            raise IntegrityError(f"ledger entry {self.first_bad} {self.reason}")


class Ledger(ABC):
    """The chain, over any SQL database a backend connects to. `keys` seals and opens
    entries that have a subject; without it such entries can be neither written nor read
    (verification never needs it)."""

    placeholder = "?"  # the driver's parameter marker
    keys: SubjectKeyStore | None = None

    @abstractmethod
    def __str__(self) -> str:
        """Where the ledger is, for messages (no passwords)."""

    @abstractmethod
    def _connection(self) -> Any:
        """This thread's connection: `execute(sql, parameters)` returns a cursor."""

    @abstractmethod
    def _write(self, work: Callable[[Any], Any], durable: bool = True) -> Any:
        """Run `work(connection)` in one transaction holding the ledger's write lock;
        return once it is committed and, if `durable`, on disk."""

    @abstractmethod
    def flush(self) -> None:
        """Put every commit this process made on disk (after `append(durable=False)`)."""

    @abstractmethod
    def _is_duplicate(self, error: Exception) -> bool:
        """Whether `error` is the database refusing a duplicate (txn id, link)."""

    def _prepare(
        self, entries: list[NewEntry], keys: Mapping[str, SubjectKey] | None = None
    ) -> list[PreparedEntry]:
        """Entries ready to commit: every column but their place in the chain, sealed
        where they have a subject (under `keys` given, else their subjects' keys, new
        ones made in one go). Done before the write lock is taken."""
        for entry in entries:
            if entry.kind not in KINDS:
                raise BadInput(f"ledger entry kind must be one of {', '.join(KINDS)}")
        subjects = {e.subject for e in entries if e.subject is not None and e.kind in SEALED_KINDS}
        keys = dict(keys or {})
        missing = sorted(subjects - set(keys))
        if missing:
            if self.keys is None:
                raise BadInput("an entry with a subject needs the subject key store to seal it")
            keys.update(self.keys.current_many(missing))
        prepared = []
        for entry in entries:
            txn_id = entry.txn_id or new_transaction_id(entry.time)
            inputs = canonical_json(entry.inputs).decode()
            outputs = canonical_json(entry.outputs).decode()
            plain = None
            key = keys.get(entry.subject) if entry.subject and entry.kind in SEALED_KINDS else None
            if key is not None:
                plain = (inputs, outputs)
                inputs = seal(key, inputs.encode(), f"{txn_id}/inputs")
                outputs = seal(key, outputs.encode(), f"{txn_id}/outputs")
            row = {
                "txn_id": txn_id,
                "kind": entry.kind,
                "manifest_id": entry.manifest_id,
                "deployment": entry.deployment,
                "subject": entry.subject,
                "inputs": inputs,
                "outputs": outputs,
                "seed": entry.seed,
                "fingerprint": entry.fingerprint,
                "refers_to": entry.refers_to,
                "format": FORMAT,
                "sealed": int(plain is not None),
                "source": entry.source,
                "source_id": entry.source_id,
                "time": None if entry.time is None else _stored_time(entry.time),
            }
            prepared.append(PreparedEntry(row, plain))
        return prepared

    def append(self, entries: Iterable[NewEntry], durable: bool = True) -> list[LedgerEntry]:
        """Append entries in order, in one transaction; return them as stored, once they
        are on disk (or, not `durable`, once committed: `flush` then puts them there)."""
        pending = self._prepare(list(entries))
        try:
            stored: list[LedgerEntry] = self._write(
                lambda connection: self._link(connection, pending), durable
            )
        except Exception as error:
            if self._is_duplicate(error):
                raise BadInput(f"ledger refused the entry: {error}") from None
            raise
        return stored

    def _link(
        self, connection: Any, pending: list[PreparedEntry], skip_known: bool = False
    ) -> list[LedgerEntry]:
        """Insert prepared entries after the head, inside a transaction holding the write
        lock (`_write`); return them as stored. With `skip_known`, an entry whose source
        event the ledger (or an earlier entry of `pending`) holds already is left out."""
        head = connection.execute("SELECT seq, hash FROM entries ORDER BY seq DESC LIMIT 1")
        seq, prev_hash = head.fetchone() or (0, GENESIS)
        stored, rows = [], []
        now = datetime.now(UTC).isoformat(timespec="microseconds")
        for prepared in self._unknown(connection, pending) if skip_known else pending:
            seq += 1
            row: dict[str, Any] = {
                **prepared.columns,
                "seq": seq,
                "time": prepared.columns["time"] or now,
                "prev_hash": prev_hash,
            }
            row["hash"] = entry_hash(prev_hash, _body(row))
            rows.append([row[key] for key in _COLUMNS])
            columns = dict(zip(_FIELDS, rows[-1], strict=True))
            stored.append(LedgerEntry(**columns, opened=prepared.plain))
            prev_hash = row["hash"]
        if rows:
            marks = ", ".join(self.placeholder for _ in _COLUMNS)
            insert = f"INSERT INTO entries ({', '.join(_COLUMNS)}) VALUES ({marks})"
            connection.cursor().executemany(insert, rows)  # psycopg: on cursors only
        return stored

    def record(self, entry: NewEntry) -> LedgerEntry:
        return self.append([entry])[0]

    def _unknown(self, connection: Any, pending: list[PreparedEntry]) -> list[PreparedEntry]:
        """`pending` without the entries whose source event the ledger (or an earlier
        entry of `pending`) already holds; read under the write lock."""
        events = {(p.columns["source"], p.columns["source_id"]) for p in pending}
        events.discard((None, None))
        known: set[tuple[str, str]] = set()
        by_source: dict[str, list[str]] = {}
        for source, source_id in events:
            by_source.setdefault(source, []).append(source_id)
        for source, ids in by_source.items():
            for start in range(0, len(ids), 500):  # under every driver's parameter limit
                part = ids[start : start + 500]
                marks = ", ".join(self.placeholder for _ in part)
                rows = connection.execute(
                    f"SELECT source, source_id FROM entries WHERE source = {self.placeholder} "
                    f"AND source_id IN ({marks})",
                    [source, *part],
                )
                known.update((row[0], row[1]) for row in rows)
        kept = []
        for prepared in pending:
            event = (prepared.columns["source"], prepared.columns["source_id"])
            if event[0] is None or event not in known:
                kept.append(prepared)
                known.add(event)
        return kept

    def _rows(self, sql: str, parameters: Iterable[Any] = ()) -> Iterator[LedgerEntry]:
        cursor = self._connection().execute(
            f"SELECT {', '.join(_COLUMNS)} FROM entries {sql}", list(parameters)
        )
        for row in cursor:
            yield LedgerEntry(*row)

    def head(self) -> LedgerEntry | None:
        """The last entry, or None when the ledger is empty."""
        return next(self._rows("ORDER BY seq DESC LIMIT 1"), None)

    def at(self, seq: int) -> LedgerEntry:
        """The entry as stored (sealed data left sealed)."""
        found = list(self._rows(f"WHERE seq = {self.placeholder}", [seq]))
        if not found:
            raise BadInput(f"no entry {seq} in the ledger {self}")
        return found[0]

    def get(self, txn_id: str) -> LedgerEntry:
        found = list(self._rows(f"WHERE txn_id = {self.placeholder}", [txn_id]))
        if not found:
            raise BadInput(f"no transaction {txn_id} in the ledger {self}")
        return self._open(found)[0]

    def erasures(self, subject: str) -> list[LedgerEntry]:
        """The erasures of one subject's data, oldest first."""
        return list(
            self._rows(
                f"WHERE subject = {self.placeholder} AND kind = 'erasure' ORDER BY seq", [subject]
            )
        )

    def _open(self, entries: list[LedgerEntry]) -> list[LedgerEntry]:
        """Sealed entries opened with their subject's key; where the key was destroyed,
        dated by the erasure that names it; else marked unreadable, with the reason."""
        erased: dict[str, dict[str, str]] = {}  # subject: {key id: erasure time}
        opened = []
        for entry in entries:
            if not entry.is_sealed or self.keys is None:
                opened.append(entry)
                continue
            try:
                opened.append(self._open_one(entry, erased))
            except IntegrityError as damaged:  # this entry, not the others
                opened.append(replace(entry, unreadable=damaged))
        return opened

    def _open_one(self, entry: LedgerEntry, erased: dict[str, dict[str, str]]) -> LedgerEntry:
        assert self.keys is not None
        if entry.subject is None:
            raise IntegrityError(f"transaction {entry.txn_id} is sealed but names no subject")
        key_id = key_id_of(entry.inputs_json)
        secret = self.keys.find(entry.subject, key_id)
        if secret is not None:
            inputs = unseal(secret, entry.inputs_json, f"{entry.txn_id}/inputs")
            outputs = unseal(secret, entry.outputs_json, f"{entry.txn_id}/outputs")
            return replace(entry, opened=(inputs.decode(), outputs.decode()))
        if entry.subject not in erased:
            erased[entry.subject] = {
                destroyed: erasure.time
                for erasure in self.erasures(entry.subject)
                for destroyed in erasure.outputs.get("key_ids", [])
            }
        if key_id in erased[entry.subject]:
            return replace(entry, erased_on=erased[entry.subject][key_id])
        missing = EnvironmentProblem(
            f"transaction {entry.txn_id} is sealed under a key of its subject that is not "
            "in the key store and that no erasure names: restore the key store, or finish "
            "an interrupted erasure with `replay subject erase`"
        )
        return replace(entry, unreadable=missing)

    def list(
        self,
        *,
        deployment: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        subject: str | None = None,
        kind: str | None = "decision",
        refers_to: str | None = None,
        source: str | None = None,
        ingested: bool = False,
        after: int | None = None,
        through: int | None = None,
        limit: int | None = None,
    ) -> list[LedgerEntry]:
        """Entries oldest first, filtered: `since` inclusive, `until` exclusive (without
        a time zone, UTC), `source` the stack an ingested decision came from (`ingested`:
        any), `after` a sequence number (the last of the previous chunk), `through` the
        last sequence number (the head when a long read began)."""
        where, parameters = self._where(
            deployment=deployment,
            since=since,
            until=until,
            subject=subject,
            kind=kind,
            refers_to=refers_to,
            source=source,
            ingested=ingested,
            after=after,
            through=through,
        )
        tail = f" LIMIT {int(limit)}" if limit else ""
        return self._open(list(self._rows(f"{where} ORDER BY seq{tail}", parameters)))

    def count(self, **filters: Any) -> int:
        """How many entries `list` would give with these filters (no `limit`)."""
        where, parameters = self._where(**filters)
        (total,) = (
            self._connection()
            .execute(f"SELECT COUNT(*) FROM entries {where}", parameters)
            .fetchone()
        )
        return int(total)

    def manifest_ids(self, **filters: Any) -> builtins.list[str]:
        """The manifests of the entries `list` would give, by first appearance."""
        where, parameters = self._where(**filters)
        rows = self._connection().execute(
            f"SELECT manifest_id, MIN(seq) FROM entries {where} GROUP BY manifest_id "
            "ORDER BY MIN(seq)",
            parameters,
        )
        return [row[0] for row in rows]

    def span(self, **filters: Any) -> tuple[str, str]:
        """The times of the first and last entries `list` would give (BadInput if none)."""
        where, parameters = self._where(**filters)
        first, last = (
            self._connection()
            .execute(f"SELECT MIN(time), MAX(time) FROM entries {where}", parameters)
            .fetchone()
        )
        if first is None:
            raise BadInput("no ledger entries match")
        return str(first), str(last)

    def selection(self, **filters: Any) -> dict[str, Any]:
        """`filters` pinned to the entries there are now: a long read (chunks, a count)
        sees the same selection while decisions go on being logged."""
        head = self.head()
        return {**filters, "through": head.seq if head else 0}

    def chunks(self, size: int, **filters: Any) -> Iterator[builtins.list[LedgerEntry]]:
        """The entries `list` would give, oldest first, `size` at a time: a history of
        any length read in bounded memory."""
        after = filters.pop("after", None)
        while chunk := self.list(**filters, after=after, limit=size):
            yield chunk
            after = chunk[-1].seq

    def _where(
        self,
        *,
        deployment: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        subject: str | None = None,
        kind: str | None = "decision",
        refers_to: str | None = None,
        source: str | None = None,
        ingested: bool = False,
        after: int | None = None,
        through: int | None = None,
    ) -> tuple[str, builtins.list[Any]]:
        clauses = ["source IS NOT NULL"] if ingested else []
        parameters = []
        for column, operator, value in (
            ("deployment", "=", deployment),
            ("subject", "=", subject),
            ("kind", "=", kind),
            ("refers_to", "=", refers_to),
            ("source", "=", source),
            ("seq", ">", after),
            ("seq", "<=", through),
            ("time", ">=", None if since is None else _stored_time(since)),
            ("time", "<", None if until is None else _stored_time(until)),
        ):
            if value is not None:
                clauses.append(f"{column} {operator} {self.placeholder}")
                parameters.append(value)
        return (f"WHERE {' AND '.join(clauses)}" if clauses else ""), parameters

    def verify(self) -> LedgerVerification:
        """Walk the chain from the start; name the first entry that does not hold."""
        expected_prev, expected_seq, count = GENESIS, 1, 0
        for entry in self._rows("ORDER BY seq"):
            count += 1
            if entry.seq != expected_seq:
                return LedgerVerification(count, expected_seq, "is missing")
            if entry.prev_hash != expected_prev:
                return LedgerVerification(count, entry.seq, "does not link to the one before it")
            # an older format's hash covers no later column: it must have none
            columns = entry.columns()
            later = LATER_COLUMNS.get(entry.format or 1, ())
            changed = entry.format not in LATER_COLUMNS and entry.format is not None
            changed = changed or any(columns[name] is not None for name in later)
            if changed or entry_hash(entry.prev_hash, _body(columns)) != entry.hash:
                return LedgerVerification(count, entry.seq, "was changed after it was written")
            expected_prev, expected_seq = entry.hash, entry.seq + 1
        return LedgerVerification(count)


def _stored_time(moment: datetime) -> str:
    """A moment as the ledger stores times (UTC, microseconds); naive means UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds")
