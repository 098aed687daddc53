"""Events held beside the chain, in the ledger's own database: halves of a decision
made elsewhere waiting for their other half (`pending`), and events that could not be
logged (`quarantined`), each with the reason.

They live in the ledger's database so that an event leaves the holding table in the
same transaction that appends its decision (`Ledger.append(also=...)`): nothing is
ever both logged and held, nor neither. Held payloads are a person's data: one with a
subject is sealed under that subject's key, like the chain's entries.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from replay.errors import BadInput, IntegrityError
from replay.ledger.chain import Ledger
from replay.ledger.sealing import key_id_of, seal, unseal

HOLDING_SQL = """
CREATE TABLE IF NOT EXISTS held_events (
    source TEXT NOT NULL,
    source_id TEXT NOT NULL,
    held_as TEXT NOT NULL,  -- request or response (pending), quarantined
    received TEXT NOT NULL,
    deployment TEXT NOT NULL,  -- the name the event gave, as given ('' if none)
    reason TEXT NOT NULL,
    subject TEXT,  -- a pseudonym: the payload is then sealed under the subject's key
    payload TEXT NOT NULL,
    PRIMARY KEY (source, source_id, held_as)
);
"""
PARTS = ("request", "response")
QUARANTINED = "quarantined"
_COLUMNS = (
    "source",
    "source_id",
    "held_as",
    "received",
    "deployment",
    "reason",
    "subject",
    "payload",
)


@dataclass(frozen=True)
class HeldEvent:
    """One held event; `payload` as received, None when sealed and not opened."""

    source: str
    source_id: str
    held_as: str
    received: str
    deployment: str
    reason: str
    subject: str | None
    payload: bytes | None

    @property
    def pending(self) -> bool:
        return self.held_as in PARTS

    def to_dict(self) -> dict[str, Any]:
        shown = asdict(self)
        payload = shown.pop("payload")
        shown["payload"] = None if payload is None else payload.decode("utf-8", "replace")
        return shown


@dataclass(frozen=True)
class Arrival:
    """What became of one half of a decision: `duplicate` (logged or held already),
    `pending` (held until its other half comes) or `paired` (its other half was
    waiting: `other` is that half's payload, released when the decision is logged)."""

    state: str
    other: HeldEvent | None = None


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


class Holding:
    """The held events of one ledger."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.mark = ledger.placeholder

    def events(self, state: str, limit: int | None = None) -> list[HeldEvent]:
        """`pending` or `quarantined` events, oldest first, opened where they can be."""
        if state not in ("pending", QUARANTINED):
            raise BadInput("held events are pending or quarantined")
        test = "<>" if state == "pending" else "="
        tail = f" LIMIT {int(limit)}" if limit else ""
        rows = self.ledger._connection().execute(
            f"SELECT {', '.join(_COLUMNS)} FROM held_events WHERE held_as {test} "
            f"{self.mark} ORDER BY received, source_id{tail}",
            [QUARANTINED],
        )
        return [self._opened(row) for row in list(rows)]

    def counts(self) -> dict[str, int]:
        rows = self.ledger._connection().execute(
            f"SELECT held_as = {self.mark}, COUNT(*) FROM held_events GROUP BY held_as = "
            f"{self.mark}",
            [QUARANTINED, QUARANTINED],
        )
        found = {bool(flag): int(count) for flag, count in rows}
        return {"pending": found.get(False, 0), QUARANTINED: found.get(True, 0)}

    def arrive(
        self,
        source: str,
        source_id: str,
        part: str,
        deployment: str,
        payload: bytes,
        subject: str | None = None,
        logged_as: tuple[str, ...] = (),
    ) -> Arrival:
        """One half of a decision arrives: held until the other comes, unless it is
        waiting already (then logging the decision releases it) or the event is known
        (the ledger holds an entry of source id `source_id` or one of `logged_as`)."""
        other_part = PARTS[1 - PARTS.index(part)]
        reason = "waiting for its " + other_part
        row = self.row(source, source_id, part, deployment, reason, payload, subject)
        ids = (source_id, *logged_as)

        def work(connection: Any) -> Arrival:
            found = connection.execute(
                f"SELECT 1 FROM entries WHERE source = {self.mark} AND source_id IN "
                f"({', '.join(self.mark for _ in ids)})",
                [source, *ids],
            ).fetchone()
            if found:
                return Arrival("duplicate")
            held = {
                held_row[2]: held_row
                for held_row in connection.execute(
                    f"SELECT {', '.join(_COLUMNS)} FROM held_events WHERE source = {self.mark} "
                    f"AND source_id = {self.mark}",
                    [source, source_id],
                )
            }
            if part in held or QUARANTINED in held:
                return Arrival("duplicate")
            if other_part in held:
                return Arrival("paired", self._opened(held[other_part]))
            self._insert(connection, row)
            return Arrival("pending")

        arrival: Arrival = self.ledger._write(work)
        return arrival

    def row(
        self,
        source: str,
        source_id: str,
        held_as: str,
        deployment: str,
        reason: str,
        payload: bytes,
        subject: str | None = None,
    ) -> dict[str, Any]:
        """A row to hold, its payload sealed when it names a subject (made before the
        write lock is taken: sealing may make the subject's key)."""
        stored = base64.b64encode(payload).decode()
        if subject is not None:
            if self.ledger.keys is None:
                raise BadInput("an event with a subject needs the subject key store to seal it")
            key = self.ledger.keys.current(subject)
            stored = seal(key, payload, _context(source, source_id, held_as))
        return {
            "source": source,
            "source_id": source_id,
            "held_as": held_as,
            "received": now(),
            "deployment": deployment,
            "reason": reason,
            "subject": subject,
            "payload": stored,
        }

    def quarantine(self, rows: list[dict[str, Any]]) -> Quarantine:
        """What quarantines `rows` inside a ledger transaction (`append(also=...)`),
        each event at most once."""
        return Quarantine(self, rows)

    def release(self, source: str, source_id: str) -> Callable[[Any], None]:
        """What removes an event's pending halves inside the transaction logging it."""

        def work(connection: Any) -> None:
            connection.execute(
                f"DELETE FROM held_events WHERE source = {self.mark} AND source_id = "
                f"{self.mark} AND held_as <> {self.mark}",
                [source, source_id, QUARANTINED],
            )

        return work

    def _insert(self, connection: Any, row: dict[str, Any]) -> int:
        cursor = connection.execute(
            f"INSERT INTO held_events ({', '.join(_COLUMNS)}) VALUES "
            f"({', '.join(self.mark for _ in _COLUMNS)}) ON CONFLICT DO NOTHING",
            [row[name] for name in _COLUMNS],
        )
        return max(cursor.rowcount, 0)

    def _opened(self, row: tuple[Any, ...]) -> HeldEvent:
        values = dict(zip(_COLUMNS, row, strict=True))
        stored = values.pop("payload")
        payload: bytes | None = None
        if values["subject"] is None:
            payload = base64.b64decode(stored)
        elif self.ledger.keys is not None:
            secret = self.ledger.keys.find(values["subject"], key_id_of(stored))
            if secret is not None:  # else its subject's data was erased
                context = _context(values["source"], values["source_id"], values["held_as"])
                try:
                    payload = unseal(secret, stored, context)
                except IntegrityError:
                    payload = None
        return HeldEvent(**values, payload=payload)


class Quarantine:
    """Rows to quarantine in a transaction; `added` counts those new to it."""

    def __init__(self, holding: Holding, rows: list[dict[str, Any]]) -> None:
        self.holding = holding
        self.rows = rows
        self.added = 0

    def __call__(self, connection: Any) -> None:
        self.added = sum(self.holding._insert(connection, row) for row in self.rows)


def _context(source: str, source_id: str, held_as: str) -> str:
    return f"held/{source}/{source_id}/{held_as}"
