"""Reason codes computed from the original container."""

from __future__ import annotations

import json
import math

import pytest

from tests.integration.conftest import run_cli

pytestmark = pytest.mark.integration


def test_shapley_contributions_add_up_to_the_score_difference(rejected, warm):
    import replay

    result = replay.explain(rejected, warm=warm)
    total = sum(c.contribution for c in result.contributions)
    assert math.isclose(total, result.score - result.base_score, abs_tol=1e-12)
    assert result.method == "exact Shapley"
    assert sorted(result.features) == sorted(warm.manifest.schema.inputs)


def test_base_score_is_the_mean_reference_score(rejected, warm):
    import replay

    result = replay.explain(rejected, reference_rows=20, warm=warm)
    reference = warm.reference_rows(20)
    scores = [o["score"] for o in warm.predict_batch(reference, 0)]
    assert math.isclose(result.base_score, sum(scores) / len(scores), abs_tol=1e-12)


def test_reasons_name_features_that_lowered_the_score(rejected, warm):
    import replay

    result = replay.explain(rejected, warm=warm)
    adverse = {c.feature for c in result.contributions if c.contribution < 0}
    assert result.reasons
    for reason in result.reasons:
        assert reason.split(" of ")[0] in adverse and "lowered the score by" in reason


def test_explain_cli_json(rejected):
    result = run_cli("explain", rejected, "--reference-rows", "10", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["reference_rows"] == 10 and len(report["contributions"]) == 7
