"""What someone who can write the ledger's database does to hide an edit: the same on
every backend, so each is tested against the same attack."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from replay.ledger.chain import Ledger, _body, entry_hash


def rewritten_chain(ledger: Ledger, first: int) -> Iterator[dict[str, Any]]:
    """Entry `first` edited (approved becomes rejected) and every hash after it
    recomputed, so that the chain alone still verifies: the columns to write back,
    oldest first."""
    head = ledger.head()
    assert head is not None
    prev_hash = ledger.at(first - 1).hash
    for seq in range(first, head.seq + 1):
        columns = ledger.at(seq).columns()
        if seq == first:
            columns["outputs"] = columns["outputs"].replace("approved", "rejected")
        columns["prev_hash"] = prev_hash
        columns["hash"] = entry_hash(prev_hash, _body(columns))
        prev_hash = columns["hash"]
        yield columns
