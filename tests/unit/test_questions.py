"""Every question as an algorithm over the typed schema, a decision and a Predictor:
here against deployments running in this process (no Docker engine involved).

Two deployments unlike each other: a numeric credit score that decides by threshold,
and a claims triage with a categorical input, a rule that decides with no score
(null) and a seeded random draw that sends some approvals to review.
"""

from __future__ import annotations

import itertools
import math
import random
import statistics

import pytest

from replay.errors import BadInput
from replay.execution.decision import Decision
from replay.execution.predictor import InProcessPredictor, PredictionError
from replay.questions.counterfactuals import counterfactuals_of
from replay.questions.draws import draw_keeps
from replay.questions.explanations import explanation_of
from replay.questions.sweeps import Range, grid_columns, sweep_of
from replay.questions.what_if import whatif_of
from tests.factories import schema

# --- a numeric credit score -----------------------------------------------------------

CREDIT = schema(
    {
        "income": {"type": "number", "min": 0, "max": 200_000, "monotone": "increasing"},
        "debt": {"type": "number", "min": 0, "max": 100_000, "monotone": "decreasing"},
        "late_payments": {"type": "integer", "min": 0, "max": 20, "monotone": "decreasing"},
        "age": {"type": "integer", "min": 18, "max": 100, "immutable": True},
        "branch": {"type": "string", "values": ["online", "office"]},
    }
)
WEIGHTS = {"income": 1e-5, "debt": -2e-5, "late_payments": -0.08}


def credit_score(row: dict) -> float:
    """Linear in every feature (age too), so exact Shapley values are known."""
    return (
        0.1
        + sum(weight * row[name] for name, weight in WEIGHTS.items())
        + 0.002 * (row["age"] - 40)
    )


def credit_predict(row: dict) -> dict:
    score = credit_score(row)
    return {"decision": "approved" if score >= 0.5 else "rejected", "score": score}


@pytest.fixture
def credit() -> InProcessPredictor:
    return InProcessPredictor(credit_predict)


APPLICANT = {"income": 42_000.0, "debt": 6_000.0, "late_payments": 2, "age": 30, "branch": "online"}


def decided(predictor: InProcessPredictor, inputs: dict, seed: int = 7) -> Decision:
    checked = CREDIT.check(inputs) if "income" in inputs else CLAIMS.check(inputs)
    return Decision("txn_test", "m" * 64, checked, predictor.predict(checked, seed), seed)


def reference(count: int = 120) -> list[dict]:
    generator = random.Random(3)
    return [
        CREDIT.check(
            {
                "income": generator.uniform(10_000, 150_000),
                "debt": generator.uniform(0, 40_000),
                "late_payments": generator.randint(0, 8),
                "age": generator.randint(18, 80),
                "branch": generator.choice(["online", "office"]),
            }
        )
        for _ in range(count)
    ]


def test_what_if_reruns_with_the_edits_and_the_decision_seed(credit):
    decision = decided(credit, APPLICANT)
    assert decision.outputs["decision"] == "rejected"
    answer = whatif_of(CREDIT, decision, {"income": "90_000", "branch": "office"}, credit)
    assert answer.modified_inputs == {**decision.inputs, "income": 90_000.0, "branch": "office"}
    assert answer.changed == {"income": (42_000.0, 90_000.0), "branch": ("online", "office")}
    assert answer.modified_outputs == credit_predict(answer.modified_inputs)
    assert answer.decision_changed


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({}, "nothing to change"),
        ({"income": -5}, "income=-5 is below its minimum 0"),
        ({"salary": 1}, "unknown feature 'salary'"),
        ({"branch": "phone"}, "branch must be one of online, office"),
    ],
)
def test_what_if_names_the_field_that_is_wrong(credit, changes, message):
    with pytest.raises(BadInput, match=message):
        whatif_of(CREDIT, decided(credit, APPLICANT), changes, credit)


