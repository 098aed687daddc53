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


@pytest.fixture(scope="module")
def in_process(workspace, captured):
    """The credit deployment's own code and model file, loaded here as the runner loads
    them in the image (one BLAS/OpenMP thread, as the manifest pins)."""
    from threadpoolctl import threadpool_limits

    sys.path.insert(0, str(workspace))
    try:
        with threadpool_limits(captured.runtime.threads):
            yield InProcessPredictor.from_entrypoint(
                captured.entrypoint, str(workspace), captured.runtime.seed
            )
    finally:
        sys.path.remove(str(workspace))
        for name in [m for m in sys.modules if m == "credit" or m.startswith("credit.")]:
            del sys.modules[name]


@pytest.fixture(scope="module")
def decision(rejected, warm):
    import replay

    return Decision.from_entry(replay.show_transaction(rejected), warm.manifest)


def test_the_decision_itself(decision, warm, in_process):
    assert in_process.predict(decision.inputs, decision.seed) == decision.outputs
    assert warm.predict(decision.inputs, decision.seed) == decision.outputs


def test_what_if(decision, warm, in_process):
    schema, changes = warm.manifest.schema, {"income": 120_000.0, "late_payments": 0}
    container = whatif_of(schema, decision, changes, warm)
    assert whatif_of(schema, decision, changes, in_process) == container


def test_sweep(decision, warm, in_process):
    schema = warm.manifest.schema
    ranges = [Range("income", 10_000, 200_000, 40), Range("debt", 0, 50_000, 25)]
    container = sweep_of(schema, decision, ranges, warm)
    assert sweep_of(schema, decision, ranges, in_process).frame.equals(container.frame)


def test_counterfactuals(decision, warm, in_process):
    schema, reference = warm.manifest.schema, warm.reference_rows(300)
    container = counterfactuals_of(schema, decision, warm, reference, n=3)
    assert container.options
    assert counterfactuals_of(schema, decision, in_process, reference, n=3) == container


def test_explanation(decision, warm, in_process):
    schema, reference = warm.manifest.schema, warm.reference_rows(30)
    container = explanation_of(schema, decision, warm, reference)
    assert explanation_of(schema, decision, in_process, reference) == container
