"""The way into every question: a logged decision and a container that can answer it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from replay.execution.decision import Decision
from replay.execution.warm import WarmDeployment, warm_for
from replay.ledger import open_ledger
from replay.settings import Settings, load_settings


@contextmanager
def asking(
    txn_id: str, warm: WarmDeployment | None, settings: Settings | None
) -> Iterator[tuple[Decision, WarmDeployment]]:
    """The decision `txn_id` and its original container (the caller's `warm`, checked to
    be the decision's manifest, or one started and closed around the block)."""
    settings = settings or load_settings()
    entry = open_ledger(settings).get(txn_id).readable()  # erased: said before starting
    with warm_for(entry.manifest_id, warm, settings) as running:
        yield Decision.from_entry(entry, running.manifest), running
