"""Serve → ledger → replay, on the real engine; the sandbox; refusing a forged image."""

from __future__ import annotations

import contextlib
import json
import random
import sqlite3
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from replay.errors import IntegrityError
from tests.integration.conftest import REPLAY, run_cli

pytestmark = pytest.mark.integration


def test_served_decisions_are_logged_with_their_inputs(served, captured, workspace):
    import replay

    entries = {e.txn_id: e for e in replay.list_transactions(deployment=captured.name)}
    for answer in served:
        entry = entries[answer["transaction_id"]]
        assert entry.outputs == answer["outputs"]
        assert entry.manifest_id == captured.manifest_id
        assert entry.subject.startswith("s_") and "applicant" not in entry.subject
    assert {a["decision"] for a in served} == {"approved", "rejected"}
    mine = replay.list_transactions(subject="applicant-3")
    assert [e.txn_id for e in mine] == [served[3]["transaction_id"]]
    assert replay.verify_ledger().ok


def test_bad_applications_are_refused_and_not_logged(server, tokens):
    import replay

    before = len(replay.list_transactions())
    response = httpx.post(
        f"{server}/decisions", headers=tokens["decide"], json={"inputs": {"income": "lots"}}
    )
    assert response.status_code == 422
    assert len(replay.list_transactions()) == before


def test_twenty_random_decisions_reproduce_bit_for_bit(served):
    import replay

    sample = random.Random(5).sample([a["transaction_id"] for a in served], 20)
    summary = replay.replay_many(txn_ids=sample)
    assert summary.counts == {"reproduced": 20, "diverged": 0, "failed": 0}
    for result in summary.results:
        assert result.recovery == "local"
        assert json.dumps(result.replayed, sort_keys=True) == json.dumps(
            result.logged, sort_keys=True
        )
        audit = replay.show_transaction(result.record_txn)
        assert audit.kind == "replay" and audit.refers_to == result.txn_id
        assert audit.outputs["verdict"] == "reproduced"


