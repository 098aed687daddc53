"""The report as a letter, on the fraud screen in its container: every input by its
label (no raw name in the letter), the score to two decimals, the screen's own reason
quoted, the protected cardholder's age kept out of the reasons and the chart and
flagged for the compliance reviewer, the model named by its Pipeline's steps, a
5,000-character descriptor shortened in the letter and whole in the evidence; the
ledger opened once, and only the report entry written."""

from __future__ import annotations

from contextlib import contextmanager

import pytest

from tests.integration.test_reports import letter, pdf_sections

pytestmark = pytest.mark.integration

RAW_NAMES = (  # "descriptor" is in its own label, "statement descriptor"
    "merchant_category",
    "card_present",
    "card_age_days",
    "payments_24h",
    "distance_km",
    "cardholder_age",
)
LABELS = (
    "Statement descriptor",
    "Kind of shop",
    "Amount paid",
    "Card present at the till",
    "Age of the card",
    "Payments with this card in the last 24 hours",
    "Distance from the cardholder's home",
    "Cardholder's age",
)
# A fitted ColumnTransformer holds its "passthrough" columns as a FunctionTransformer.
MODEL = (
    "gradient-boosted trees (GradientBoostingClassifier, scikit-learn 1.5.2) after a "
    "ColumnTransformer (HashingVectorizer, OneHotEncoder, FunctionTransformer), in a "
    "scikit-learn Pipeline"
)


@contextmanager
def ledgers_opened(monkeypatch):
    """The ledgers opened inside the block: `open_ledger` opens through `open_ledger_at`."""
    import replay.ledger

    opened = []
    real = replay.ledger.open_ledger_at

    def counting(*args, **kwargs):
        opened.append(args[0])
        return real(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(replay.ledger, "open_ledger_at", counting)
        yield opened


def test_a_fraud_report_is_a_letter_with_the_evidence_for_compliance(
    fraud_decided, fraud_warm, monkeypatch, tmp_path
):
    import replay
    from replay.ledger import open_ledger

    ledger = open_ledger()
    entry = ledger.get(fraud_decided["block"][0].txn_id).readable()
    before = ledger.head().seq
    with ledgers_opened(monkeypatch) as opened:
        made = replay.report(entry.txn_id, out=tmp_path, warm=fraud_warm)
    assert len(opened) == 1  # read, re-executed, explained, searched, recorded: one ledger
    assert ledger.head().seq == before + 1  # the report entry alone: no access, no replay
    content = made.content
    assert content.reproduced
    sections = pdf_sections(made.files["pdf"])
    person = letter(sections)

    assert all(name not in person for name in RAW_NAMES)
    assert all(label in sections[4] for label in LABELS)
    score = entry.outputs["score"]
    assert f"Likelihood the payment is genuine {score:.2f}" in sections[1]
    assert repr(score) not in person and repr(score) in sections[9]
    assert f"Reason given with the decision: “{entry.outputs['reason']}”" in sections[3]
    assert content.reasons and all(reason in sections[3] for reason in content.reasons)
    # the protected age: not among the reasons, not in the chart; flagged apart
    assert "Cardholder's age" not in sections[3]
    assert "cardholder's age" not in {item["feature"] for item in content.chart}
    assert "cardholder_age" in sections[8] and "immutable" in sections[8]
    assert MODEL in sections[5]
    for option in content.options:
        assert option in sections[6]
    if content.options:
        assert "your statement descriptor was kept as written" in sections[6]


def test_a_long_descriptor_is_one_short_line_in_the_letter_and_whole_in_the_evidence(
    fraud_decided, fraud_warm, tmp_path
):
    import replay
    from replay.display import shorten
    from replay.ledger import open_ledger

    [decided] = [e for found in fraud_decided.values() for e in found if e.seed == 3]
    descriptor = open_ledger().get(decided.txn_id).readable().inputs["descriptor"]
    assert len(descriptor) == 5000
    made = replay.report(decided.txn_id, out=tmp_path, warm=fraud_warm)
    sections = pdf_sections(made.files["pdf"])

    assert f"Statement descriptor “{shorten(descriptor)}”" in sections[4]
    assert descriptor[:200] not in letter(sections)
    assert "".join(descriptor.split()) in "".join(sections[9].split())
