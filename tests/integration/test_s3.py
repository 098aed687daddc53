"""S3 as the store at scale: blobs (wheels, image archives) and the DVC remote of the
model, against moto's S3 server over HTTP."""

from __future__ import annotations

import os

import pytest

from tests.integration.conftest import free_port, run_cli

pytestmark = pytest.mark.integration


def test_blobs_round_trip_and_a_changed_object_is_caught(s3, tmp_path):
    import boto3

    from replay.errors import IntegrityError
    from replay.stores.blobs import open_blob_store

    store = open_blob_store(f"s3://{s3('blobs-round-trip')}/team/a")
    original = tmp_path / "wheel.whl"
    original.write_bytes(os.urandom(300_000))
    digest = store.put(original)
    assert store.has(digest) and store.put(original) == digest
    copy = store.get(digest, tmp_path / "out" / "copy.whl")
    assert copy.read_bytes() == original.read_bytes()
    assert store.stored_sha256(digest) == digest

    key = f"team/a/sha256/{digest[:2]}/{digest}"
    boto3.client("s3").put_object(Bucket="blobs-round-trip", Key=key, Body=b"tampered")
    with pytest.raises(IntegrityError, match=digest):
        store.get(digest, tmp_path / "again.whl")
    assert not (tmp_path / "again.whl").exists()
    assert not store.has("0" * 64)


@pytest.mark.parametrize("where", ["no bucket", "no endpoint"])
def test_an_unreachable_blob_store_is_one_line_exit_3(s3, captured, where):
    env = {"REPLAY_BLOBS": "s3://no-such-bucket/x", "AWS_MAX_ATTEMPTS": "1"}
    if where == "no endpoint":
        env["AWS_ENDPOINT_URL_S3"] = f"http://127.0.0.1:{free_port()}"
    result = run_cli("manifest", "verify", captured.manifest_id, env=env)
    assert result.returncode == 3, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "blob store s3://no-such-bucket/x/" in line


def test_a_deployment_kept_on_s3_builds_and_verifies(s3, registry, tmp_path, monkeypatch):
    """Wheels in an S3 blob store, the model only on an S3 DVC remote."""
    import boto3
    from workspace import MODEL, make_workspace

    import replay
    from replay.settings import load_settings
    from replay.stores.manifests import manifest_store

    bucket = s3("deployments")
    monkeypatch.setenv("REPLAY_BLOBS", f"s3://{bucket}/blobs")
    workspace = make_workspace("credit", tmp_path / "credit-approval", f"s3://{bucket}/credit")
    manifest = replay.capture(workspace)
    # the wheels (lock records are kept beside them, under blobs/locks/)
    listing = boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix="blobs/sha256/")
    assert {item["Key"].rsplit("/", 1)[1] for item in listing["Contents"]} == {
        wheel.sha256 for wheel in manifest.environment.wheels
    }
    (model,) = manifest.model_files
    assert model.dvc.remote_url == f"s3://{bucket}/credit"
    (workspace / MODEL).unlink()  # the S3 remote now holds the only copy

    replay.build(manifest.manifest_id)
    record = manifest_store(load_settings()).build_record(manifest.manifest_id)
    assert record.fingerprint["model_files"] == {model.path: model.sha256}
    checks = {c.what: c for c in replay.verify_manifest(manifest.manifest_id).checks}
    assert checks[f"model file {model.path} (DVC remote storage)"].ok
    assert f"model file {model.path} (work tree)" not in checks
    assert all(c.ok for c in checks.values())
    assert sum(what.startswith("wheel ") for what in checks) == len(manifest.environment.wheels)

    key = f"credit/files/md5/{model.dvc.md5[:2]}/{model.dvc.md5[2:]}"
    boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=b"another model")
    verification = replay.verify_manifest(manifest.manifest_id)
    assert not verification.ok
    assert [c.what for c in verification.checks if not c.ok] == [
        f"model file {model.path} (DVC remote storage)"
    ]