def test_replay_command_prints_the_verdict(served):
    rejected = next(a for a in served if a["decision"] == "rejected")
    result = run_cli("replay", rejected["transaction_id"], "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["verdict"] == "reproduced" and report["differences"] == []


def test_a_changed_logged_output_is_diverged_with_ulps(served, captured):
    from replay.ledger import open_ledger
    from replay.ledger.chain import NewEntry

    original = served[0]
    entry = open_ledger().get(original["transaction_id"])
    score = entry.outputs["score"]
    nudged = {**entry.outputs, "score": float.fromhex((score).hex()) + 2e-16}
    forged = open_ledger().record(
        NewEntry(
            manifest_id=entry.manifest_id,
            deployment=entry.deployment,
            inputs=entry.inputs,
            outputs=nudged,
            seed=entry.seed,
            fingerprint=entry.fingerprint,
        )
    )
    result = run_cli("replay", forged.txn_id, "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["verdict"] == "diverged"
    [difference] = report["differences"]
    assert difference["field"] == "score" and difference["ulps"] >= 1


def test_replay_all_of_a_deployment_summarises(served, captured):
    result = run_cli("replay", "--all", "--deployment", captured.name, "--json")
    report = json.loads(result.stdout)
    served_ids = {answer["transaction_id"] for answer in served}
    assert report["counts"]["reproduced"] >= len(served_ids)
    # only what did not reproduce is listed: none of the served decisions
    not_reproduced = {item["txn_id"] for item in report["results"]}
    assert all(item["verdict"] != "reproduced" for item in report["results"])
    assert not served_ids & not_reproduced
    # the one forged entry (see the divergence test) may be among them: exit 1 then
    assert result.returncode == (0 if report["counts"]["diverged"] == 0 else 1)


def test_unknown_transaction_is_one_line_exit_2(replay_env):
    result = run_cli("replay", "txn_does_not_exist")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no transaction txn_does_not_exist" in lines[0]


def test_a_changed_ledger_row_is_named(served, replay_env, tmp_path):
    from replay.settings import load_settings

    copy = tmp_path / "ledger.db"
    source = sqlite3.connect(load_settings().ledger)
    with sqlite3.connect(copy) as target:
        source.backup(target)
    target = sqlite3.connect(copy)
    target.execute("DROP TRIGGER entries_no_update")
    seq = target.execute("SELECT seq FROM entries ORDER BY seq LIMIT 1 OFFSET 7").fetchone()[0]
    outputs = target.execute("SELECT outputs FROM entries WHERE seq = ?", [seq]).fetchone()[0]
    # sealed (the decision has a subject) or not, one character of what the hash covers
    one_byte = outputs[:-2] + chr(ord(outputs[-2]) ^ 1) + outputs[-1]
    target.execute("UPDATE entries SET outputs = ? WHERE seq = ?", [one_byte, seq])
    target.commit()
    result = run_cli("ledger", "verify", env={"REPLAY_LEDGER": str(copy)})
    assert result.returncode == 4
    assert result.stderr.strip() == f"error: ledger entry {seq} was changed after it was written"
    assert run_cli("ledger", "verify").returncode == 0  # the real ledger is untouched


def test_a_forged_image_with_another_model_is_refused(spare, engine, tmp_path):
    import replay
    from replay.execution.warm import WarmDeployment

    manifest, built = spare
    (tmp_path / "model.joblib").write_bytes(b"not the model that decided")
    (tmp_path / "Dockerfile").write_text(
        f"FROM {built.image_id}\nCOPY model.joblib /opt/deployment/model/model/model.joblib\n"
    )
    forged, _ = engine.images.build(path=str(tmp_path), network_mode="none", rm=True)
    for tag in engine.images.get(built.image_id).tags:  # only the forgery is found by label now
        engine.images.remove(tag)
    try:
        with pytest.raises(IntegrityError, match="refused"):
            WarmDeployment(manifest.manifest_id)
    finally:
        engine.images.remove(forged.id, force=True)
        assert replay.build(manifest.manifest_id).fingerprint_id == built.fingerprint_id


@contextlib.contextmanager
def record_no_build_can_match(manifest):
    """A build record signed with the ledger's key whose fingerprint no build gives (as
    if the build had changed since), the genuine one put back after."""
    from dataclasses import replace

    from replay.manifests.canonical import document_id

    from replay.settings import load_settings
    from replay.stores.keys import signing_key
    from replay.stores.manifests import manifest_store

    store = manifest_store(load_settings())
    cached = store.cache_dir / manifest.manifest_id / "build.json"
    genuine = cached.read_text()
    record = store.build_record(manifest.manifest_id)
    fingerprint = json.loads(json.dumps(record.fingerprint))
    fingerprint["distributions"]["numpy"] = "0.0.0"
    changed = replace(record, fingerprint=fingerprint, fingerprint_id=document_id(fingerprint))
    signature = signing_key(load_settings().key_folder).sign(changed.statement()).hex()
    cached.write_text(json.dumps(replace(changed, signature=signature).__dict__))
    try:
        yield
    finally:
        cached.write_text(genuine)


def test_a_rebuild_that_differs_from_the_record_is_refused(spare, engine):
    """A build whose image does not match the record: refused and removed."""
    from replay.images.build import find_image

    import replay

    manifest, _ = spare
    engine.images.remove(replay.build(manifest.manifest_id).image_id, force=True)
    try:
        with (
            record_no_build_can_match(manifest),
            pytest.raises(IntegrityError, match="differs from the fingerprint recorded"),
        ):
            replay.build(manifest.manifest_id)
        assert find_image(engine, manifest.manifest_id) is None  # the rebuild was removed
    finally:
        replay.build(manifest.manifest_id)


def test_a_failed_rebuild_leaves_the_proven_image_in_the_engine(spare, engine):
    """`--rebuild` makes the very image the engine holds (the same id): when the rebuild
    then fails (here its proof, against a record it cannot match), the copy proven
    before stays, and the next build reuses it."""
    from replay.images.build import find_image

    import replay

    manifest, _ = spare
    proven = replay.build(manifest.manifest_id).image_id
    with (
        record_no_build_can_match(manifest),
        pytest.raises(IntegrityError, match="differs from the fingerprint recorded"),
    ):
        replay.build(manifest.manifest_id, rebuild=True)
    kept = find_image(engine, manifest.manifest_id)
    assert kept is not None and kept.id == proven
    assert failure_of(manifest) is not None  # listed as failed, saying why
    again = replay.build(manifest.manifest_id)
    assert again.reused and again.image_id == proven
    assert failure_of(manifest) is None  # proven again: no longer listed as failed


def failure_of(manifest) -> str | None:
    """Why the manifest's latest build failed, as `replay deployments list` shows it."""
    from replay.settings import load_settings
    from replay.stores.manifests import manifest_store

    history = manifest_store(load_settings()).history(manifest.name)
    [record] = [found for found in history if found.manifest_id == manifest.manifest_id]
    return record.build_failure


def test_two_builds_of_one_manifest_at_once_make_it_once(spare, engine):
    """Two processes building one manifest at once (Dask's workers recovering the same
    image): the second, started while the first builds, waits for it and reuses the
    image it made."""
    from filelock import FileLock, Timeout

    import replay
    from replay.settings import load_settings

    manifest, _ = spare
    engine.images.remove(replay.build(manifest.manifest_id).image_id, force=True)
    lock = FileLock(load_settings().cache / "builds" / f"{manifest.manifest_id}.lock")
    command = [REPLAY, "build", manifest.manifest_id, "--json"]

    def start() -> subprocess.Popen:
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    builds = [start()]
    try:
        deadline = time.monotonic() + 60
        while True:  # until the first build holds the lock (a build then takes 30 s or more)
            assert time.monotonic() < deadline, "the first build never took the lock"
            try:
                with lock.acquire(timeout=0):
                    time.sleep(0.1)
            except Timeout:
                break
        builds.append(start())
        said = [build.communicate(timeout=900) for build in builds]
    finally:
        for build in builds:
            build.kill()
    assert [build.returncode for build in builds] == [0, 0], said
    first, second = (json.loads(out) for out, _ in said)
    assert (first["reused"], second["reused"]) == (False, True)
    assert first["image_id"] == second["image_id"]
    assert "waiting for another build" in said[1][1]


def hostile_answer(runner, action: str) -> dict:
    return runner.request({"inputs": {"action": action}, "seed": 1})


def test_the_sandbox_holds(hostile, engine):
    from replay.execution.warm import WarmDeployment

    with WarmDeployment(hostile.manifest_id) as warm:
        runner = warm._idle.get()
        assert hostile_answer(runner, "interfaces")["outputs"]["decision"] == "lo"
        network = hostile_answer(runner, "network")["error"]
        assert network["type"] in {"gaierror", "OSError", "TimeoutError"}
        write = hostile_answer(runner, "write")["error"]
        assert write["type"] == "OSError" and "Read-only file system" in write["message"]
        assert hostile_answer(runner, "tmp")["outputs"]["decision"] == "done"
        assert hostile_answer(runner, "print")["outputs"]["decision"] == "done"
        assert hostile_answer(runner, "exit")["error"]["type"] == "SystemExit"
        assert hostile_answer(runner, "ok")["outputs"]["decision"] == "done"
        fork = hostile_answer(runner, "fork")["error"]
        assert fork["type"] == "BlockingIOError"
        attrs = engine.containers.get(runner.container.id).attrs
        assert attrs["HostConfig"]["ReadonlyRootfs"] is True
        assert attrs["HostConfig"]["CapDrop"] == ["ALL"]
        assert attrs["Config"]["User"] == "10001:10001"
        warm._idle.put(runner)
    assert subprocess.run(["true"]).returncode == 0  # the host can still start processes
    assert not Path("/opt/deployment/planted.txt").exists()


def test_a_runner_that_never_ends_a_line_is_cut_off(hostile, engine, monkeypatch):
    """A deployment writing to the protocol's descriptor without end: the host holds
    at most MAX_LINE bytes of it (1 MiB here), then drops the container."""
    from replay.images import container as runner_container
    from replay.images.build import find_image
    from replay.images.container import RunnerContainer, RunnerFailed

    monkeypatch.setattr(runner_container, "MAX_LINE", 1 << 20)
    image = find_image(engine, hostile.manifest_id)
    runner = RunnerContainer(engine, image.id, hostile.entrypoint)
    runner.load(seed=0)
    with pytest.raises(RunnerFailed, match="over 1 MiB without ending a line"):
        hostile_answer(runner, "flood")
    assert len(runner._pending) <= 1 << 20
    assert runner.container.id not in [c.id for c in engine.containers.list(all=True)]


def test_a_hung_request_times_out_and_the_container_is_stopped(hostile, engine):
    from replay.images.build import find_image
    from replay.images.container import RunnerContainer, RunnerFailed, Sandbox

    image = find_image(engine, hostile.manifest_id)
    runner = RunnerContainer(engine, image.id, hostile.entrypoint, Sandbox(request_timeout=2))
    runner.load(seed=0)
    container_id = runner.container.id
    with pytest.raises(RunnerFailed, match="no answer within 2 s"):
        hostile_answer(runner, "sleep")
    assert container_id not in [c.id for c in engine.containers.list(all=True)]


def test_a_deployment_answering_nan_to_a_question_is_one_line(hostile):
    """NaN has no JSON and no meaning: a what-if whose answer holds one is the
    deployment's error in one line, not a result printed as NaN."""
    from replay.execution.warm import WarmDeployment
    from replay.ledger.decisions import record_decision

    with WarmDeployment(hostile.manifest_id) as warm:
        outputs = warm.predict({"action": "ok"}, 5)
    txn = record_decision(hostile.manifest_id, {"action": "ok"}, outputs, seed=5).txn_id
    result = run_cli("whatif", txn, "--set", "action=nan", "--json")
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    assert result.stderr.strip() == (
        "error: the deployment's outputs break its schema: "
        "output field 'score' holds a non-finite number"
    )
