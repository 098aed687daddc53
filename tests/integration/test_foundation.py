"""Capture → MLflow → build → fingerprint → verify, on the real components."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest
from replay.manifests.canonical import sha256_file

from replay.errors import BadInput, IntegrityError
from replay.stores import manifests as store_names
from tests.integration.conftest import run_cli

pytestmark = pytest.mark.integration


def mlflow_run(manifest_id: str):
    from mlflow.tracking import MlflowClient

    from replay.settings import load_settings

    client = MlflowClient(load_settings().tracking_uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, f"tags.`replay.manifest_id` = '{manifest_id}'")
    assert len(runs) == 1
    return client, runs[0]


def test_capture_freezes_the_deployment(captured, workspace):
    document = captured.document
    head = subprocess.run(
        ["git", "-C", str(workspace), "rev-parse", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert document["code"]["commit"] == head
    assert document["code"]["dirty"] is False
    model = workspace / "model" / "model.joblib"
    [entry] = document["model"]["files"]
    assert entry["sha256"] == sha256_file(model)
    assert entry["size"] == model.stat().st_size
    assert entry["dvc"]["md5"] == hashlib.md5(model.read_bytes()).hexdigest()
    assert entry["dvc"]["remote"] == "storage"
    assert document["image"]["base"].split("@sha256:")[0].endswith("/replay/python")
    assert "--hash=sha256:" in document["environment"]["lock"]
    assert {w["name"] for w in document["environment"]["wheels"]} >= {"scikit-learn", "numpy"}
    assert document["runtime"]["env"]["OMP_NUM_THREADS"] == "1"
    assert document["runtime"]["engine"]["version"]
    assert document["io"]["inputs"]["age"]["immutable"] is True
    assert document["reference"]["rows"] == 300


def test_mlflow_run_has_tags_and_artifacts(built, captured):
    client, run = mlflow_run(captured.manifest_id)
    tags = run.data.tags
    assert tags["mlflow.source.git.commit"] == captured.code.commit
    assert tags["replay.base_image"] == captured.image.base
    assert tags["replay.image_id"] == built.image_id
    names = {item.path for item in client.list_artifacts(run.info.run_id)}
    assert names >= {
        "manifest.json",
        "requirements.lock",
        "source.tar",
        "reference.csv",
        "fingerprint.json",
    }
    assert client.get_experiment(run.info.experiment_id).name == captured.name


def test_image_is_labelled_and_matches_its_fingerprint(built, captured, engine):
    from replay.images.build import fingerprint_id, image_fingerprint

    image = engine.images.get(built.image_id)
    assert image.labels["replay.manifest_id"] == captured.manifest_id
    assert image.attrs["Config"]["User"] == "10001:10001"
    fingerprint = image_fingerprint(engine, built.image_id)
    assert fingerprint_id(fingerprint) == built.fingerprint_id
    assert fingerprint["model_files"]["model/model.joblib"] == captured.model_files[0].sha256
    assert fingerprint["distributions"]["scikit-learn"] == "1.5.2"


def test_building_again_reuses_the_image(built, captured):
    import replay

    again = replay.build(captured.manifest_id[:12])
    assert again.reused and again.image_id == built.image_id


def test_history_lists_the_manifest(captured):
    result = run_cli("deployments", "list", captured.name, "--json")
    assert result.returncode == 0, result.stderr
    assert captured.manifest_id in [row["manifest_id"] for row in json.loads(result.stdout)]


def test_show_returns_the_stored_manifest(captured):
    result = run_cli("manifest", "show", captured.short_id, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["manifest"] == captured.document


def test_verify_passes_on_untouched_stores(built, captured):
    result = run_cli("manifest", "verify", captured.manifest_id)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "MISMATCH" not in result.stdout


def flip_one_byte(path: Path) -> bytes:
    original = path.read_bytes()
    changed = bytearray(original)
    changed[len(changed) // 2] ^= 0x01
    path.write_bytes(bytes(changed))
    return original


def dvc_remote_copy(captured) -> Path:
    md5 = captured.model_files[0].dvc.md5
    remote = Path(captured.model_files[0].dvc.remote_url)
    return remote / "files" / "md5" / md5[:2] / md5[2:]


@pytest.mark.parametrize("copy", ["work tree", "DVC remote"])
def test_verify_names_a_changed_model_file(built, captured, workspace, copy):
    in_work_tree = copy == "work tree"
    path = workspace / "model" / "model.joblib" if in_work_tree else dvc_remote_copy(captured)
    assert path.is_file()
    original = flip_one_byte(path)
    try:
        result = run_cli("manifest", "verify", captured.manifest_id)
    finally:
        path.write_bytes(original)
    assert result.returncode == 4
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "model file model/model.joblib" in lines[0] and copy in lines[0]


def test_verify_names_a_changed_stored_source_archive(built, captured, replay_env):
    _, run = mlflow_run(captured.manifest_id)
    artifacts = replay_env / "mlartifacts"
    [archive] = artifacts.rglob(f"{run.info.run_id}/**/{store_names.SOURCE_FILE}")
    original = flip_one_byte(archive)
    try:
        with pytest.raises(IntegrityError, match=r"source\.tar"):
            import replay

            replay.verify_manifest(captured.manifest_id).raise_for_mismatch()
    finally:
        archive.write_bytes(original)


def test_a_dirty_tree_is_refused_unless_allowed(captured, workspace):
    import replay

    code = workspace / "credit" / "model.py"
    original = code.read_text()
    code.write_text(original + "\n# an uncommitted change\n")
    try:
        result = run_cli("capture", str(workspace))
        assert result.returncode == 2
        assert "uncommitted changes" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        dirty = replay.capture(workspace, allow_dirty=True)
    finally:
        code.write_text(original)
    assert dirty.document["code"]["dirty"] is True
    assert dirty.document["code"]["archive_sha256"] != captured.document["code"]["archive_sha256"]


def test_an_unresolvable_base_image_is_bad_input(engine, registry):
    from replay.images.base import resolve_digest

    with pytest.raises(BadInput, match="neither in a reachable registry nor local"):
        resolve_digest(engine, f"{registry}/replay/no-such-image:1")


def test_a_named_base_image_resolves_to_its_registry_digest(engine, registry, captured):
    from replay.images.base import resolve_digest

    requested = captured.image.requested_base
    assert resolve_digest(engine, requested) == captured.image.base


def test_dead_docker_host_is_one_line_exit_3(captured, tmp_path):
    result = run_cli(
        "build", captured.manifest_id, env={"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"}
    )
    assert result.returncode == 3
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no Docker engine answers")
    assert "Traceback" not in result.stderr


def test_unknown_manifest_is_exit_2(replay_env):
    result = run_cli("manifest", "verify", "0123456789ab")
    assert result.returncode == 2
    assert result.stderr.startswith("error: no manifest 0123456789ab")


@pytest.mark.parametrize("damage", ["removed", "altered"])
def test_model_files_come_back_from_dvc_by_hash(captured, workspace, tmp_path, damage):
    from replay.stores.models import fetch_model_files

    model = workspace / "model" / "model.joblib"
    original = model.read_bytes()
    if damage == "removed":
        model.unlink()
    else:
        flip_one_byte(model)
    try:
        fetch_model_files(captured, tmp_path / "model-dir")
    finally:
        model.write_bytes(original)
    fetched = tmp_path / "model-dir" / "model" / "model.joblib"
    assert sha256_file(fetched) == captured.model_files[0].sha256


def test_no_good_copy_anywhere_is_an_integrity_error(captured, workspace, tmp_path):
    from replay.stores.models import fetch_model_files

    model, remote = workspace / "model" / "model.joblib", dvc_remote_copy(captured)
    originals = {path: flip_one_byte(path) for path in (model, remote)}
    try:
        with pytest.raises(IntegrityError, match="work tree, DVC remote storage differ"):
            fetch_model_files(captured, tmp_path / "model-dir")
    finally:
        for path, data in originals.items():
            path.write_bytes(data)


def test_declared_threads_are_pinned_and_answers_do_not_change(built, captured, tmp_path):
    """A deployment may declare its BLAS/OpenMP threads: the image pins them, its
    containers get as many CPUs, and this model's answers stay the same bit for bit."""
    from workspace import make_workspace, read_new_cases

    import replay
    from replay.execution.warm import WarmDeployment

    folder = make_workspace(
        "credit", tmp_path / "credit-approval", tmp_path / "dvc-remote", threads=2
    )
    two = replay.capture(folder)
    assert two.runtime.threads == 2 and two.runtime.env["OMP_NUM_THREADS"] == "2"
    replay.build(two.manifest_id)

    people = read_new_cases(folder, "credit")[:50]
    with WarmDeployment(two.manifest_id) as warm:
        runner = warm._idle.get()
        runner.container.reload()
        assert runner.container.attrs["HostConfig"]["NanoCpus"] == 2_000_000_000
        assert "OMP_NUM_THREADS=2" in runner.container.attrs["Config"]["Env"]
        warm._idle.put(runner)
        on_two = warm.predict_batch(people, seed=3)
    with WarmDeployment(captured.manifest_id) as warm:
        on_one = warm.predict_batch(people, seed=3)
    assert json.dumps(on_two) == json.dumps(on_one)


