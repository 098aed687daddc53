"""Reason codes computed from the original container."""

from __future__ import annotations

import json
import math

import pytest

from tests.integration.conftest import run_cli

pytestmark = pytest.mark.integration


def test_shapley_contributions_add_up_for_the_decision_and_the_score(rejected, warm):
    import replay

    result = replay.explain(rejected, warm=warm)
    to_score = sum(c.score for c in result.contributions)
    assert math.isclose(to_score, result.score - result.base_score, abs_tol=1e-12)
    to_decision = sum(c.decision for c in result.contributions)
    assert math.isclose(to_decision, 0 - result.base_rate, abs_tol=1e-12)  # rejected
    assert result.method == "exact Shapley" and result.decided_by == "inputs"
    assert sorted(result.features) == sorted(warm.manifest.schema.inputs)


def test_base_score_is_the_mean_reference_score(rejected, warm):
    import replay

    result = replay.explain(rejected, reference_rows=20, warm=warm)
    reference = warm.reference_rows(20)
    scores = [o["score"] for o in warm.predict_batch(reference, 0)]
    assert math.isclose(result.base_score, sum(scores) / len(scores), abs_tol=1e-12)


def test_reasons_name_mutable_features_that_moved_the_decision_away(rejected, warm):
    import replay

    result = replay.explain(rejected, warm=warm)
    adverse = {c.feature for c in result.contributions if c.decision <= -0.01}
    assert result.reasons
    for reason in result.reasons:
        assert reason.split(" of ")[0] in adverse - {"age"}
        assert "moved the decision away from approved" in reason


def test_explain_cli_json(rejected):
    result = run_cli("explain", rejected, "--reference-rows", "10", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["reference_rows"] == 10 and len(report["contributions"]) == 7
    assert report["decided_by"] == "inputs" and report["summary"].startswith("rejected")