def test_an_immutable_input_is_changed_only_when_probing_is_allowed(credit):
    from replay.errors import ImmutableInput

    decision = decided(credit, APPLICANT)
    with pytest.raises(ImmutableInput, match="age is immutable: a question never changes it"):
        whatif_of(CREDIT, decision, {"age": 60, "income": 50_000}, credit)
    with pytest.raises(ImmutableInput, match="age is immutable"):
        sweep_of(CREDIT, decision, [Range("age", 18, 80, 5)], credit)
    # the logged value again is no change
    assert whatif_of(CREDIT, decision, {"age": 30, "income": 50_000}, credit).probed == ()
    probed = whatif_of(CREDIT, decision, {"age": 60}, credit, allow_immutable=True)
    assert probed.probed == ("age",) and probed.to_dict()["probed_immutable"] == ["age"]
    assert probed.modified_outputs["score"] == credit_score({**APPLICANT, "age": 60})
    swept = sweep_of(CREDIT, decision, [Range("age", 18, 80, 5)], credit, allow_immutable=True)
    assert swept.probed == ("age",) and len(swept.frame) == 5


def test_a_sweep_answers_what_each_variant_alone_answers(credit):
    decision = decided(credit, APPLICANT)
    result = sweep_of(CREDIT, decision, [Range("income", 20_000, 120_000, 51)], credit)
    assert list(result.frame["income"]) == [20_000 + 2_000 * i for i in range(51)]
    for _, row in result.frame.iterrows():
        variant = {**decision.inputs, "income": row["income"]}
        assert row["score"] == credit_predict(variant)["score"]
    # the score reaches 0.5 where 1e-5 * income = 0.5 - 0.1 + 0.12 + 0.16 + 0.02 = 0.7
    (change,) = result.changes["income"]
    assert change == 70_000


def test_a_two_feature_sweep_covers_the_grid_and_integers_are_whole(credit):
    decision = decided(credit, APPLICANT)
    ranges = [Range("income", 0, 100_000, 5), Range("late_payments", 0, 3, 7)]
    result = sweep_of(CREDIT, decision, ranges, credit)
    assert len(result.frame) == 5 * 4  # 0, 0.5, ... 3 rounds to 0, 1, 2, 3 (no repeats)
    assert sorted(set(result.frame["late_payments"])) == [0, 1, 2, 3]
    assert all(isinstance(value, int) for value in result.frame["late_payments"].tolist())


@pytest.mark.parametrize(
    ("ranges", "message"),
    [
        ([Range("branch", 0, 1, 2)], "branch is a string: only numbers can be swept"),
        ([Range("income", -10, 5, 3)], "income=-10 is below its minimum 0"),
        ([Range("income", 0, 5, 0)], "at least one point"),
        ([Range("income", 0, 5, 2), Range("income", 0, 5, 2)], "one or two different"),
        ([Range("wealth", 0, 5, 2)], "unknown feature 'wealth'"),
    ],
)
def test_a_bad_sweep_names_the_feature(credit, ranges, message):
    with pytest.raises(BadInput, match=message):
        sweep_of(CREDIT, decided(credit, APPLICANT), ranges, credit)


def test_counterfactuals_flip_the_decision_within_every_constraint(credit):
    decision = decided(credit, APPLICANT)
    found = counterfactuals_of(CREDIT, decision, credit, reference(), n=3)
    assert found.decision == "rejected" and found.target == "approved"
    assert 1 <= len(found.options) <= 3
    assert len({frozenset(option.changes) for option in found.options}) == len(found.options)
    for option in found.options:
        assert credit_predict(option.inputs)["decision"] == "approved"  # verified
        assert option.outputs == credit_predict(option.inputs)
        assert option.inputs["age"] == APPLICANT["age"]  # immutable
        assert option.inputs["branch"] == APPLICANT["branch"]
        for name, (old, new) in option.changes.items():
            feature = CREDIT.inputs[name]
            helps = 1 if feature.monotone == "increasing" else -1
            assert (new - old) * helps > 0, f"{name} moved the wrong way"
            assert feature.min <= new <= feature.max


def test_a_single_feature_counterfactual_sits_just_past_the_threshold(credit):
    found = counterfactuals_of(CREDIT, decided(credit, APPLICANT), credit, reference(), n=3)
    income = next(o for o in found.options if o.features == ["income"])
    needed = 70_000  # from the weights (see the sweep test)
    assert needed <= income.inputs["income"] <= needed * 1.02
    late = [o for o in found.options if o.features == ["late_payments"]]
    assert not late  # even 0 late payments (+0.16) cannot reach 0.5 alone


