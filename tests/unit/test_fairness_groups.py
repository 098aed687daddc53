"""Fairness by group, checked by hand: rates, the adverse impact ratio and its 0.8 flag,
Fisher's exact test as scipy computes it on the same 2x2 tables, bins, typical values;
and the flip test finding reliance on a feature a model uses and none on one it
ignores (in process, through the runner's own code)."""

from __future__ import annotations

import json
import math

import pytest
from scipy.stats import fisher_exact

from replay.errors import BadInput
from replay.execution.predictor import InProcessPredictor
from replay.history.groups import (
    FlipCounts,
    GroupCounts,
    Grouping,
    flip_variants,
    parse_bins,
)
from replay.ledger.chain import LedgerEntry
from tests.factories import schema

PEOPLE = schema(
    {
        "age": {"type": "integer", "min": 18, "max": 100},
        "region": {"type": "string", "values": ["north", "south"]},
        "income": {"type": "number", "min": 0},
    }
)


def test_rates_impact_ratio_and_fisher_by_group():
    counts = GroupCounts(Grouping.of(PEOPLE.inputs["region"], None, []))
    for region, approved, total in (("north", 30, 40), ("south", 10, 20)):
        for i in range(total):
            counts.add(region, i < approved)
    north, south = counts.rates()
    assert (north.group, north.decisions, north.favourable, north.rate) == ("north", 40, 30, 0.75)
    assert (south.rate, north.impact_ratio, south.impact_ratio) == (0.5, 1.0, 0.5 / 0.75)
    assert south.flagged and not north.flagged  # 0.67 < 0.8
    assert north.fisher_p == pytest.approx(fisher_exact([[30, 10], [10, 10]]).pvalue)
    assert south.fisher_p == pytest.approx(fisher_exact([[10, 10], [30, 10]]).pvalue)


def test_numbers_are_grouped_by_the_bins_given_or_the_references_quartiles():
    grouping = Grouping.of(PEOPLE.inputs["age"], parse_bins("18,25,40,65,100"), [])
    assert [grouping.group(v) for v in (18, 24, 25, 64, 65, 100, 101, 17)] == [
        "18 to under 25",
        "18 to under 25",
        "25 to under 40",
        "40 to under 65",
        "65 to 100",
        "65 to 100",
        None,
        None,
    ]
    assert grouping.order() == ["18 to under 25", "25 to under 40", "40 to under 65", "65 to 100"]
    quartiles = Grouping.of(PEOPLE.inputs["age"], None, [{"age": a} for a in range(20, 60)])
    assert quartiles.edges == [-math.inf, 30, 40, 50, math.inf]
    assert [quartiles.group(v) for v in (18, 30, 49, 99)] == [
        "under 30",
        "30 to under 40",
        "40 to under 50",
        "50 and over",
    ]  # open at both ends: an age past the reference's is still counted
    counts = GroupCounts(quartiles)
    for age in (21, 22, 29, 61):
        counts.add(age, True)
    assert counts.outside == 0 and counts.typical("under 30") == 22


@pytest.mark.parametrize(
    ("text", "says"),
    [("18,x", "numbers separated by commas"), ("40,18", "ascending"), ("18", "two ascending")],
)
def test_bad_bins_are_refused(text, says):
    with pytest.raises(BadInput, match=says):
        parse_bins(text)


def test_only_numbers_take_bins():
    with pytest.raises(BadInput, match="region is a string: only numbers take bins"):
        Grouping.of(PEOPLE.inputs["region"], [1.0, 2.0], [])


def logged(i: int, inputs: dict, outputs: dict) -> LedgerEntry:
    """A decision as the ledger gives it back, in clear."""
    return LedgerEntry(
        i, f"txn_{i}", "decision", "m" * 64, "people", "", None, json.dumps(inputs),
        json.dumps(outputs), i, None, None, "", "", 2, 0,
    )  # fmt: skip


def test_the_flip_test_finds_reliance_on_a_used_feature_and_none_on_an_ignored_one():
    def decide(row):  # uses region, ignores age
        return {"decision": "approved" if row["region"] == "north" else "rejected"}

    model = InProcessPredictor(decide)
    people = [
        {"age": 20 + 10 * (i % 5), "region": "north" if i % 2 else "south", "income": 1.0}
        for i in range(20)
    ]
    entries = [logged(i, person, decide(person)) for i, person in enumerate(people)]

    def flips(attribute: str, group_of, typical: dict) -> dict:
        counts = FlipCounts("decision")
        sampled = [(entry, group_of(entry.inputs)) for entry in entries]
        for target, _, moved, rows, seeds in flip_variants(
            sampled, attribute, typical, {"m" * 64: 0}, batch_rows=7
        ):
            counts.add(target, moved, model.predict_each(rows, seeds))
        return counts.to_dict(len(sampled), typical)

    used = flips("region", lambda p: p["region"], {"north": "north", "south": "south"})
    assert used["decisions_that_flip"] == 20 and used["flip_rate"] == 1.0
    assert used["by_target"]["north"] == {"decisions": 10, "flips": 10, "flip_rate": 1.0}
    ignored = flips("age", lambda p: "young" if p["age"] < 40 else "old", {"young": 25, "old": 60})
    assert ignored["decisions_that_flip"] == 0
    assert ignored["by_target"]["young"]["decisions"] == 12  # the old ones, moved