def test_a_model_not_in_the_dvc_remote_is_refused_pushed_on_request_and_verified(
    registry, tmp_path
):
    import shutil

    from workspace import make_workspace

    import replay

    remote = tmp_path / "dvc-remote"
    folder = make_workspace("claims", tmp_path / "claims-unpushed", remote)
    shutil.rmtree(remote)  # as if `dvc push` had never run
    result = run_cli("capture", str(folder))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "model file model/model.joblib is not in the DVC remote" in lines[0]

    manifest = replay.capture(folder, push=True)
    (model,) = manifest.model_files
    stored = remote / "files" / "md5" / model.dvc.md5[:2] / model.dvc.md5[2:]
    assert stored.is_file()
    assert replay.verify_manifest(manifest.manifest_id).ok

    stored.unlink()  # the remote loses it later: verify must say so, whatever the work tree has
    result = run_cli("manifest", "verify", manifest.manifest_id)
    assert result.returncode == 4
    assert "model file model/model.joblib (DVC remote storage): missing" in result.stderr


def test_a_second_capture_of_the_same_version_warns_in_one_line(captured, workspace):
    import replay

    before = {record.manifest_id[:12] for record in replay.list_deployments(captured.name)}
    result = run_cli("capture", str(workspace))
    assert result.returncode == 0, result.stderr
    (warning,) = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    named = warning.split("(manifest ")[1][:12]
    assert named in before
    assert warning == (
        f"warning: credit-approval version 1.0 was captured before (manifest {named}); "
        "raise `version` in replay.yaml to tell them apart"
    )