def test_no_counterfactual_when_every_input_is_immutable(credit):
    frozen = schema(
        {
            "age": {"type": "integer", "min": 18, "max": 100, "immutable": True},
            "branch": {"type": "string", "values": ["online", "office"], "immutable": True},
        }
    )
    decision = Decision("t", "m" * 64, {"age": 30, "branch": "online"}, {"decision": "x"}, 1)
    with pytest.raises(BadInput, match="every input is immutable, not actionable or free text"):
        counterfactuals_of(frozen, decision, credit, [{"age": 30, "branch": "online"}])


def test_contributions_add_up_for_the_decision_and_for_the_score(credit):
    decision = decided(credit, APPLICANT)
    rows = reference(40)
    result = explanation_of(CREDIT, decision, credit, rows)
    mean = statistics.fmean(credit_score(row) for row in rows)
    approved = statistics.fmean(credit_predict(row)["decision"] == "approved" for row in rows)
    assert math.isclose(result.base_score, mean, abs_tol=1e-12)
    assert math.isclose(result.base_rate, approved, abs_tol=1e-12)
    to_score = sum(c.score for c in result.contributions)
    to_decision = sum(c.decision for c in result.contributions)
    assert math.isclose(to_score, result.score - result.base_score, abs_tol=1e-12)
    assert math.isclose(to_decision, 0 - result.base_rate, abs_tol=1e-12)  # rejected: 0
    assert result.method == "exact Shapley" and result.reference_rows == 40
    assert result.decided_by == "inputs" and result.other_seeds == {"rejected": 20}


def test_a_linear_score_gets_its_exact_shapley_values(credit):
    decision = decided(credit, APPLICANT)
    rows = reference(40)
    result = explanation_of(CREDIT, decision, credit, rows)
    by_name = {c.feature: c for c in result.contributions}
    for name, weight in {**WEIGHTS, "age": 0.002}.items():
        expected = weight * (APPLICANT[name] - statistics.fmean(row[name] for row in rows))
        assert math.isclose(by_name[name].score, expected, abs_tol=1e-12)
    assert by_name["branch"].score == by_name["branch"].decision == 0
    assert result.unused == ["branch"]
    assert by_name["branch"].reference_mean is None  # no mean of a category


def test_reasons_are_mutable_features_that_moved_the_decision_and_age_is_set_apart(credit):
    older = {**APPLICANT, "age": 18, "income": 60_000.0}  # age pulls the score down
    result = explanation_of(CREDIT, decided(credit, older), credit, reference(40))
    by_name = {c.feature: c for c in result.contributions}
    assert by_name["age"].immutable and by_name["age"].decision <= -0.01
    assert result.reasons and not any(r.startswith("age ") for r in result.reasons)
    for reason in result.reasons:
        feature = by_name[reason.split(" of ")[0]]
        assert feature.decision <= -0.01 and "away from approved" in reason
    (flagged,) = result.protected
    assert flagged.startswith("age of 18") and "immutable: flagged for review" in flagged
    negligible = [c.feature for c in result.contributions if abs(c.decision) < 0.01]
    assert not any(r.split(" of ")[0] in negligible for r in result.reasons)


def test_many_features_are_explained_by_sampled_permutations():
    names = [f"x{i}" for i in range(12)]
    wide = schema({name: {"type": "number"} for name in names})
    predictor = InProcessPredictor(
        lambda row: {"decision": "ok", "score": sum(i * row[f"x{i}"] for i in range(12))}
    )
    inputs = {name: 1.0 for name in names}
    decision = Decision("t", "m" * 64, inputs, predictor.predict(inputs, 0), 0)
    rows = [{name: 0.0 for name in names}] * 5
    result = explanation_of(wide, decision, predictor, rows, samples=30)
    assert result.method == "sampled Shapley (30 orders)"
    by_name = {c.feature: c.score for c in result.contributions}
    assert all(math.isclose(by_name[f"x{i}"], i, abs_tol=1e-9) for i in range(12))


