"""Counterfactual options a person can act on: inside the plausible range, on the
feature's step, never moving what they cannot change (protected, not actionable, free
text), and never padded with a change that an option already kept shows was not needed.

An in-process card-payment screen: the amount, the merchant category and the card's
recent payments help; the card's age helps too but is out of the cardholder's reach;
the word VERIFY in the free-text descriptor hurts but text is never invented.
"""

from __future__ import annotations

import random

import pytest

from replay.execution.decision import Decision
from replay.execution.predictor import InProcessPredictor
from replay.questions.counterfactuals import counterfactuals_of
from tests.factories import schema

SCREEN = {
    "amount": {"type": "number", "min": 0, "max": 50_000, "monotone": "decreasing", "step": 50},
    "category": {"type": "string", "values": ["electronics", "grocery", "travel"]},
    "payments_24h": {"type": "integer", "min": 0, "max": 100, "monotone": "decreasing"},
    "card_age_days": {
        "type": "integer",
        "min": 0,
        "max": 20_000,
        "monotone": "increasing",
        "actionable": False,
    },
    "descriptor": {"type": "text", "max_length": 200},
    "cardholder_age": {"type": "integer", "min": 18, "max": 100, "immutable": True},
}
FIELDS = {
    "decision": {"type": "string", "values": ["allow", "block"]},
    "score": {"type": "number"},
}
PAYMENT = {
    "amount": 500.0,
    "category": "electronics",
    "payments_24h": 2,
    "card_age_days": 100,
    "descriptor": "AMZN MKTP\nVERIFY",
    "cardholder_age": 30,
}


def screen(row: dict) -> dict:
    score = (
        1
        - row["amount"] / 1000
        + 0.5 * (row["category"] == "grocery")
        + 0.0002 * row["card_age_days"]
        - 0.05 * row["payments_24h"]
        - 0.1 * ("VERIFY" in row["descriptor"])
        - 0.002 * (row["cardholder_age"] - 30)
    )
    return {"decision": "allow" if score >= 0.6 else "block", "score": score}


def reference(lowest_amount: float) -> list[dict]:
    generator = random.Random(5)
    return [
        {
            "amount": round(generator.uniform(lowest_amount, 2_000), 2),
            "category": generator.choice(["electronics", "grocery", "travel"]),
            "payments_24h": generator.randint(0, 10),
            "card_age_days": generator.randint(0, 5_000),
            "descriptor": generator.choice(["REWE 12", "SHELL\nHAMBURG", ""]),
            "cardholder_age": generator.randint(18, 90),
        }
        for _ in range(200)
    ]


def search(lowest_amount: float = 100.0, **declared: dict):
    inputs = {name: {**spec, **declared.get(name, {})} for name, spec in SCREEN.items()}
    payments = schema(inputs, favourable="allow", fields=FIELDS)
    predictor = InProcessPredictor(screen)
    person = payments.check(PAYMENT)
    decision = Decision("txn_pay", "m" * 64, person, predictor.predict(person, 3), 3)
    assert decision.outputs["decision"] == "block"
    rows = [payments.check(row) for row in reference(lowest_amount)]
    return counterfactuals_of(payments, decision, predictor, rows, n=3), rows


def test_options_move_only_what_the_person_can_change():
    found, _ = search()
    assert found.options
    for option in found.options:
        assert option.outputs["decision"] == "allow"
        assert not {"card_age_days", "cardholder_age", "descriptor"} & set(option.changes)
        assert option.inputs["descriptor"] == PAYMENT["descriptor"]  # newline kept
        assert option.description.endswith("; descriptor kept as written")
    assert found.kept_as_written == ["descriptor"]
    assert "card_age_days" not in found.movable and "descriptor" not in found.movable


def test_a_number_is_rounded_to_its_step():
    found, _ = search()
    (amount,) = [o for o in found.options if o.features == ["amount"]]
    # 0.82 - amount / 1000 >= 0.6 needs at most 220; on a step of 50, 200
    assert amount.inputs["amount"] == 200
    assert amount.description.startswith("allow if amount were at most 200 (-300)")


def test_no_option_pads_a_change_that_already_suffices():
    found, _ = search()
    singles = [set(o.changes) for o in found.options if len(o.changes) == 1]
    assert {"amount"} in singles and {"category"} in singles
    for option in found.options:
        assert not any(single < set(option.changes) for single in singles)


@pytest.mark.parametrize("declared", [None, [300, 5_000]])
def test_every_value_stays_inside_the_plausible_range(declared):
    if declared is None:  # the reference shows amounts from 300 only
        found, rows = search(lowest_amount=300.0)
        low = min(row["amount"] for row in rows)
    else:
        found, rows = search(amount={"plausible": declared})
        low = declared[0]
    assert low >= 300
    assert found.options  # the category still reaches allow
    for option in found.options:
        assert option.inputs["amount"] >= low  # 200 alone would allow, but is not plausible
        for name in ("payments_24h",):
            seen = [row[name] for row in rows]
            assert min(seen) <= option.inputs[name] <= max(seen)
