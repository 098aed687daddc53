"""A changed image is refused (exit 4), by `replay replay` and by `replay serve`, naming
what differs: the deployment's code, an installed library's file, or (outside the files
the fingerprint covers) the image itself, which is not one built for the manifest."""

from __future__ import annotations

import contextlib
from pathlib import Path

import docker
import pytest

from tests.integration.conftest import free_port, run_cli

pytestmark = pytest.mark.integration

RUNNER = 'ENTRYPOINT ["/opt/venv/bin/python", "/opt/replay/runner.py"]'


@pytest.fixture
def forgeable(registry, engine, claims_workspace, claims_decided):
    """A manifest of its own (tests replace its image) and one decision it made."""
    import replay
    from replay.execution.warm import WarmDeployment
    from replay.ledger.decisions import record_decision

    manifest = replay.capture(claims_workspace)
    built = replay.build(manifest.manifest_id)
    claim = claims_decided["deny"][0].inputs
    with WarmDeployment(manifest.manifest_id) as warm:
        outputs = warm.predict(claim, 3)
    txn = record_decision(manifest.manifest_id, claim, outputs, seed=3).txn_id
    yield manifest, built, txn
    label = f"replay.manifest_id={manifest.manifest_id}"
    forged = [image.id for image in engine.images.list(filters={"label": label})]
    for image_id in [*forged, built.image_id]:  # children first
        with contextlib.suppress(docker.errors.DockerException):
            engine.images.remove(image_id, force=True)


def forge(engine, built, script: str) -> str:
    """What an attacker with the engine can do: change a file as root and commit the
    result under the image's tag, labels and all (the original, now the untagged parent
    of the forgery, is no longer listed)."""
    container = engine.containers.run(
        built.image_id, entrypoint=["sh", "-c", script], user="0", detach=True
    )
    assert container.wait()["StatusCode"] == 0
    repository, tag = built.tag.rsplit(":", 1)
    forged = container.commit(repository, tag, changes=["USER 10001:10001", RUNNER])
    container.remove()
    return forged.id


def refused(*args: str) -> str:
    result = run_cli(*args)
    assert result.returncode == 4, result.stdout + result.stderr
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    return error


@pytest.mark.parametrize(
    ("target", "named"),
    [
        ("/opt/deployment/src/claims/triage.py", "src/claims/triage.py"),
        (
            "/opt/venv/lib/python3.11/site-packages/sklearn/__init__.py",
            "lib/python3.11/site-packages/sklearn/__init__.py",
        ),
    ],
)
def test_a_changed_code_or_library_file_is_refused_naming_it(forgeable, engine, target, named):
    manifest, built, txn = forgeable
    forge(engine, built, f"echo '# changed' >> {target}")
    assert named in refused("replay", txn)
    error = refused("serve", manifest.manifest_id, "--port", str(free_port()))
    assert named in error


def test_a_change_outside_the_fingerprinted_files_is_refused_by_image_id(forgeable, engine):
    manifest, built, txn = forgeable
    forged = forge(engine, built, "echo '# changed' >> /usr/lib/python3.11/json/__init__.py")
    error = refused("replay", txn)
    assert forged[:19] in error and "not an image built for manifest" in error
    assert "not an image built for" in refused("build", manifest.manifest_id)


def test_manifest_verify_reads_the_store_not_its_own_cache(registry, claims_workspace):
    """The manifest as MLflow keeps it is edited while this machine holds a good copy in
    its cache: verify must read the store and fail."""
    from replay.manifests.canonical import sha256_file

    import replay
    from replay.settings import load_settings

    manifest = replay.capture(claims_workspace)
    assert replay.verify_manifest(manifest.manifest_id).ok  # the cache now holds it
    artifacts = Path(load_settings().home) / "mlartifacts"
    (stored,) = [
        path
        for path in artifacts.rglob("manifest.json")
        if sha256_file(path) == manifest.manifest_id
    ]
    stored.write_text(stored.read_text().replace('"version":"1.0"', '"version":"1.1"'))
    assert sha256_file(stored) != manifest.manifest_id
    error = refused("manifest", "verify", manifest.manifest_id)
    assert manifest.manifest_id[:12] in error