# --- claims triage: a category, a rule with a null score, a seeded draw -----------------


def spec_of(feature) -> dict:
    """A feature back as its declaration (for a schema with one key changed)."""
    keys = ("type", "min", "max", "values", "immutable", "monotone", "nullable")
    spec = {
        key: getattr(feature, key) for key in keys if getattr(feature, key) not in (None, False)
    }
    return {**spec, "values": list(spec["values"])} if "values" in spec else spec


CLAIMS = schema(
    {
        "claim_amount": {"type": "number", "min": 0, "max": 100_000, "monotone": "decreasing"},
        "region": {"type": "string", "values": ["north", "south", "east"]},
        "age": {"type": "integer", "min": 18, "max": 100, "immutable": True},
    },
    favourable="approve",
    fields={
        "decision": {"type": "string", "values": ["approve", "deny", "review", "refer"]},
        "score": {"type": "number", "nullable": True},
        "draw": {"type": "number"},
    },
)
REGION = {"north": 0.3, "south": 0.0, "east": -0.4}


def triage(row: dict) -> dict:
    draw = random.random()  # seeded by the runner before every row
    if row["claim_amount"] > 50_000:
        return {"decision": "refer", "score": None, "draw": draw}
    score = 0.9 - row["claim_amount"] / 20_000 + REGION[row["region"]]
    decision = "approve" if score >= 0.5 else "deny"
    if decision == "approve" and draw < 0.2:
        decision = "review"
    return {"decision": decision, "score": score, "draw": draw}


@pytest.fixture
def claims() -> InProcessPredictor:
    return InProcessPredictor(triage)


CLAIM = {"claim_amount": 9_000.0, "region": "south", "age": 50}


def test_a_category_changed_alone_can_change_the_decision(claims):
    decision = decided(claims, CLAIM, seed=11)
    assert decision.outputs["decision"] == "deny"
    answer = whatif_of(CLAIMS, decision, {"region": "north"}, claims)
    assert answer.modified_outputs["decision"] in {"approve", "review"}
    # the same seed gives the same draw, whatever the inputs
    assert answer.modified_outputs["draw"] == decision.outputs["draw"]


def test_a_what_if_with_no_edit_reproduces_the_seeded_draw(claims):
    decision = decided(claims, CLAIM, seed=11)
    again = whatif_of(CLAIMS, decision, {"claim_amount": CLAIM["claim_amount"]}, claims)
    assert again.modified_outputs == decision.outputs


def test_a_rule_that_decides_without_a_score_gives_null_scores_in_a_sweep(claims):
    decision = decided(claims, CLAIM, seed=11)
    result = sweep_of(CLAIMS, decision, [Range("claim_amount", 40_000, 60_000, 5)], claims)
    refer = result.frame[result.frame["claim_amount"] > 50_000]
    assert set(refer["decision"]) == {"refer"} and refer["score"].isna().all()
    assert CLAIMS.output.check({"decision": "refer", "score": None, "draw": 0.1})["score"] is None


def test_identical_sweep_points_agree_and_every_boundary_agrees_with_what_if(claims):
    decision = decided(claims, CLAIM, seed=11)
    same = sweep_of(CLAIMS, decision, [Range("claim_amount", 4_000, 4_000, 5)], claims)
    assert len(same.frame) == 5 and same.frame["decision"].nunique() == 1
    assert same.frame["draw"].tolist() == [decision.outputs["draw"]] * 5
    result = sweep_of(CLAIMS, decision, [Range("claim_amount", 0, 60_000, 121)], claims)
    assert len(result.changes) >= 2  # deny from approve (or review), then refer
    for _, row in result.changes.iterrows():
        answer = whatif_of(CLAIMS, decision, {"claim_amount": row["claim_amount"]}, claims)
        assert answer.modified_outputs["decision"] == row["decision"]


def claim_reference() -> list[dict]:
    return [
        CLAIMS.check({"claim_amount": 1_000.0 * k, "region": "south", "age": 30 + k})
        for k in range(1, 40)
    ]


