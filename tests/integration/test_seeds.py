"""Seeds mean what the manifest says: `load()` runs after the manifest's seed, and a
decision logged without a seed of its own replays with the manifest's seed."""

from __future__ import annotations

import random

import pytest

pytestmark = pytest.mark.integration

INPUTS = {"x": 1.25, "group": "a"}


def expected_outputs(manifest_seed: int, request_seed: int) -> dict:
    """What the seeded deployment must answer: weights from the manifest's seed, the
    noise from the request's."""
    loading = random.Random(manifest_seed)
    weights = [loading.gauss(0, 1) for _ in range(2)]
    score = weights[0] * INPUTS["x"] + weights[1]
    return {
        "decision": "yes" if score > 0 else "no",
        "score": score,
        "noise": random.Random(request_seed).random(),
    }


def test_load_draws_with_the_manifest_seed_in_every_container(seeded):
    from replay.execution.warm import WarmDeployment

    assert seeded.runtime.seed == 4242
    with WarmDeployment(seeded.manifest_id, containers=2) as warm:
        answers = [warm.predict(INPUTS, 7) for _ in range(4)]  # both containers answer
    assert answers == [expected_outputs(4242, 7)] * 4


def test_a_decision_logged_without_a_seed_replays_with_the_manifest_seed(seeded):
    import replay

    outputs = expected_outputs(4242, 4242)
    entry = replay.record_decision(seeded.manifest_id, INPUTS, outputs)
    assert entry.seed is None
    result = replay.replay(entry.txn_id)
    assert result.verdict == "reproduced", result
    assert result.replayed == outputs
    assert replay.show_transaction(result.record_txn).seed == 4242  # the seed it ran with


def test_a_question_about_an_unseeded_decision_uses_the_manifest_seed(seeded):
    import replay

    outputs = expected_outputs(4242, 4242)
    entry = replay.record_decision(seeded.manifest_id, INPUTS, outputs)
    answer = replay.whatif(entry.txn_id, {"group": "b"})
    assert answer.modified_outputs["noise"] == outputs["noise"]
