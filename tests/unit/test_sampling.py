"""The history's reservoir: the sample's size, its items from the stream, and each item
kept with the same chance (averaged over seeds)."""

from __future__ import annotations

from replay.history.sampling import Reservoir


def test_a_reservoir_keeps_size_items_each_as_likely():
    kept = [0] * 10
    for seed in range(2_000):
        sample: Reservoir[int] = Reservoir(3, seed)
        for item in range(10):
            sample.add(item)
        assert len(sample.items) == 3 and len(set(sample.items)) == 3
        for item in sample.items:
            kept[item] += 1
    # each of the 10 items in 3 of 10 samples: 600 of 2,000, within a few percent
    assert all(520 < count < 680 for count in kept), kept
    few: Reservoir[int] = Reservoir(5)
    for item in range(3):
        few.add(item)
    assert few.items == [0, 1, 2] and few.seen == 3