def test_counterfactuals_of_a_denied_claim_reach_approval_with_numbers_or_categories(claims):
    decision = decided(claims, CLAIM, seed=11)
    assert decision.outputs["decision"] == "deny"
    found = counterfactuals_of(CLAIMS, decision, claims, claim_reference(), n=3)
    assert found.target == "approve" and found.options
    moved = set()
    for option in found.options:
        assert option.outputs["decision"] == "approve"  # the favourable one, not review
        assert option.outputs["draw"] == decision.outputs["draw"]  # the decision's own seed
        assert option.inputs["age"] == CLAIM["age"]  # immutable
        if "claim_amount" in option.changes:
            assert option.inputs["claim_amount"] < CLAIM["claim_amount"]  # monotone
        moved |= set(option.changes)
    assert "region" in moved  # a category changed on its own can approve
    region = next(o for o in found.options if o.features == ["region"])
    assert region.description == "approve if region were north (not south)"


def test_a_target_other_than_the_favourable_decision(claims):
    decision = decided(claims, CLAIM, seed=11)
    # the reference shows claims up to 39,000: a claim over 50,000 is not plausible
    found = counterfactuals_of(CLAIMS, decision, claims, claim_reference(), n=2, target="refer")
    assert found.target == "refer" and not found.options
    # a deployment that declares larger claims plausible gets them
    wide = schema(
        {
            **{name: spec_of(feature) for name, feature in CLAIMS.inputs.items()},
            "claim_amount": {
                "type": "number",
                "min": 0,
                "max": 100_000,
                "monotone": "decreasing",
                "plausible": [0, 80_000],
            },
        },
        favourable="approve",
        fields={name: spec_of(field) for name, field in CLAIMS.output.fields.items()},
    )
    found = counterfactuals_of(wide, decision, claims, claim_reference(), n=2, target="refer")
    assert found.target == "refer" and found.options
    assert all(o.outputs["decision"] == "refer" for o in found.options)
    assert all(50_000 < o.inputs["claim_amount"] <= 80_000 for o in found.options)
    with pytest.raises(BadInput, match="decision must be one of"):
        counterfactuals_of(CLAIMS, decision, claims, claim_reference(), target="maybe")
    with pytest.raises(BadInput, match="was already deny: there is nothing to reach"):
        counterfactuals_of(CLAIMS, decision, claims, claim_reference(), target="deny")


def test_when_nothing_reaches_the_target_it_says_why_in_one_line(claims):
    decision = decided(claims, CLAIM, seed=11)
    unreachable = InProcessPredictor(lambda row: {**triage(row), "decision": "deny"})
    found = counterfactuals_of(CLAIMS, decision, unreachable, claim_reference())
    assert found.options == []
    assert found.none_found == (
        f"no single or paired change of claim_amount, region reached approve "
        f"({found.evaluated:,} variants tried)"
    )
    assert found.evaluated > 50


def test_when_the_seed_draws_every_approval_into_review_the_search_says_so(claims):
    denied = decided(claims, CLAIM, seed=14)  # seed 14 draws 0.107: approvals go to review
    found = counterfactuals_of(CLAIMS, denied, claims, claim_reference())
    assert found.options == [] and found.blocked_by_draw
    assert found.none_found.endswith(
        "under this decision's seed a random draw keeps every reference row from approve "
        "too (with other seeds some reach it)"
    )


def test_only_the_decisions_own_seed_can_be_the_draw_that_keeps_it(claims):
    rows = claim_reference()
    assert draw_keeps(CLAIMS, claims, rows, 14, "approve", reached=False)  # draws 0.107
    # seed 11 draws 0.45: approvals stay approvals, though seed 14 is among the next five
    assert not draw_keeps(CLAIMS, claims, rows, 11, "approve", reached=False)
    assert not draw_keeps(CLAIMS, claims, rows, 14, "deny", reached=False)  # some deny


def test_a_deployment_error_is_a_prediction_error_naming_it(claims):
    decision = decided(claims, CLAIM, seed=11)
    broken = InProcessPredictor(lambda row: 1 / 0)
    with pytest.raises(PredictionError, match="ZeroDivisionError"):
        whatif_of(CLAIMS, decision, {"region": "north"}, broken)


