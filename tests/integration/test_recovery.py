"""Publishing for the years ahead: replay after `docker rmi`, after the registry is
wiped too, and after the archive is gone as well."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.integration


def remove_everywhere(engine, manifest_id: str) -> None:
    from replay.images.build import find_image

    while (image := find_image(engine, manifest_id)) is not None:
        engine.images.remove(image.id, force=True)


def test_replay_recovers_by_every_path(spare, engine, registry):
    import replay
    from replay.decisions import record_decision
    from replay.deployments import manifest_store
    from replay.settings import load_settings
    from replay.stores.blobs import LocalBlobStore
    from replay.warm import WarmDeployment

    manifest, built = spare
    inputs = {"income": 61000.0, "debt": 12000.0, "loan_amount": 20000.0, "age": 35,
              "years_employed": 4.0, "credit_history_years": 7.0, "late_payments": 0}
    with WarmDeployment(manifest.manifest_id) as warm:
        outputs = warm.predict(inputs, seed=99)
    txn = record_decision(manifest.manifest_id, inputs, outputs, seed=99,
                          fingerprint_id=built.fingerprint_id).txn_id

    publication = replay.publish(manifest.manifest_id)
    assert publication.repo_digest.startswith(f"{registry}/replay/{manifest.name}@sha256:")
    record = manifest_store(load_settings()).build_record(manifest.manifest_id)
    assert (record.repo_digest, record.archive_sha256) == (publication.repo_digest,
                                                            publication.archive_sha256)

    remove_everywhere(engine, manifest.manifest_id)
    result = replay.replay(txn)
    assert (result.recovery, result.verdict) == ("registry", "reproduced")

    repository, digest = publication.repo_digest.split("@")
    name = repository.split("/", 1)[1]
    deleted = httpx.delete(f"http://{registry}/v2/{name}/manifests/{digest}")
    assert deleted.status_code == 202
    remove_everywhere(engine, manifest.manifest_id)
    result = replay.replay(txn)
    assert (result.recovery, result.verdict) == ("archive", "reproduced")

    LocalBlobStore(load_settings().blob_dir).path(publication.archive_sha256).unlink()
    remove_everywhere(engine, manifest.manifest_id)
    result = replay.replay(txn)
    assert (result.recovery, result.verdict) == ("rebuild", "reproduced")
    assert replay.show_transaction(result.record_txn).output_values["recovery"] == "rebuild"
