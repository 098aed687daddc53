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
"""

from __future__ import annotations

import hmac
import json
import secrets
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, astuple, dataclass
from datetime import UTC, datetime
from typing import Any

from replay.errors import BadInput, IntegrityError, one_line
from replay.manifests.canonical import canonical_json, sha256_bytes

GENESIS = "0" * 64
KINDS = ("decision", "replay", "review")


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
    hash TEXT NOT NULL UNIQUE
);
CREATE INDEX IF NOT EXISTS entries_deployment_time ON entries (deployment, time);
CREATE INDEX IF NOT EXISTS entries_subject ON entries (subject);
CREATE INDEX IF NOT EXISTS entries_refers_to ON entries (refers_to);
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
)


@dataclass(frozen=True)
class NewEntry:
    """What a caller records; the ledger adds seq, id, time and the chain."""

    manifest_id: str
    deployment: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    seed: int | None = None
    subject: str | None = None  # already pseudonymous (see `pseudonym`)
    fingerprint: str | None = None
    kind: str = "decision"
    refers_to: str | None = None
    txn_id: str | None = None


@dataclass(frozen=True)
class LedgerEntry:
    seq: int
    txn_id: str
    kind: str
    manifest_id: str
    deployment: str
    time: str
    subject: str | None
    inputs_json: str  # canonical JSON, exactly as stored and hashed
    outputs_json: str
    seed: int | None
    fingerprint: str | None
    refers_to: str | None
    prev_hash: str
    hash: str

    @property
    def inputs(self) -> dict[str, Any]:
        inputs: dict[str, Any] = json.loads(self.inputs_json)
        return inputs

    @property
    def outputs(self) -> dict[str, Any]:
        outputs: dict[str, Any] = json.loads(self.outputs_json)
        return outputs

    @property
    def outcome(self) -> str:
        """A replay's verdict, a decision's `decision` field, else its outputs cut short."""
        outputs = self.outputs
        found = outputs.get("verdict") or outputs.get("decision")
        return str(found) if found is not None else one_line(self.outputs_json, 40)

    def columns(self) -> dict[str, Any]:
        """The entry as the table stores it (column name: value)."""
        return dict(zip(_COLUMNS, astuple(self), strict=True))

    def to_dict(self) -> dict[str, Any]:
        return {**self.columns(), "inputs": self.inputs, "outputs": self.outputs}


def entry_hash(prev_hash: str, body: dict[str, Any]) -> str:
    return sha256_bytes(prev_hash.encode() + canonical_json(body))


def _body(entry: dict[str, Any]) -> dict[str, Any]:
    return {key: entry[key] for key in _COLUMNS if key not in ("prev_hash", "hash")}


def new_transaction_id() -> str:
    """Sortable by time (milliseconds), unique by 48 random bits."""
    return f"txn_{int(time.time() * 1000):012x}{secrets.token_hex(6)}"


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
    """The chain, over any SQL database a backend connects to."""

    placeholder = "?"  # the driver's parameter marker

    @abstractmethod
    def __str__(self) -> str:
        """Where the ledger is, for messages (no passwords)."""

    @abstractmethod
    def _connection(self) -> Any:
        """This thread's connection: `execute(sql, parameters)` returns a cursor."""

    @abstractmethod
    def _write(self, work: Callable[[Any], Any]) -> Any:
        """Run `work(connection)` in one transaction holding the ledger's write lock."""

    @abstractmethod
    def _is_duplicate(self, error: Exception) -> bool:
        """Whether `error` is the database refusing a duplicate (txn id, link)."""

    def append(self, entries: Iterable[NewEntry]) -> list[LedgerEntry]:
        """Append entries in order, in one transaction; return them as stored."""
        pending = list(entries)
        for entry in pending:
            if entry.kind not in KINDS:
                raise BadInput(f"ledger entry kind must be one of {', '.join(KINDS)}")

        def work(connection: Any) -> list[LedgerEntry]:
            head = connection.execute(
                "SELECT seq, hash FROM entries ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            seq, prev_hash = head if head else (0, GENESIS)
            stored = []
            for entry in pending:
                seq += 1
                row: dict[str, Any] = {
                    "seq": seq,
                    "txn_id": entry.txn_id or new_transaction_id(),
                    "kind": entry.kind,
                    "manifest_id": entry.manifest_id,
                    "deployment": entry.deployment,
                    "time": datetime.now(UTC).isoformat(timespec="microseconds"),
                    "subject": entry.subject,
                    "inputs": canonical_json(entry.inputs).decode(),
                    "outputs": canonical_json(entry.outputs).decode(),
                    "seed": entry.seed,
                    "fingerprint": entry.fingerprint,
                    "refers_to": entry.refers_to,
                    "prev_hash": prev_hash,
                }
                row["hash"] = entry_hash(prev_hash, _body(row))
                connection.execute(
                    f"INSERT INTO entries ({', '.join(_COLUMNS)}) "
                    f"VALUES ({', '.join(self.placeholder for _ in _COLUMNS)})",
                    [row[key] for key in _COLUMNS],
                )
                stored.append(LedgerEntry(*(row[key] for key in _COLUMNS)))
                prev_hash = row["hash"]
            return stored

        try:
            return self._write(work)
        except Exception as error:
            if self._is_duplicate(error):
                raise BadInput(f"ledger refused the entry: {error}") from None
            raise

    def record(self, entry: NewEntry) -> LedgerEntry:
        return self.append([entry])[0]

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
        found = list(self._rows(f"WHERE seq = {self.placeholder}", [seq]))
        if not found:
            raise BadInput(f"no entry {seq} in the ledger {self}")
        return found[0]

    def get(self, txn_id: str) -> LedgerEntry:
        found = list(self._rows(f"WHERE txn_id = {self.placeholder}", [txn_id]))
        if not found:
            raise BadInput(f"no transaction {txn_id} in the ledger {self}")
        return found[0]

    def list(
        self,
        *,
        deployment: str | None = None,
        since: datetime | None = None,
        subject: str | None = None,
        kind: str | None = "decision",
        refers_to: str | None = None,
        limit: int | None = None,
    ) -> list[LedgerEntry]:
        """Entries oldest first, filtered; `since` without a time zone is UTC."""
        clauses, parameters = [], []
        for column, value in (
            ("deployment", deployment),
            ("subject", subject),
            ("kind", kind),
            ("refers_to", refers_to),
        ):
            if value is not None:
                clauses.append(f"{column} = {self.placeholder}")
                parameters.append(value)
        if since is not None:
            clauses.append(f"time >= {self.placeholder}")
            parameters.append(_stored_time(since))
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        tail = f" LIMIT {int(limit)}" if limit else ""
        return list(self._rows(f"{where} ORDER BY seq{tail}", parameters))

    def verify(self) -> LedgerVerification:
        """Walk the chain from the start; name the first entry that does not hold."""
        expected_prev, expected_seq, count = GENESIS, 1, 0
        for entry in self._rows("ORDER BY seq"):
            count += 1
            if entry.seq != expected_seq:
                return LedgerVerification(count, expected_seq, "is missing")
            if entry.prev_hash != expected_prev:
                return LedgerVerification(count, entry.seq, "does not link to the one before it")
            if entry_hash(entry.prev_hash, _body(entry.columns())) != entry.hash:
                return LedgerVerification(count, entry.seq, "was changed after it was written")
            expected_prev, expected_seq = entry.hash, entry.seq + 1
        return LedgerVerification(count)


def _stored_time(moment: datetime) -> str:
    """A moment as the ledger stores times (UTC, microseconds); naive means UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds")