def test_a_referral_by_rule_is_explained_without_a_score(claims):
    referred = decided(claims, {**CLAIM, "claim_amount": 60_000.0}, seed=11)
    assert referred.outputs["score"] is None
    result = explanation_of(CLAIMS, referred, claims, claim_reference())
    assert result.score is None and result.base_score is None
    assert all(c.score is None for c in result.contributions)
    assert result.decided_by == "inputs" and result.reasons[0].startswith("claim_amount of 60,000")
    assert "away from approve" in result.reasons[0]


def test_a_review_sent_by_the_draw_is_explained_as_the_draw_with_no_reason(claims):
    small = {**CLAIM, "claim_amount": 1_000.0}
    sent = decided(claims, small, seed=14)  # seed 14 draws 0.107: approvals go to review
    assert sent.outputs["decision"] == "review" and sent.outputs["score"] > 0.8
    result = explanation_of(CLAIMS, sent, claims, claim_reference())
    assert result.decided_by == "random draw" and result.reasons == [] and result.protected == []
    assert "random draw decided review" in result.summary and "seed 14" in result.summary
    assert result.other_seeds["approve"] > result.other_seeds.get("review", 0)


def test_a_denial_whose_draw_blocks_approval_for_everyone_says_so(claims):
    denied = decided(claims, CLAIM, seed=14)
    assert denied.outputs["decision"] == "deny"
    result = explanation_of(CLAIMS, denied, claims, claim_reference())
    assert result.decided_by == "random draw" and result.reasons == []
    assert result.other_seeds == {"deny": 20}
    assert "Under seed 14 a seeded random draw keeps every mix" in result.summary


def test_a_rule_that_decides_whatever_the_inputs_is_named_and_odd_scores_never_crash(claims):
    fixed = InProcessPredictor(lambda row: {"decision": "deny", "score": "n/a", "draw": 0.5})
    decision = decided(fixed, CLAIM, seed=11)
    result = explanation_of(CLAIMS, decision, fixed, claim_reference())
    assert result.decided_by == "rule" and result.score is None and result.reasons == []
    assert "No input accounts for deny" in result.summary
    with pytest.raises(BadInput, match="at least one reference row"):
        explanation_of(CLAIMS, decision, fixed, [])


def test_a_sweep_with_null_scores_is_valid_json(claims):
    import json

    decision = decided(claims, CLAIM, seed=11)
    result = sweep_of(CLAIMS, decision, [Range("claim_amount", 45_000, 55_000, 3)], claims)
    rows = json.loads(json.dumps(result.to_dict(), allow_nan=False))["rows"]
    assert [row["score"] is None for row in rows] == [False, False, True]


def test_in_process_answers_come_back_as_a_container_sends_them():
    predictor = InProcessPredictor(lambda row: {"decision": "ok", "pair": (1, 2.5)})
    assert predictor.predict({}, 0) == {"decision": "ok", "pair": [1, 2.5]}


@pytest.mark.parametrize("score", ["as decided", "n/a"])
@pytest.mark.parametrize("features", [1, 2])
def test_sweep_plots_draw_null_or_non_numeric_scores(claims, tmp_path, score, features):
    predictor = (
        claims
        if score == "as decided"
        else InProcessPredictor(lambda row: {**triage(row), "score": "n/a"})
    )
    referred = decided(predictor, {**CLAIM, "claim_amount": 60_000.0}, seed=11)
    ranges = [Range("claim_amount", 0, 60_000, 13), Range("age", 18, 80, 4)][:features]
    swept = sweep_of(CLAIMS, referred, ranges, predictor, allow_immutable=True)
    path = swept.plot(tmp_path / "sweep.png")
    assert path.read_bytes().startswith(b"\x89PNG")


