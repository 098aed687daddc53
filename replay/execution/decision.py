"""A logged decision as the questions and re-execution use it: inputs, outputs, and
the seed it was (or is to be) run with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from replay.ledger.chain import LedgerEntry
from replay.manifests.manifest import Manifest


@dataclass(frozen=True)
class Decision:
    txn_id: str
    manifest_id: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]  # as logged
    seed: int

    @classmethod
    def from_entry(cls, entry: LedgerEntry, manifest: Manifest) -> Decision:
        """A ledger entry of `manifest`; logged without a seed, it ran (and runs again)
        with the manifest's seed."""
        seed = logged_seed(entry, manifest.runtime.seed)
        return cls(entry.txn_id, entry.manifest_id, entry.inputs, entry.outputs, seed)


def logged_seed(entry: LedgerEntry, manifest_seed: int) -> int:
    """The seed a decision was made with: its own, or, logged without one, its
    manifest's."""
    return entry.seed if entry.seed is not None else manifest_seed
