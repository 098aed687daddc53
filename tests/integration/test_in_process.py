"""Each question asked of the original container and of the same deployment loaded in
this process (`InProcessPredictor`) gives the same answer: the algorithms are the same
code, and only the predictor differs."""

from __future__ import annotations

import sys

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


def test_the_decision_itself(example):
    _, decision, warm, in_process = example
    assert in_process.predict(decision.inputs, decision.seed) == decision.outputs
    assert warm.predict(decision.inputs, decision.seed) == decision.outputs


def test_what_if(example):
    name, decision, warm, in_process = example
    schema, changes = warm.manifest.schema, EXAMPLES[name][0]
    container = whatif_of(schema, decision, changes, warm)
    assert whatif_of(schema, decision, changes, in_process) == container


def test_sweep(example):
    name, decision, warm, in_process = example
    schema, ranges = warm.manifest.schema, EXAMPLES[name][1]
    container = sweep_of(schema, decision, ranges, warm)
    assert sweep_of(schema, decision, ranges, in_process).frame.equals(container.frame)


def test_counterfactuals(example):
    _, decision, warm, in_process = example
    schema, reference = warm.manifest.schema, warm.reference_rows(300)
    container = counterfactuals_of(schema, decision, warm, reference, n=3)
    assert container.options
    assert counterfactuals_of(schema, decision, in_process, reference, n=3) == container


def test_explanation(example):
    _, decision, warm, in_process = example
    schema, reference = warm.manifest.schema, warm.reference_rows(30)
    container = explanation_of(schema, decision, warm, reference)
    assert explanation_of(schema, decision, in_process, reference) == container
