"""Publishing for the years ahead: replay after `docker rmi`, after the registry is
wiped too, and after the archive is gone as well."""

from __future__ import annotations

import contextlib
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.integration


def remove_everywhere(engine, manifest_id: str, repo_digest: str | None = None) -> None:
    """Remove every local image of the manifest, hidden ones included, and prove it."""
    import docker

    label = f"replay.manifest_id={manifest_id}"
    for image in engine.images.list(all=True, filters={"label": label}):
        with contextlib.suppress(docker.errors.ImageNotFound):
            engine.images.remove(image.id, force=True)
    assert engine.images.list(all=True, filters={"label": label}) == []
    if repo_digest:
        with pytest.raises(docker.errors.ImageNotFound):
            engine.images.get(repo_digest)


def wipe_from_registry(registry: str, repo_digest: str) -> None:
    """Delete the image's manifest and its config blob (unique to it: it holds the
    manifest-id label). The engine keeps a cache of manifests it pulled, so deleting the
    manifest alone would not stop a pull; without the config blob, a pull must fail."""
    repository, digest = repo_digest.split("@")
    base = f"http://{registry}/v2/{repository.split('/', 1)[1]}"
    schema2 = {  # images built by replay are OCI; those pushed by the engine, Docker's
        "Accept": "application/vnd.oci.image.manifest.v1+json, "
        "application/vnd.docker.distribution.manifest.v2+json"
    }
    config = httpx.get(f"{base}/manifests/{digest}", headers=schema2).json()["config"]["digest"]
    assert httpx.delete(f"{base}/blobs/{config}").status_code == 202
    assert httpx.delete(f"{base}/manifests/{digest}").status_code == 202
    assert httpx.get(f"{base}/manifests/{digest}", headers=schema2).status_code == 404


def decide(manifest, built, inputs: dict, seed: int) -> str:
    """Decide for `inputs` in the manifest's container and log it; the transaction id."""
    from replay.execution.warm import WarmDeployment
    from replay.ledger.decisions import record_decision

    with WarmDeployment(manifest.manifest_id) as warm:
        outputs = warm.predict(inputs, seed=seed)
    return record_decision(
        manifest.manifest_id, inputs, outputs, seed=seed, fingerprint_id=built.fingerprint_id
    ).txn_id


def test_replay_recovers_by_every_path(spare, engine, registry):
    import replay
    from replay.settings import load_settings
    from replay.stores.blobs import LocalBlobStore
    from replay.stores.manifests import manifest_store

    manifest, built = spare
    inputs = {
        "income": 61000.0,
        "debt": 12000.0,
        "loan_amount": 20000.0,
        "age": 35,
        "years_employed": 4.0,
        "credit_history_years": 7.0,
        "late_payments": 0,
    }
    txn = decide(manifest, built, inputs, seed=99)

    publication = replay.publish(manifest.manifest_id)
    assert publication.repo_digest.startswith(f"{registry}/replay/{manifest.name}@sha256:")
    record = manifest_store(load_settings()).build_record(manifest.manifest_id)
    assert (record.repo_digest, record.archive_sha256) == (
        publication.repo_digest,
        publication.archive_sha256,
    )

    remove_everywhere(engine, manifest.manifest_id)
    result = replay.replay(txn)
    assert (result.recovery, result.verdict) == ("registry", "reproduced")

    wipe_from_registry(registry, publication.repo_digest)
    remove_everywhere(engine, manifest.manifest_id, publication.repo_digest)
    result = replay.replay(txn)
    assert (result.recovery, result.verdict) == ("archive", "reproduced")

    LocalBlobStore(Path(load_settings().blobs)).path(publication.archive_sha256).unlink()
    remove_everywhere(engine, manifest.manifest_id)
    result = replay.replay(txn)
    assert (result.recovery, result.verdict) == ("rebuild", "reproduced")
    assert replay.show_transaction(result.record_txn).outputs["recovery"] == "rebuild"