def test_decisions_with_their_own_seeds_are_answered_in_one_batch_as_singly(claims):
    rows = [
        {"claim_amount": amount, "region": region, "age": 40}
        for amount, region in ((1000, "north"), (60_000, "south"), (1000, "north"), (9000, "east"))
    ]
    seeds = [4, 5, 6, 4]
    singles = [claims.predict(row, seed) for row, seed in zip(rows, seeds, strict=True)]
    assert claims.predict_each(rows, seeds) == singles
    assert singles[0]["draw"] == singles[3]["draw"] != singles[2]["draw"]  # seeds, not rows

    class OldImage(InProcessPredictor):
        """An image whose runner predates a seed per batch row: one request per row."""

        seeds_per_row = False
        requests = 0

        def answer(self, request):
            OldImage.requests += 1
            assert "seeds" not in request
            return super().answer(request)

    assert OldImage(triage).predict_each(rows, seeds) == singles
    assert OldImage.requests == len(rows)
    with pytest.raises(BadInput, match="4 rows need 4 seeds, not 3"):
        claims.predict_each(rows, seeds[:3])


# --- the exact-batch rule ----------------------------------------------------------------


def bumped_batch(rows: list) -> list:
    """A batch path whose arithmetic depends on the batch's size (the last bit moves)."""
    return [
        {**credit_predict(row), "score": math.nextafter(credit_score(row), math.inf)}
        if len(rows) > 1
        else credit_predict(row)
        for row in rows
    ]


def test_a_batch_answers_each_row_as_alone_unless_declared_exact():
    decision = decided(InProcessPredictor(credit_predict), APPLICANT)
    exact = InProcessPredictor(credit_predict, bumped_batch)
    assert exact.batch_difference([APPLICANT, APPLICANT], 7) == (
        f"reference row 1 gets score {credit_score(APPLICANT)!r} alone, "
        f"{math.nextafter(credit_score(APPLICANT), math.inf)!r} in a batch of 2"
    )
    same = sweep_of(CREDIT, decision, [Range("income", 42_000, 42_000, 5)], exact)
    assert same.frame["score"].tolist() == [decision.outputs["score"]] * 5
    trusting = InProcessPredictor(credit_predict, bumped_batch, batch_exact=True)
    differs = sweep_of(CREDIT, decision, [Range("income", 42_000, 42_000, 5)], trusting)
    assert differs.frame["score"].tolist() != [decision.outputs["score"]] * 5


@pytest.mark.parametrize(
    "difference",
    [None, "reference row 3 gets score 0.25 alone, 0.25000000000000006 in a batch of 64"],
)
def test_a_warm_container_checks_declared_exact_batches_on_its_own_machine(difference):
    from types import SimpleNamespace

    from replay.errors import ReplayWarning
    from replay.execution.warm import WarmDeployment

    warm = WarmDeployment.__new__(WarmDeployment)  # the rule alone: no engine here
    warm.manifest = SimpleNamespace(
        runtime=SimpleNamespace(batch_exact=True, seed=4), short_id="abc123abc123"
    )
    warm._batch_checked, warm._batch_difference = False, None
    checks = []
    warm.reference_rows = lambda limit: [{"x": 1}] * limit
    warm.batch_difference = lambda rows, seed: checks.append((len(rows), seed)) or difference
    if difference is None:
        assert warm.batch_exact and warm.batch_note is None
    else:
        with pytest.warns(ReplayWarning, match="declares batch_exact, but on this machine"):
            assert not warm.batch_exact
        assert warm.batch_note.endswith("in a batch of 64: rows are answered one by one")
    assert warm.batch_exact == (difference is None)  # checked once, remembered
    assert checks == [(64, 4)]
    warm.manifest.runtime.batch_exact = False
    assert not warm.batch_exact  # never batched unless declared


