"""The exact-batch rule in real containers: a deployment whose batch arithmetic differs
from its single-row arithmetic (here by one bit whenever a batch holds several rows, as
a BLAS kernel chosen by shape and CPU can make it) still replays every decision made
alone as `reproduced`, and its sweeps agree with its what-ifs; declaring `batch_exact`
for it fails the build, naming the row."""

from __future__ import annotations

import pytest
from conftest import committed_fixture, fixture_deployment

pytestmark = pytest.mark.integration

ROWS = [{"x": x} for x in (0.7, 1.0, 3.3, 3.5, 3.5, 5.1, 6.9, 99.0)]


@pytest.fixture(scope="module")
def batchy(registry, tmp_path_factory):
    return fixture_deployment("batchy", tmp_path_factory)


@pytest.fixture(scope="module")
def batchy_warm(batchy):
    from replay.execution.warm import WarmDeployment

    with WarmDeployment(batchy.manifest_id) as warm:
        yield warm


def test_decisions_made_alone_replay_in_batches_bit_for_bit(batchy_warm):
    import replay
    from replay.ledger.decisions import record_decision

    assert not batchy_warm.batch_exact  # not declared: rows are answered alone
    entries = [
        record_decision(
            batchy_warm.manifest.manifest_id, row, batchy_warm.predict(row, seed), seed=seed
        )
        for seed, row in enumerate(ROWS)
    ]
    summary = replay.replay_many(txn_ids=[entry.txn_id for entry in entries], record=False)
    assert summary.counts == {"reproduced": len(ROWS), "diverged": 0, "failed": 0}


def test_identical_sweep_rows_get_the_single_answer(batchy_warm):
    single = batchy_warm.predict({"x": 3.3}, 5)
    swept = batchy_warm.predict_columns({"x": [3.3] * 5}, 5)
    assert swept["score"] == [single["score"]] * 5
    # the deployment's own batch path really is another computation
    assert batchy_warm.batch_difference([{"x": 3.3}, {"x": 3.3}], 5) is not None


def test_declaring_batch_exact_falsely_fails_the_build(registry, tmp_path_factory):
    from replay.images.build import find_image
    from replay.images.engine import docker_client

    import replay
    from replay.errors import BadInput
    from replay.settings import load_settings

    folder = committed_fixture(
        "batchy",
        tmp_path_factory,
        edits=[("replay.yaml", "seeds: {global: 3}", "seeds: {global: 3}\nbatch_exact: true")],
    )
    manifest = replay.capture(folder)
    assert manifest.runtime.batch_exact
    with pytest.raises(BadInput, match=r"declares batch_exact, but reference row 1 gets score"):
        replay.build(manifest.manifest_id)
    # nothing unproven is left behind
    assert find_image(docker_client(load_settings().docker_host), manifest.manifest_id) is None


def test_a_declared_exact_deployment_batches_after_checking(fraud_warm):
    assert fraud_warm.manifest.runtime.batch_exact
    assert fraud_warm.batch_exact  # checked on its reference rows on this machine
    assert fraud_warm.batch_note is None
    rows = fraud_warm.reference_rows(20)
    batched = fraud_warm.predict_batch(rows, 11)
    assert batched == [fraud_warm.predict(row, 11) for row in rows]
