"""Events held beside the chain, in the ledger's own database: halves of a decision
made elsewhere waiting for their other half (`pending`), and events that could not be
logged (`quarantined`), each with the reason.

They live in the ledger's database so that an event leaves the holding table in the
same transaction that appends its decision: nothing is
ever both logged and held, nor neither. Held payloads are a person's data: one with a
subject is sealed under that subject's key, like the chain's entries.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from replay.errors import BadInput, IntegrityError
from replay.ledger.chain import Ledger
from replay.ledger.sealing import key_id_of, seal, unseal
from replay.stores.subject_keys import SubjectKey

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
        return [self.opened(row) for row in list(rows)]

    def counts(self) -> dict[str, int]:
        rows = self.ledger._connection().execute(
            f"SELECT held_as = {self.mark}, COUNT(*) FROM held_events GROUP BY held_as = "
            f"{self.mark}",
            [QUARANTINED, QUARANTINED],
        )
        found = {bool(flag): int(count) for flag, count in rows}
        return {"pending": found.get(False, 0), QUARANTINED: found.get(True, 0)}

    def half(
        self,
        source: str,
        source_id: str,
        part: str,
        deployment: str,
        payload: bytes,
        subject: str | None = None,
        key: SubjectKey | None = None,
    ) -> dict[str, Any]:
        """The row holding one half of a decision until its other half comes."""
        if part not in PARTS:
            raise BadInput(f"a decision's halves are {' and '.join(PARTS)}, not {part!r}")
        reason = "waiting for its " + PARTS[1 - PARTS.index(part)]
        return self.row(source, source_id, part, deployment, reason, payload, subject, key)

    def subjects(self, source: str, source_ids: list[str]) -> list[str]:
        """The people whose halves of these events are held (sealed under their keys)."""
        rows = self._matching(
            self.ledger._connection(), "SELECT DISTINCT subject", source, source_ids
        )
        return sorted({row[0] for row in rows if row[0] is not None})

    def known(self, connection: Any, source: str, source_ids: list[str]) -> set[str]:
        """Which of these events the ledger holds an entry of."""
        return {
            row[0]
            for row in self._matching(
                connection, "SELECT source_id", source, source_ids, table="entries"
            )
        }

    def held(
        self, connection: Any, source: str, source_ids: list[str]
    ) -> dict[str, dict[str, tuple[Any, ...]]]:
        """The held rows of these events (payloads as stored), by source id and part."""
        found: dict[str, dict[str, tuple[Any, ...]]] = {}
        for row in self._matching(connection, f"SELECT {', '.join(_COLUMNS)}", source, source_ids):
            found.setdefault(row[1], {})[row[2]] = row
        return found

    def _matching(
        self,
        connection: Any,
        select: str,
        source: str,
        source_ids: list[str],
        table: str = "held_events",
    ) -> list[tuple[Any, ...]]:
        """`select` over the rows of `table` of these events."""
        unique = sorted(set(source_ids))
        rows: list[tuple[Any, ...]] = []
        for start in range(0, len(unique), 500):  # under every driver's parameter limit
            part = unique[start : start + 500]
            rows.extend(
                connection.execute(
                    f"{select} FROM {table} WHERE source = {self.mark} AND source_id IN "
                    f"({', '.join(self.mark for _ in part)})",
                    [source, *part],
                )
            )
        return rows

    def row(
        self,
        source: str,
        source_id: str,
        held_as: str,
        deployment: str,
        reason: str,
        payload: bytes,
        subject: str | None = None,
        key: SubjectKey | None = None,
    ) -> dict[str, Any]:
        """A row to hold, its payload sealed when it names a subject, under `key` (else
        the subject's current key: made before the write lock is taken, as sealing may
        make it)."""
        stored = base64.b64encode(payload).decode()
        if subject is not None:
            if key is None:
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

    def hold(self, connection: Any, rows: list[dict[str, Any]]) -> int:
        """Hold `rows` (pending halves, or quarantined events) inside a ledger
        transaction, each at most once; how many were new."""
        return sum(self._insert(connection, row) for row in rows)

    def release(self, connection: Any, source: str, source_ids: list[str]) -> None:
        """Remove these events' pending halves, inside the transaction logging them."""
        for start in range(0, len(source_ids), 500):
            part = source_ids[start : start + 500]
            connection.execute(
                f"DELETE FROM held_events WHERE source = {self.mark} AND held_as <> "
                f"{self.mark} AND source_id IN ({', '.join(self.mark for _ in part)})",
                [source, QUARANTINED, *part],
            )

    def _insert(self, connection: Any, row: dict[str, Any]) -> int:
        cursor = connection.execute(
            f"INSERT INTO held_events ({', '.join(_COLUMNS)}) VALUES "
            f"({', '.join(self.mark for _ in _COLUMNS)}) ON CONFLICT DO NOTHING",
            [row[name] for name in _COLUMNS],
        )
        return max(cursor.rowcount, 0)

    def opened(
        self, row: tuple[Any, ...], keys: Mapping[str, SubjectKey] | None = None
    ) -> HeldEvent:
        """A held row, its payload opened (with `keys` where they hold its subject's, else
        from the key store), or None when its subject's data was erased."""
        values = dict(zip(_COLUMNS, row, strict=True))
        stored = values.pop("payload")
        payload: bytes | None = None
        if values["subject"] is None:
            payload = base64.b64decode(stored)
        else:
            key_id, known = key_id_of(stored), (keys or {}).get(values["subject"])
            secret = known.secret if known is not None and known.key_id == key_id else None
            if secret is None and self.ledger.keys is not None:
                secret = self.ledger.keys.find(values["subject"], key_id)
            if secret is not None:  # else its subject's data was erased
                context = _context(values["source"], values["source_id"], values["held_as"])
                try:
                    payload = unseal(secret, stored, context)
                except IntegrityError:
                    payload = None
        return HeldEvent(**values, payload=payload)


def _context(source: str, source_id: str, held_as: str) -> str:
    return f"held/{source}/{source_id}/{held_as}"