def test_a_batch_of_long_texts_is_sent_in_parts_and_answered_as_one(monkeypatch):
    import replay.execution.predictor as predictor_module

    monkeypatch.setattr(predictor_module, "BATCH_CHARACTERS", 1_000)
    parts = []

    def predict_batch(rows):
        parts.append([row["x"] for row in rows])
        return [{"length": len(row["text"]), "x": row["x"]} for row in rows]

    exact = InProcessPredictor(lambda row: predict_batch([row])[0], predict_batch, batch_exact=True)
    rows = [{"text": "w" * (50 * i), "x": i} for i in range(20)]  # 9,500 characters of text
    answers = exact.predict_each(rows, list(range(20)))
    assert answers == [{"length": 50 * i, "x": i} for i in range(20)]
    assert [x for part in parts for x in part] == list(range(20))  # in order, each once
    for part in parts:  # within the budget (24 characters a number), or a row alone
        assert len(part) == 1 or sum(50 * x + 24 for x in part) <= 1_000
    assert len(parts) >= 10
    parts.clear()
    assert exact.predict_batch([{"text": "", "x": i} for i in range(20)], 0)[-1]["x"] == 19
    assert len(parts) == 1  # short rows: one request


def test_a_batch_of_numbers_is_cut_into_equal_parts_within_the_budget(monkeypatch):
    import replay.execution.predictor as predictor_module

    monkeypatch.setattr(predictor_module, "BATCH_CHARACTERS", 24 * 2 * 10)  # 10 rows of 2
    parts = []

    def predict_batch(rows):
        parts.append(len(rows))
        return [{"sum": row["a"] + row["b"] + row["c"]} for row in rows]

    exact = InProcessPredictor(lambda row: predict_batch([row])[0], predict_batch, batch_exact=True)
    a, b = [float(i) for i in range(35)], [100.0 * i for i in range(35)]
    answer = exact.predict_columns({"a": a, "b": b}, 0, shared={"c": 0.5})
    assert parts == [10, 10, 10, 5]  # the shared field is sent once, not counted
    assert answer == {"sum": [x + y + 0.5 for x, y in zip(a, b, strict=True)]}
    parts.clear()
    assert exact.predict_columns({"a": [], "b": []}, 0) == {}
    assert parts == []


def test_parts_joined_keep_their_type_unless_they_differ():
    import numpy as np

    from replay.execution.predictor import _joined

    joined = _joined([np.array([0.5, 1.5]), np.array([2.5])])
    assert joined.dtype == np.float64 and joined.tolist() == [0.5, 1.5, 2.5]
    assert _joined([np.array([True]), np.array([2])]) == [True, 2]  # not 1
    assert _joined([np.array([True]), [None]]) == [True, None]


def test_a_swept_axis_beyond_64_bits_stays_a_list():
    from replay.questions.sweeps import _array

    assert _array([0, 2**63]) == [0, 2**63]
    assert _array([1.0, 2]) == [1.0, 2]  # mixed: as given
    assert _array([0, 2**63 - 1]).dtype == "int64"


@pytest.mark.parametrize("sizes", [[3], [2, 3], [1, 4, 2], [3, 0]])
def test_a_grid_is_every_combination_in_product_order(sizes):
    import numpy as np

    axes = [[f"{axis}{i}" for i in range(size)] for axis, size in enumerate(sizes)]
    expected = [list(column) for column in zip(*itertools.product(*axes), strict=True)]
    assert grid_columns(axes) == (expected or [[] for _ in axes])
    numbers = [[10 * axis + i for i in range(size)] for axis, size in enumerate(sizes)]
    expected = [list(column) for column in zip(*itertools.product(*numbers), strict=True)]
    arrays = grid_columns([np.array(axis, dtype=np.int64) for axis in numbers])
    assert [column.tolist() for column in arrays] == (expected or [[] for _ in axes])


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_a_sweep_or_what_if_answered_with_nan_is_the_deployments_error(claims, bad):
    predictor = InProcessPredictor(
        lambda row: {**triage(row), "score": bad if row["claim_amount"] > 30_000 else 0.5}
    )
    referred = decided(claims, {**CLAIM, "claim_amount": 1_000.0}, seed=11)
    with pytest.raises(PredictionError, match="output field 'score' holds a non-finite"):
        sweep_of(CLAIMS, referred, [Range("claim_amount", 0, 60_000, 13)], predictor)
    with pytest.raises(PredictionError, match="output field 'score' holds a non-finite"):
        whatif_of(CLAIMS, referred, {"claim_amount": 50_000}, predictor)
    assert (
        whatif_of(CLAIMS, referred, {"claim_amount": 2_000}, predictor).modified_outputs["score"]
        == 0.5
    )
