"""Counterfactuals: valid, realistic, verified in the original container."""

from __future__ import annotations

import json

import pytest

from tests.integration.conftest import run_cli

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def rejected_ones(served):
    return [a["transaction_id"] for a in served if a["decision"] == "rejected"][:6]


def test_every_option_flips_and_respects_the_schema(rejected_ones, warm):
    import replay

    schema = warm.manifest.schema.inputs
    reference = warm.reference_rows(300)
    found_any = False
    for txn in rejected_ones:
        entry = replay.show_transaction(txn)
        result = replay.counterfactual(txn, n=3, warm=warm)
        assert len({frozenset(o.changes) for o in result.options}) == len(result.options)
        for option in result.options:
            found_any = True
            # re-run on its own, with the decision's seed: it must flip
            assert warm.predict(option.inputs, entry.seed)["decision"] == "approved"
            for name, value in option.inputs.items():
                feature, old = schema[name], entry.inputs[name]
                if feature.immutable:
                    assert value == old, f"{name} is immutable"
                assert feature.min <= value <= feature.max
                seen = [row[name] for row in reference] + [old]
                assert min(seen) <= value <= max(seen), f"{name}={value} is not plausible"
                if value != old and feature.monotone == "increasing":
                    assert value > old
                if value != old and feature.monotone == "decreasing":
                    assert value < old
            assert set(option.changes) == {
                n for n in option.inputs if option.inputs[n] != entry.inputs[n]
            }
    assert found_any


def test_single_feature_threshold_is_tight(rejected_ones, warm):
    """Just short of the quoted value the decision does not flip (monotone feature)."""
    import replay

    txn = rejected_ones[0]
    entry = replay.show_transaction(txn)
    options = replay.counterfactual(txn, n=5, warm=warm).options
    single = next(o for o in options if list(o.changes) == ["income"])
    old, new = single.changes["income"]
    short = {**entry.inputs, "income": old + (new - old) * 0.9}
    assert warm.predict(short, entry.seed)["decision"] == "rejected"
    assert "approved if income were at least" in single.description


def test_counterfactual_cli(rejected_ones):
    result = run_cli("counterfactual", rejected_ones[1], "-n", "2", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["decision"] == "rejected" and 1 <= len(report["options"]) <= 2
