"""What a source logged of one decision made elsewhere, before replay checks it.

A source (a file, SageMaker Data Capture, KServe's payload logger) is read into `Made`
decisions, or `Unreadable` events when the record itself cannot be decoded; the
`Ingestion` decides which are logged and which are quarantined, and why.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from replay.errors import BadInput

SOURCES = ("file", "sagemaker", "kserve")
# Levels of nesting a logged record or payload may have (rows and tensors take four or
# five): deeper, it would exhaust the recursion of json and of the schema's checks.
DEEPEST = 32


@dataclass(frozen=True)
class Made:
    """One decision as its source logged it: `deployment` as the source names it (a
    deployment name or manifest id), `subject` the person's plain identifier (kept
    only as a pseudonym), `payload` the record as read (kept if it is quarantined;
    empty for KServe's pairs, which are quarantined whole)."""

    source: str
    source_id: str
    deployment: str
    time: datetime | None
    inputs: Any
    outputs: Any
    payload: bytes
    subject: str | None = None
    seed: int | None = None


@dataclass(frozen=True)
class Unreadable:
    """A record that is not a decision at all (undecodable, or half a record)."""

    source: str
    source_id: str
    deployment: str
    reason: str
    payload: bytes
    subject: str | None = None  # the person it names, if it names one (sealed then)


Event = Made | Unreadable


def parse_time(value: Any) -> datetime:
    """A decision's time: ISO 8601 text (`Z` or an offset; none means UTC) or seconds
    since the epoch."""
    if isinstance(value, bool):
        raise BadInput(f"time {value!r} is neither ISO 8601 text nor seconds since the epoch")
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise BadInput(f"time {value[:40]!r} is not ISO 8601") from None
    else:
        raise BadInput("time must be ISO 8601 text or seconds since the epoch")
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def read_json(text: str | bytes) -> Any:
    """JSON a source logged, which anyone may have written; BadInput if it is not JSON
    or is nested deeper than `DEEPEST` levels (a record failing one way or the other is
    quarantined, never its whole batch or file)."""
    too_deep = f"JSON nested deeper than {DEEPEST} levels"
    try:
        value = json.loads(text)
    except ValueError as error:
        raise BadInput(f"not JSON ({error})") from None
    except RecursionError:  # deeper than json itself reads
        raise BadInput(too_deep) from None
    if _openings(text) > DEEPEST and not _within_depth(value):  # else it cannot be
        raise BadInput(too_deep)
    return value


def _openings(text: str | bytes) -> int:
    """How many `[` and `{` the text holds (in strings too): at most its depth."""
    if isinstance(text, str):
        return text.count("[") + text.count("{")
    return text.count(b"[") + text.count(b"{")


def _within_depth(value: Any) -> bool:
    """Whether `value`'s objects and arrays nest at most `DEEPEST` levels (walked
    without recursion: only containers are visited)."""
    containers = [(value, 1)] if isinstance(value, dict | list) else []
    while containers:
        container, depth = containers.pop()
        if depth > DEEPEST:
            return False
        items = container.values() if isinstance(container, dict) else container
        containers.extend((item, depth + 1) for item in items if isinstance(item, dict | list))
    return True
