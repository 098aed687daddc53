"""Each question asked of the original container and of the same deployment loaded in
this process (`InProcessPredictor`) gives the same answer: the algorithms are the same
code, and only the predictor differs.

Same answer means equal decisions, text and structure, and numbers equal to within a
few ULPs: the same wheels computing a scikit-learn Pipeline's score one row at a time
were seen to differ in the last bit between this process and the image (on an AVX-512
machine, 122 of 840 scores by 1 ULP), while a whole batch agreed bit for bit.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from typing import Any

import pandas as pd
import pytest

from replay.execution.decision import Decision
from replay.execution.predictor import InProcessPredictor
from replay.questions.counterfactuals import counterfactuals_of
from replay.questions.explanations import explanation_of
from replay.questions.sweeps import Range, sweep_of
from replay.questions.what_if import whatif_of

pytestmark = pytest.mark.integration


# Per example: the logged decision asked about, a what-if and a sweep of it.
EXAMPLES = {
    "credit": (
        {"income": 120_000.0, "late_payments": 0},
        [Range("income", 10_000, 200_000, 40), Range("debt", 0, 50_000, 25)],
    ),
    "claims": (
        {"claim_amount": 3_000.0, "channel": "agent"},
        [Range("claim_amount", 500, 60_000, 40), Range("policy_years", 0, 20, 21)],
    ),
}


@pytest.fixture(scope="module", params=list(EXAMPLES))
def example(request):
    """The example's running container, its decision, and the same deployment's own
    code and model file loaded here as the runner loads them in the image (with the
    threads the manifest pins)."""
    from threadpoolctl import threadpool_limits

    import replay

    if request.param == "credit":
        workspace, warm = request.getfixturevalue("workspace"), request.getfixturevalue("warm")
        txn = request.getfixturevalue("rejected")
    else:
        workspace = request.getfixturevalue("claims_workspace")
        warm = request.getfixturevalue("claims_warm")
        txn = request.getfixturevalue("claims_decided")["deny"][0].txn_id
    manifest = warm.manifest
    decision = Decision.from_entry(replay.show_transaction(txn), manifest)
    package = manifest.entrypoint.split(".")[0]
    sys.path.insert(0, str(workspace))
    try:
        with threadpool_limits(manifest.runtime.threads):
            in_process = InProcessPredictor.from_entrypoint(
                manifest.entrypoint, str(workspace), manifest.runtime.seed
            )
            yield request.param, decision, warm, in_process
    finally:
        sys.path.remove(str(workspace))
        for name in [m for m in sys.modules if m == package or m.startswith(f"{package}.")]:
            del sys.modules[name]


def same(mine: Any, theirs: Any) -> bool:
    """Equal but for the last bits of floats."""
    if dataclasses.is_dataclass(mine) and type(mine) is type(theirs):
        return same(dataclasses.astuple(mine), dataclasses.astuple(theirs))
    if isinstance(mine, float) and isinstance(theirs, float):
        return math.isclose(mine, theirs, rel_tol=1e-12, abs_tol=1e-12)
    if isinstance(mine, list | tuple) and isinstance(theirs, list | tuple):
        return len(mine) == len(theirs) and all(map(same, mine, theirs))
    if isinstance(mine, dict) and isinstance(theirs, dict):
        return mine.keys() == theirs.keys() and all(same(mine[k], theirs[k]) for k in mine)
    return bool(mine == theirs)


def test_the_decision_itself(example):
    _, decision, warm, in_process = example
    assert same(in_process.predict(decision.inputs, decision.seed), decision.outputs)
    assert warm.predict(decision.inputs, decision.seed) == decision.outputs


def test_what_if(example):
    name, decision, warm, in_process = example
    schema, changes = warm.manifest.schema, EXAMPLES[name][0]
    container = whatif_of(schema, decision, changes, warm)
    assert same(whatif_of(schema, decision, changes, in_process), container)


def test_sweep(example):
    name, decision, warm, in_process = example
    schema, ranges = warm.manifest.schema, EXAMPLES[name][1]
    container = sweep_of(schema, decision, ranges, warm).frame
    mine = sweep_of(schema, decision, ranges, in_process).frame
    pd.testing.assert_frame_equal(mine, container, check_exact=False, rtol=1e-12, atol=1e-12)


def test_counterfactuals(example):
    _, decision, warm, in_process = example
    schema, reference = warm.manifest.schema, warm.reference_rows(300)
    container = counterfactuals_of(schema, decision, warm, reference, n=3)
    assert container.options
    assert same(counterfactuals_of(schema, decision, in_process, reference, n=3), container)


def test_explanation(example):
    _, decision, warm, in_process = example
    schema, reference = warm.manifest.schema, warm.reference_rows(30)
    container = explanation_of(schema, decision, warm, reference)
    assert same(explanation_of(schema, decision, in_process, reference), container)
