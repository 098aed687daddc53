"""The report's letter, without Docker: inputs by their titles, values rounded for
reading, the score to two decimals, the deployment's reason quoted, protected inputs
kept out of the person's reasons and chart (and flagged for the compliance reviewer),
options in sentences, the model named from its description or its lock, and every exact
value in the evidence. A fraud screen runs in this process, asked by the real question
algorithms."""

from __future__ import annotations

import html
import json
import re
from typing import Any

import pytest
from replay.manifests.canonical import canonical_json, sha256_bytes
from replay.manifests.manifest import Manifest
from replay.manifests.schema import Feature

from replay.execution.decision import Decision
from replay.execution.predictor import InProcessPredictor
from replay.execution.reexecution import ReplayResult
from replay.ledger.chain import LedgerEntry, LedgerVerification
from replay.questions.counterfactuals import counterfactuals_of
from replay.questions.explanations import explanation_of
from replay.reports import wording
from replay.reports.content import Answers, Organisation, ReportContent, gather
from replay.reports.rendering import render_html
from tests.factories import manifest_document

LONG = ("AMZN MKTP DE*2K4 " * 300)[:5000]
FRAUD_IO = {
    "inputs": {
        "descriptor": {"type": "text", "max_length": 5000, "label": "statement descriptor"},
        "merchant_category": {
            "type": "string",
            "values": ["grocery", "gambling"],
            "label": "kind of shop",
        },
        "amount": {
            "type": "number",
            "min": 0,
            "max": 50000,
            "monotone": "decreasing",
            "unit": "EUR",
            "step": 1,
            "label": "amount paid",
        },
        "cardholder_age": {
            "type": "integer",
            "min": 18,
            "max": 100,
            "immutable": True,
            "unit": "years",
            "label": "cardholder's age",
            "description": "protected attribute",
        },
    },
    "output": {
        "decision": "decision",
        "score": "score",
        "favourable": "allow",
        "fields": {
            "decision": {"type": "string", "values": ["allow", "challenge", "block"]},
            "score": {"type": "number", "label": "likelihood the payment is genuine"},
            "reason": {"type": "string"},
        },
    },
}
SKLEARN_LOCK = (
    "joblib==1.4.2 \\\n    --hash=sha256:" + "1" * 64 + "\n"
    "scikit-learn==1.5.2 \\\n    --hash=sha256:" + "2" * 64 + "\n"
)
FRAUD_MODEL = [
    {
        "name": "_pipeline",
        "class": "Pipeline",
        "library": "scikit-learn",
        "version": "1.5.2",
        "parts": [
            {
                "name": "prepare",
                "class": "ColumnTransformer",
                "library": "scikit-learn",
                "version": "1.5.2",
                "parts": [
                    {"name": "descriptor", "class": "HashingVectorizer", "library": "scikit-learn"},
                    {"name": "category", "class": "OneHotEncoder", "library": "scikit-learn"},
                    {"name": "numbers", "class": "passthrough"},
                ],
            },
            {
                "name": "classify",
                "class": "GradientBoostingClassifier",
                "library": "scikit-learn",
                "version": "1.5.2",
            },
        ],
    }
]


def screen(payment: dict) -> dict:
    """Young cardholders, gambling and large amounts lower the score (and the age
    counts, so the compliance section has something to flag)."""
    score = 0.97 - payment["amount"] / 4000 - 0.1 * (payment["cardholder_age"] < 25)
    score -= 0.25 * (payment["merchant_category"] == "gambling")
    decision = "allow" if score >= 0.8 else "challenge" if score >= 0.6 else "block"
    return {"decision": decision, "score": score + 1e-13, "reason": "an unusual payment"}


@pytest.fixture(scope="module")
def manifest() -> Manifest:
    return Manifest(
        manifest_document(
            io=FRAUD_IO,
            environment__lock=SKLEARN_LOCK,
            environment__lock_sha256=sha256_bytes(SKLEARN_LOCK.encode()),
        )
    )


def entry_of(inputs: dict, outputs: dict, seed: int = 5) -> LedgerEntry:
    return LedgerEntry(
        seq=12,
        txn_id="txn_letter",
        kind="decision",
        manifest_id="m" * 64,
        deployment="fraud-screen",
        time="2026-03-04T05:06:07+00:00",
        subject=None,
        inputs_json=canonical_json(inputs).decode(),
        outputs_json=canonical_json(outputs).decode(),
        seed=seed,
        fingerprint=None,
        refers_to=None,
        prev_hash="0" * 64,
        hash="9" * 64,
        format=2,
        sealed=0,
    )


