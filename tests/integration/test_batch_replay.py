"""Logged decisions replayed in batches: each row of a batch carries its own logged seed
(runner protocol 6), and a batch's answers equal the single requests' bit for bit, for
a model whose batch code takes seeds (credit) and one whose batch draws, so that the
runner answers it row by row (claims)."""

from __future__ import annotations

import pytest
from replay.manifests.canonical import canonical_json

pytestmark = pytest.mark.integration


def test_a_batch_answers_each_claim_as_its_single_request(claims_warm, claims_decided):
    entries = [entry for group in claims_decided.values() for entry in group][:150]
    rows, seeds = [e.inputs for e in entries], [e.seed for e in entries]
    assert claims_warm.seeds_per_row
    batched = claims_warm.predict_each(rows, seeds)
    singles = [claims_warm.predict(row, seed) for row, seed in zip(rows, seeds, strict=True)]
    assert canonical_json(batched) == canonical_json(singles)
    assert canonical_json(batched) == canonical_json([e.outputs for e in entries])


def test_a_batch_answers_each_served_decision_as_its_single_request(warm, served):
    from replay.ledger import open_ledger
    from replay.settings import load_settings

    ledger = open_ledger(load_settings())
    entries = [ledger.get(answer["transaction_id"]).readable() for answer in served]
    rows, seeds = [e.inputs for e in entries], [e.seed for e in entries]
    assert len(set(seeds)) > 1  # every served decision drew its own seed
    batched = warm.predict_each(rows, seeds)
    singles = [warm.predict(row, seed) for row, seed in zip(rows, seeds, strict=True)]
    assert canonical_json(batched) == canonical_json(singles)


def test_replay_all_sends_batches_and_reproduces_every_decision(claims_decided):
    import replay
    from replay.history.batch_replay import BATCH_ROWS

    entries = [entry for group in claims_decided.values() for entry in group]
    batches = []
    summary = replay.replay_many(
        txn_ids=[e.txn_id for e in entries],
        record=False,
        progress=lambda done, total: batches.append(done),
    )
    assert summary.all_reproduced, summary.counts
    assert len(summary.results) == len(entries)
    # one progress step per batch sent, not per decision
    assert len(batches) == -(-len(entries) // BATCH_ROWS)


def test_a_local_cluster_of_two_worker_processes(claims_decided):
    import replay

    entries = [entry for group in claims_decided.values() for entry in group][:60]
    summary = replay.replay_many(txn_ids=[e.txn_id for e in entries], record=False, workers=2)
    assert summary.workers == 2
    assert summary.counts == {"reproduced": 60, "diverged": 0, "failed": 0}


def test_a_scheduler_and_a_worker_started_apart_reached_by_address(claims_decided, tmp_path):
    import subprocess
    import sys
    import time
    from pathlib import Path

    import replay
    from tests.integration.conftest import free_port

    dask = str(Path(sys.executable).parent / "dask")
    address = f"tcp://127.0.0.1:{free_port()}"
    log = open(tmp_path / "dask.log", "w")  # noqa: SIM115 - the processes keep it open
    scheduler = subprocess.Popen(
        [dask, "scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1],
         "--no-dashboard"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    worker = subprocess.Popen(
        [dask, "worker", address, "--nthreads", "1", "--no-dashboard"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        entries = [entry for group in claims_decided.values() for entry in group][:40]
        deadline = time.monotonic() + 60
        while True:
            try:
                summary = replay.replay_many(
                    txn_ids=[e.txn_id for e in entries], record=False, scheduler=address
                )
                break
            except replay.errors.EnvironmentProblem:  # the scheduler or worker is starting
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
        assert summary.workers == 1
        assert summary.all_reproduced and summary.total == 40, summary.counts
    finally:
        for process in (worker, scheduler):
            process.terminate()
            process.wait(30)
        log.close()


def test_a_scheduler_without_workers_is_refused(claims_decided, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    import replay
    from replay.errors import EnvironmentProblem
    from tests.integration.conftest import free_port

    port = free_port()
    scheduler = subprocess.Popen(
        [str(Path(sys.executable).parent / "dask"), "scheduler", "--host", "127.0.0.1",
         "--port", str(port), "--no-dashboard"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        txn = claims_decided["deny"][0].txn_id
        with pytest.raises(EnvironmentProblem, match="has no workers"):
            for _ in range(30):  # until the scheduler listens
                try:
                    replay.replay_many(txn_ids=[txn], scheduler=f"tcp://127.0.0.1:{port}")
                except EnvironmentProblem as problem:
                    if "no Dask scheduler answers" not in str(problem):
                        raise
    finally:
        scheduler.terminate()
        scheduler.wait(30)


def test_an_unreachable_scheduler_is_one_line_and_writes_nothing(claims_decided):
    from replay.ledger import open_ledger
    from replay.settings import load_settings
    from tests.integration.conftest import free_port, run_cli

    ledger = open_ledger(load_settings())
    before = ledger.count(kind=None)
    address = f"tcp://127.0.0.1:{free_port()}"
    refused = run_cli("replay", "--all", "--scheduler", address)
    assert refused.returncode == 3
    budget = load_settings().connect_timeout  # REPLAY_CONNECT_TIMEOUT
    assert refused.stderr.strip() == (
        f"error: no Dask scheduler answers at {address} within {budget:g} s"
    )
    nothing = run_cli("replay", "--all", "--deployment", "nobody")
    assert nothing.returncode == 2
    assert nothing.stderr.strip() == "error: no logged decisions match: nothing to replay"
    assert ledger.count(kind=None) == before
