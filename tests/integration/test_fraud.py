"""The fraud screen, brought as a new user would: free text, a category, a protected
age and three decisions. What a cardholder, a support agent or a compliance officer is
given must be usable: text shown on one line and never invented, options a person can
act on, one rule for immutable inputs, and every question about a person recorded."""

from __future__ import annotations

import json

import pytest

from tests.integration.conftest import run_cli

pytestmark = pytest.mark.integration

LONG = 3  # the example's fourth new payment has a 5,000-character descriptor


def accesses(subject: str) -> list[dict]:
    import replay

    export = replay.export_subject(subject)
    return [e for e in export.entries if e["kind"] == "access"]


def first_of(fraud_decided, decision: str):
    return fraud_decided[decision][0]


def test_an_immutable_input_is_refused_in_one_line_unless_probing(fraud_decided):
    entry = first_of(fraud_decided, "block")
    subject = f"cardholder-{entry.seed}"
    before = len(accesses(subject))
    refused = run_cli("whatif", entry.txn_id, "--set", "cardholder_age=50")
    assert refused.returncode == 2, refused.stderr
    (line,) = refused.stderr.strip().splitlines()
    assert line.startswith("error: cardholder_age is immutable (protected attribute)")
    assert "--allow-immutable" in line
    swept = run_cli("sweep", entry.txn_id, "--vary", "cardholder_age=18:90:5")
    assert swept.returncode == 2 and "immutable" in swept.stderr
    # a refused question read nothing to answer: only the exports above are recorded
    assert len(accesses(subject)) == before + 1

    probed = run_cli(
        "whatif", entry.txn_id, "--set", "cardholder_age=50", "--allow-immutable", "--json"
    )
    assert probed.returncode == 0, probed.stderr
    assert json.loads(probed.stdout)["probed_immutable"] == ["cardholder_age"]
    human = run_cli("whatif", entry.txn_id, "--set", "cardholder_age=50", "--allow-immutable")
    assert "compliance probing: cardholder_age changed although immutable" in human.stdout


def test_every_question_about_a_person_is_recorded_from_the_cli(fraud_decided):
    entry = first_of(fraud_decided, "challenge")
    subject = f"cardholder-{entry.seed}"
    asked = [
        ("what-if", ["whatif", entry.txn_id, "--set", "amount=5"]),
        ("sweep", ["sweep", entry.txn_id, "--vary", "amount=1:500:5"]),
        ("explain", ["explain", entry.txn_id, "--reference-rows", "10"]),
        ("counterfactual", ["counterfactual", entry.txn_id, "-n", "1"]),
    ]
    for question, arguments in asked:
        before = {a["txn_id"] for a in accesses(subject)}
        result = run_cli(*arguments, "--json")
        assert result.returncode == 0, result.stderr
        # the export itself is an access too: the question adds exactly one more
        new = [a for a in accesses(subject) if a["txn_id"] not in before]
        (recorded,) = [a for a in new if a["outputs"].get("action") == question]
        assert recorded["refers_to"] == entry.txn_id
        assert len(new) == 2, [a["outputs"].get("action") for a in new]


def test_free_text_is_shown_on_one_line_and_kept_whole_in_json(fraud_decided, fraud_warm):
    long = next(e for group in fraud_decided.values() for e in group if e.seed == LONG)
    assert len(long.inputs["descriptor"]) == 5_000
    shown = run_cli("explain", long.txn_id, "--reference-rows", "10")
    assert shown.returncode == 0, shown.stderr
    assert "AMZN MKTP DE*2K4 " * 4 not in shown.stdout  # shortened: 60 characters at most
    assert all(len(line) <= 200 for line in shown.stdout.splitlines())
    data = json.loads(run_cli("explain", long.txn_id, "--reference-rows", "10", "--json").stdout)
    (descriptor,) = [c for c in data["contributions"] if c["feature"] == "descriptor"]
    assert descriptor["value"] == long.inputs["descriptor"]  # one feature, the whole value
    edited = "SHELL 0423 HAMBURG " * 20  # 380 characters
    whatif = run_cli("whatif", long.txn_id, "--set", f"descriptor={edited}")
    assert whatif.returncode == 0, whatif.stderr
    # every cell on one line of at most 60 characters: two such columns and the labels
    assert all(len(line) <= 160 for line in whatif.stdout.splitlines())
    assert "SHELL 0423 HAMBURG SHELL 0423 HAMBURG SHELL 0423 HAMBURG SH…" in whatif.stdout
    data = json.loads(
        run_cli("whatif", long.txn_id, "--set", f"descriptor={edited}", "--json").stdout
    )
    assert data["modified_inputs"]["descriptor"] == edited


def test_a_long_text_is_explained_with_the_default_reference_rows(fraud_decided, fraud_warm):
    """256 coalitions x 50 reference rows, half with the 5,000-character descriptor: sent
    in parts, the container's memory holds (in one request it ran out)."""
    import replay

    long = next(e for group in fraud_decided.values() for e in group if e.seed == LONG)
    found = replay.explain(long.txn_id, warm=fraud_warm)
    assert found.reference_rows == 50
    assert "descriptor" in found.features


def test_options_never_move_text_the_shop_the_card_or_the_cardholder(fraud_decided, fraud_warm):
    import replay

    reference = fraud_warm.reference_rows(300)
    ranges = {
        name: (min(row[name] for row in reference), max(row[name] for row in reference))
        for name in ("amount", "payments_24h", "distance_km")
    }
    found_any = 0
    for entry in fraud_decided["block"][:4]:
        found = replay.counterfactual(entry.txn_id, n=3, warm=fraud_warm)
        assert found.kept_as_written == ["descriptor"]
        for option in found.options:
            found_any += 1
            assert option.outputs["decision"] == "allow"
            out_of_reach = {"descriptor", "merchant_category", "card_age_days", "cardholder_age"}
            assert not out_of_reach & set(option.changes)
            assert option.description.endswith("; descriptor kept as written")
            for name, (_, value) in option.changes.items():
                if name in ranges:
                    low, high = ranges[name]
                    logged = entry.inputs[name]
                    assert min(low, logged) <= value <= max(high, logged), (name, value)
                if name in ("amount", "distance_km"):  # step: 1
                    assert value == int(value)
            singles = [set(o.changes) for o in found.options if len(o.changes) == 1]
            assert not any(single < set(option.changes) for single in singles)
    assert found_any