def made(
    manifest: Manifest, inputs: dict, model: list[dict[str, Any]], predict=screen
) -> ReportContent:
    """The report's content of `inputs` decided by `predict`, asked as `replay report`
    asks the container."""
    schema = manifest.schema
    predictor = InProcessPredictor(predict)
    checked = schema.check(inputs)
    entry = entry_of(checked, predictor.predict(checked, 5))
    decision = Decision.from_entry(entry, manifest)
    reference = [
        schema.check(
            {
                "descriptor": f"SHOP {i}",
                "merchant_category": "grocery" if i % 4 else "gambling",
                "amount": 20.0 + 37 * i,
                "cardholder_age": 20 + i,
            }
        )
        for i in range(30)
    ]
    replayed = ReplayResult(
        entry.txn_id, entry.manifest_id, "reproduced", "local", entry.outputs, entry.outputs
    )
    answers = Answers(
        replayed,
        explanation_of(schema, decision, predictor, reference),
        counterfactuals_of(schema, decision, predictor, reference, 3),
        None,
        model,
        "f" * 64,
    )
    return gather(entry, [], manifest, answers, LedgerVerification(13), Organisation())


def sections(page: str) -> dict[str, str]:
    """The page's text by section number (`3`: the principal reasons), as read: no
    markup, no chart (its labels are drawn as paths), entities unescaped."""
    parts = re.split(r"<h2>(\d)\. [^<]*</h2>", re.sub(r"<svg.*?</svg>", "", page, flags=re.S))
    return {
        number: html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body)))
        for number, body in zip(parts[1::2], parts[2::2], strict=True)
    }


def feature(**spec: Any) -> Feature:
    return Feature.from_json("x", spec)


def test_values_are_rounded_for_reading_with_their_units():
    amount = feature(type="number", unit="EUR", label="amount paid")
    assert wording.readable(amount, 1234567.891) == "1,234,567.89 EUR"
    assert wording.readable(amount, 45000.0) == "45,000 EUR"
    assert wording.readable(feature(type="number"), 15.400000000000002) == "15.4"
    assert wording.readable(feature(type="integer", unit="days"), 2733) == "2,733 days"
    assert wording.readable(feature(type="boolean"), True) == "yes"
    assert wording.readable(feature(type="boolean"), False) == "no"
    assert wording.readable(feature(type="string", values=["gift_cards"]), "gift_cards") == (
        "gift_cards"
    )
    text = wording.readable(feature(type="text"), "SHELL 0423\nHAMBURG")
    assert text == "“SHELL 0423 HAMBURG”"
    shortened = wording.readable(feature(type="text"), LONG)
    assert len(shortened) == 62 and shortened.endswith("…”") and "\n" not in shortened
    assert wording.score_text(0.8985809174312533) == "0.90"
    assert wording.score_text(None) is None
    assert wording.exact(0.8985809174312533) == "0.8985809174312533"
    assert wording.exact("SHELL 0423\nHAMBURG") == '"SHELL 0423\\nHAMBURG"'


def test_a_feature_is_shown_by_its_label_else_its_description_else_its_name():
    assert feature(type="number", label="amount paid", description="d").title == "amount paid"
    assert feature(type="number", description="yearly income").title == "yearly income"
    assert feature(type="number").title == "x"


def test_the_model_is_named_by_its_pipeline_steps_and_estimator(manifest):
    assert wording.model_sentence(FRAUD_MODEL, manifest) == (
        "gradient-boosted trees (GradientBoostingClassifier, scikit-learn 1.5.2) after a "
        "ColumnTransformer (HashingVectorizer, OneHotEncoder, passthrough), in a "
        "scikit-learn Pipeline"
    )
    credit = [{"name": "_model", "class": "HistGradientBoostingClassifier", "library": "lib"}]
    assert wording.model_sentence(credit, manifest) == (
        "gradient-boosted trees (HistGradientBoostingClassifier, lib)"
    )
    # claims: a Pipeline inside the ColumnTransformer, a column dropped, a linear model
    amount = {
        "name": "amount",
        "class": "Pipeline",
        "parts": [{"class": "FunctionTransformer"}, {"class": "StandardScaler"}],
    }
    prepare = {
        "name": "prepare",
        "class": "ColumnTransformer",
        "parts": [amount, {"class": "StandardScaler"}, {"class": "OneHotEncoder"}],
    }
    prepare["parts"].append({"name": "remainder", "class": "drop"})
    claims = {
        "class": "Pipeline",
        "library": "scikit-learn",
        "version": "1.5.2",
        "parts": [
            prepare,
            {"class": "LogisticRegression", "library": "scikit-learn", "version": "1.5.2"},
        ],
    }
    assert wording.model_sentence([claims], manifest) == (
        "a logistic regression (LogisticRegression, scikit-learn 1.5.2) after a "
        "ColumnTransformer (FunctionTransformer, StandardScaler, OneHotEncoder), in a "
        "scikit-learn Pipeline"
    )
    # another library's model in a scikit-learn Pipeline: both versions are named
    lightgbm = {**claims, "parts": [{"class": "LGBMClassifier", "library": "lightgbm"}]}
    assert wording.model_sentence([lightgbm], manifest) == (
        "gradient-boosted trees (LGBMClassifier, lightgbm), in a scikit-learn 1.5.2 Pipeline"
    )
    assert wording.model_sentence([{"class": "Thing", "library": "own"}], manifest) == (
        "a model (Thing, own)"
    )


