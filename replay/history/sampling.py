"""A uniform sample of a stream of unknown length, in memory for the sample only
(reservoir sampling, seeded so that a run repeats): what the history's statistics keep
of a ledger too long to hold."""

from __future__ import annotations

import random
from typing import Generic, TypeVar

Item = TypeVar("Item")


class Reservoir(Generic[Item]):
    def __init__(self, size: int, seed: int = 0) -> None:
        self.size = size
        self.items: list[Item] = []
        self.seen = 0
        self._draw = random.Random(seed)

    def add(self, item: Item) -> None:
        """Every item seen so far is kept with the same chance, size / seen."""
        self.seen += 1
        if len(self.items) < self.size:
            self.items.append(item)
        elif (slot := self._draw.randrange(self.seen)) < self.size:
            self.items[slot] = item
