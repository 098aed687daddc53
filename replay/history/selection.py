"""Which logged decisions a piece of history work reads, and how much at a time: the
filters pinned to the ledger's head, and, for the questions about one deployment
(fairness, drift), its manifests and the newest of them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from replay.errors import BadInput
from replay.ledger import Ledger, open_ledger
from replay.manifests.manifest import Manifest
from replay.settings import Settings
from replay.stores.manifests import ManifestStore, manifest_store

READ_ROWS = 5_000  # decisions read from the ledger at a time
# Decisions sent to a container in one request: large enough that the model's own batch
# code does the work, small enough that a refused batch costs little to redo singly.
BATCH_ROWS = 500


@dataclass(frozen=True)
class Deployment:
    """The logged decisions of one deployment, selected, and the manifests that made them."""

    ledger: Ledger
    filters: dict[str, Any]  # for Ledger.chunks, count and manifest_ids
    store: ManifestStore
    manifests: list[Manifest]  # by first decision

    @property
    def newest(self) -> Manifest:
        return self.manifests[-1]


def one_deployment(
    settings: Settings,
    deployment: str | None,
    since: datetime | None,
    until: datetime | None,
    *,
    nothing: str,
) -> Deployment:
    """The decisions selected, which must all be of one deployment (named, or the only
    one they are of); `nothing` says what cannot be done when none match."""
    ledger = open_ledger(settings)
    filters = ledger.selection(kind="decision", deployment=deployment, since=since, until=until)
    store = manifest_store(settings)
    manifests = [store.load(mid) for mid in ledger.manifest_ids(**filters)]
    if not manifests:
        raise BadInput(f"no logged decisions match: {nothing}")
    names = sorted({m.name for m in manifests})
    if len(names) > 1:
        raise BadInput(f"decisions of {', '.join(names)} match: name the deployment to use")
    return Deployment(ledger, filters, store, manifests)