def test_an_image_archive_on_s3_brings_the_image_back(spare, engine, registry, s3, monkeypatch):
    import boto3

    import replay

    manifest, built = spare
    monkeypatch.setenv("REPLAY_BLOBS", f"s3://{s3('image-archives')}/replay")
    inputs = {
        "income": 48000.0,
        "debt": 9000.0,
        "loan_amount": 15000.0,
        "age": 41,
        "years_employed": 9.0,
        "credit_history_years": 12.0,
        "late_payments": 1,
    }
    txn = decide(manifest, built, inputs, seed=7)

    publication = replay.publish(manifest.manifest_id)
    digest = publication.archive_sha256
    stored = boto3.client("s3").head_object(
        Bucket="image-archives", Key=f"replay/sha256/{digest[:2]}/{digest}"
    )
    assert stored["ContentLength"] == publication.archive_bytes

    wipe_from_registry(registry, publication.repo_digest)
    remove_everywhere(engine, manifest.manifest_id, publication.repo_digest)
    result = replay.replay(txn)
    assert (result.recovery, result.verdict) == ("archive", "reproduced")

    # published again: the image the registry lost is pushed again, and found there
    again = replay.publish(manifest.manifest_id)
    remove_everywhere(engine, manifest.manifest_id, again.repo_digest)
    result = replay.replay(txn)
    assert (result.recovery, result.verdict) == ("registry", "reproduced")


def test_a_rebuild_is_the_recorded_image_even_with_no_copy_left(spare, engine, registry):
    """`replay build --rebuild` twice, then a build with no copy anywhere (the engine,
    the registry, the builder's storage and its environment image): the image id
    recorded at the first build every time."""
    from replay.images.build import environment_tag, local_tag

    import replay
    from replay.deployments.building import builder_of
    from replay.settings import load_settings
    from replay.stores.manifests import manifest_store
    from tests.integration.conftest import run_cli

    manifest, built = spare
    record = manifest_store(load_settings()).build_record(manifest.manifest_id)
    assert record.builder.startswith("buildah ") and record.image_id == built.image_id
    assert record.repo_digest.startswith(f"{registry}/replay/{manifest.name}@sha256:")

    again = replay.build(manifest.manifest_id, rebuild=True)
    assert (again.image_id, again.identical, again.reused) == (built.image_id, True, False)
    printed = run_cli("build", manifest.manifest_id, "--rebuild")
    assert printed.returncode == 0, printed.stderr
    assert built.image_id in printed.stdout
    assert "identical to the recorded image" in printed.stdout

    wipe_from_registry(registry, record.repo_digest)
    remove_everywhere(engine, manifest.manifest_id, record.repo_digest)
    builder = builder_of(load_settings())
    assert builder.image_id(local_tag(manifest)) is None  # the registry keeps it, not the builder
    environment = environment_tag(manifest, builder.version())
    builder.remove(environment)
    assert builder.image_id(environment) is None
    fresh = replay.build(manifest.manifest_id)  # nothing to reuse: built from the manifest
    assert (fresh.image_id, fresh.identical, fresh.reused) == (built.image_id, True, False)


def test_a_rebuild_with_another_id_is_refused(spare, engine):
    """A record (signed with the ledger's key) of another image id, as if the build had
    changed since: the rebuild is refused, exit 4, naming both ids, and not kept."""
    import json
    from dataclasses import replace

    from replay.images.build import local_tag

    from replay.deployments.building import builder_of
    from replay.settings import load_settings
    from replay.stores.keys import signing_key
    from replay.stores.manifests import manifest_store
    from tests.integration.conftest import run_cli

    manifest, built = spare
    store = manifest_store(load_settings())
    cached = store.cache_dir / manifest.manifest_id / "build.json"
    genuine = cached.read_text()
    record = store.build_record(manifest.manifest_id)
    other = "sha256:" + "ab" * 32
    changed = replace(record, image_id=other, image_ids=[other])
    signature = signing_key(load_settings().key_folder).sign(changed.statement()).hex()
    cached.write_text(json.dumps(replace(changed, signature=signature).__dict__))
    try:
        refused = run_cli("build", manifest.manifest_id, "--rebuild")
        assert refused.returncode == 4
        assert f"the rebuilt image {built.image_id[:19]} is not the image {other[:19]}" in (
            refused.stderr
        )
        # refused before it left the builder: not kept there, never pushed nor pulled
        assert builder_of(load_settings()).image_id(local_tag(manifest)) is None
    finally:
        cached.write_text(genuine)
        import replay

        replay.build(manifest.manifest_id)
