"""Fairness by group, checked by hand: rates, the adverse impact ratio and its 0.8 flag,
Fisher's exact test as scipy computes it on the same 2x2 tables, bins open at both ends
so that every decision is in a group (and a count that misses one is an error), typical
values; and the flip test finding reliance on a feature a model uses and none on one it
ignores (in process, through the runner's own code)."""

from __future__ import annotations

import json
import math

import pytest
from scipy.stats import fisher_exact

from replay.errors import BadInput, InternalError
from replay.execution.predictor import InProcessPredictor
from replay.history.groups import (
    FlipCounts,
    GroupCounts,
    Grouping,
    GroupRate,
    bin_edges,
    check_everyone_counted,
    flip_variants,
)
from replay.ledger.chain import LedgerEntry
from tests.factories import schema

PEOPLE = schema(
    {
        "age": {"type": "integer", "min": 18, "max": 100},
        "region": {"type": "string", "values": ["north", "south"]},
        "income": {"type": "number", "min": 0},
        "note": {"type": "text", "max_length": 500},
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
    grouping = Grouping.of(PEOPLE.inputs["age"], bin_edges([18, 25, 40, 65, 100]), [])
    assert [grouping.group(v) for v in (18, 24, 25, 64, 65, 99, 100, 17)] == [
        "18 to under 25",
        "18 to under 25",
        "25 to under 40",
        "40 to under 65",
        "65 to under 100",
        "65 to under 100",
        "100 and over",  # outside the bins given: a group of its own, never dropped
        "under 18",
    ]
    assert grouping.order() == [
        "under 18",
        "18 to under 25",
        "25 to under 40",
        "40 to under 65",
        "65 to under 100",
        "100 and over",
    ]
    quartiles = Grouping.of(PEOPLE.inputs["age"], None, [{"age": a} for a in range(20, 60)])
    assert quartiles.edges == [30, 40, 50]
    assert [quartiles.group(v) for v in (18, 30, 49, 99)] == [
        "under 30",
        "30 to under 40",
        "40 to under 50",
        "50 and over",
    ]  # open at both ends: an age past the reference's is still counted
    counts = GroupCounts(quartiles)
    for age in (21, 22, 29, 61):
        counts.add(age, True)
    assert counts.typical("under 30") == 22


def test_every_decision_is_in_a_group_with_default_or_given_bins():
    """The youngest quartile was counted in `add` but left out of the rates (its name
    came from -inf, which is no number), so 41 of the credit demo's 200 went missing."""
    reference = [{"age": a} for a in range(20, 60)]
    ages = [*range(18, 101), None]  # every allowed age, and none (an older manifest's)
    for edges in (None, [25.0, 40.0], [30.0, 45.0, 60.0, 100.0]):
        counts = GroupCounts(Grouping.of(PEOPLE.inputs["age"], edges, reference))
        for i, age in enumerate(ages):
            counts.add(age, i % 3 == 0)
        rates = counts.rates()
        assert sum(rate.decisions for rate in rates) == len(ages), edges
        check_everyone_counted(rates, erased=0, selected=len(ages))
        assert rates[-1].group == "null" and rates[-1].decisions == 1
    assert [rate.group for rate in rates][:2] == ["under 30", "30 to under 45"]
    assert [(rate.group, rate.decisions) for rate in rates][-2:] == [
        ("100 and over", 1),
        ("null", 1),
    ]


def test_a_count_that_misses_a_decision_is_an_error():
    groups = [GroupRate("under 30", 40, 20, 0.5, 1.0, False, 1.0)]
    check_everyone_counted(groups, erased=2, selected=42)
    with pytest.raises(
        InternalError, match="hold 40 decisions and 0 were erased, but 42 were selected"
    ):
        check_everyone_counted(groups, erased=0, selected=42)


@pytest.mark.parametrize(
    ("edges", "says"),
    [
        ([40, 18], "must increase, each above the one before, not 40, 18"),
        ([18, 18], "must increase"),
        ([], "at least one edge"),
        ([18, math.inf], "finite"),
        ([math.nan], "finite"),
    ],
)
def test_bad_bins_are_refused(edges, says):
    with pytest.raises(BadInput, match=says):
        bin_edges(edges)


def test_one_edge_makes_two_groups_and_edges_name_their_bins_exactly():
    grouping = Grouping.of(PEOPLE.inputs["income"], [0.1 + 0.2], [])
    assert [grouping.group(v) for v in (0.0, 1.0)] == [
        "under 0.30000000000000004",  # 0.3 would name another bin
        "0.30000000000000004 and over",
    ]


def test_only_numbers_take_bins_and_free_text_has_no_groups():
    with pytest.raises(BadInput, match="region is a string: only numbers take bins"):
        Grouping.of(PEOPLE.inputs["region"], [1.0, 2.0], [])
    with pytest.raises(BadInput, match="note is free text: its values are not groups"):
        Grouping.of(PEOPLE.inputs["note"], None, [])


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