def test_an_image_that_cannot_describe_its_model_names_the_locked_libraries(manifest):
    assert wording.model_sentence([], manifest) == (
        "a model (model.joblib) run by the deployment's code, with scikit-learn 1.5.2 "
        "among its locked libraries"
    )


def test_the_letter_speaks_to_the_person_and_the_annex_keeps_every_exact_value(manifest):
    inputs = {
        "descriptor": LONG,
        "merchant_category": "gambling",
        "amount": 1250.5,
        "cardholder_age": 21,
    }
    content = made(manifest, inputs, FRAUD_MODEL)
    assert content.decision == "block" and content.score == "0.31"
    page = render_html(content, None)
    text = sections(page)

    assert "Likelihood the payment is genuine 0.31" in text["1"]
    # reasons by label, rounded, no Shapley numbers, never the protected age
    assert content.reasons and "Reason given with the decision: “an unusual payment”" in text["3"]
    for reason in content.reasons:
        assert reason in text["3"] and not re.search(r"[+-]0\.\d", reason)
    assert "Amount paid (1,250.5 EUR) weighed against “allow”." in content.reasons
    assert "Kind of shop (gambling) weighed against “allow”." in content.reasons
    assert all(name not in text["3"] for name in ("cardholder", "age", "amount_", "merchant_"))
    assert [item["feature"] for item in content.chart] == ["kind of shop", "amount paid"]
    # the protected age weighed here: flagged for the compliance reviewer only
    assert content.flagged and content.flagged[0].startswith("cardholder_age of 21")
    assert "Flagged for review" in text["8"] and "cardholder_age of 21" in text["8"]
    # inputs by label, the long text on one short line in the letter, whole in the annex
    assert "Statement descriptor “AMZN MKTP DE*2K4" in text["4"] and LONG not in text["4"]
    assert "Cardholder's age 21 years" in text["4"] and "Amount paid 1,250.5 EUR" in text["4"]
    assert json.dumps(LONG) in text["9"]
    assert repr(0.97 - 1250.5 / 4000 - 0.1 - 0.25 + 1e-13) in text["9"]  # every digit
    # options in sentences, with labels; the text kept as written
    assert content.options[0].startswith("The decision would have been “")
    assert all("descriptor" not in option for option in content.options)
    assert "your statement descriptor was kept as written" in text["6"]
    assert any("amount paid had been at most " in option for option in content.options)
    assert "gradient-boosted trees (GradientBoostingClassifier" in text["5"]


def test_a_decision_no_input_made_says_what_did(manifest):
    """A rule that challenges every payment: no reasons, no chart, no option; what
    decided said in a sentence instead."""

    def challenge_all(payment: dict) -> dict:
        return {"decision": "challenge", "score": 0.7, "reason": "every payment is checked"}

    inputs = {"descriptor": "", "merchant_category": "grocery", "amount": 10.0}
    content = made(manifest, {**inputs, "cardholder_age": 60}, [], challenge_all)
    assert content.reasons == [] and content.chart == [] and content.options == []
    assert content.decided_by is not None and "a fixed rule decided" in content.decided_by
    text = sections(render_html(content, None))
    assert content.decided_by in text["3"] and 'id="chart"' not in text["3"]
    assert "Statement descriptor “”" in text["4"]
    assert (
        "No change of one or two of amount paid or kind of shop would have reached “allow”"
        in (text["6"])
    )
