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


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            (
                "seeded/model.py",
                "def load(model_dir: str) -> None:\n",
                "def load(model_dir: str) -> None:\n    raise ValueError('weights are corrupt')\n",
            ),
            "the deployment failed to load: ValueError: weights are corrupt",
        ),
        (
            ("seeded/model.py", '"score": score,', '"score": str(score),'),
            "the deployment's outputs break its schema: score must be a number",
        ),
    ],
)
def test_a_broken_deployment_fails_at_build_as_the_users_error(
    registry, engine, tmp_path_factory, edit, message
):
    from replay.images.build import find_image

    import replay
    from tests.integration.conftest import committed_fixture, run_cli

    manifest = replay.capture(committed_fixture("seeded", tmp_path_factory, [edit]))
    result = run_cli("build", manifest.manifest_id)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: {message}")
    assert find_image(engine, manifest.manifest_id) is None  # no unproven image is kept


def test_outputs_that_break_the_schema_are_refused_at_serve_and_fail_a_replay(
    registry, tmp_path_factory, tokens
):
    from fastapi.testclient import TestClient

    import replay
    from replay.execution.warm import WarmDeployment
    from replay.ledger import open_ledger
    from replay.settings import load_settings
    from replay.web.serving import create_app
    from tests.integration.conftest import committed_fixture

    edit = ("seeded/model.py", '"score": score,', '"score": score if inputs["x"] < 5 else "high",')
    manifest = replay.capture(committed_fixture("seeded", tmp_path_factory, [edit]))
    replay.build(manifest.manifest_id)  # the reference row it is proven on has x = 1.5
    ledger = open_ledger()
    before = len(ledger.list(kind=None))
    decide = tokens["decide"]
    with WarmDeployment(manifest.manifest_id) as warm:
        client = TestClient(create_app(warm, load_settings()))
        good = client.post("/decisions", headers=decide, json={"inputs": {"x": 1.0, "group": "a"}})
        bad = client.post("/decisions", headers=decide, json={"inputs": {"x": 9.0, "group": "a"}})
        outputs = warm.predict({"x": 9.0, "group": "b"}, 3)
    assert good.status_code == 200
    assert bad.status_code == 502
    assert "outputs break its schema: score must be a number" in bad.json()["detail"]
    assert len(ledger.list(kind=None)) == before + 1  # only the good decision was logged

    entry = replay.record_decision(manifest.manifest_id, {"x": 9.0, "group": "b"}, outputs, seed=3)
    result = replay.replay(entry.txn_id)
    assert result.verdict == "failed"
    assert "the replayed outputs break the schema: score must be a number" in result.error
