"""A changed image is refused (exit 4), by `replay replay` and by `replay serve`, before
anything in it runs, naming what differs: the runner, the deployment's code, an installed
library's file, or (outside the files the fingerprint covers) the image itself, which is
not one the manifest's signed build record lists. Nothing of a runner's protocol stream
reaches the engine's logs."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import docker
import pytest

from tests.integration.conftest import free_port, run_cli

pytestmark = pytest.mark.integration

RUNNER = 'ENTRYPOINT ["/opt/venv/bin/python", "/opt/replay/runner.py"]'


@pytest.fixture(scope="module")
def genuine(registry, engine, claims_workspace, claims_decided):
    """A manifest of its own, built once for the module, and one decision it made."""
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
    with contextlib.suppress(docker.errors.DockerException):
        engine.images.remove(built.image_id, force=True)


@pytest.fixture
def forgeable(genuine, engine):
    """The genuine image, which each test replaces under its tag with a forgery: after
    the test, the forgeries are removed (keeping their parent, the genuine image) and
    the genuine image has its tag back."""
    from replay.settings import load_settings
    from replay.stores.manifests import manifest_store

    manifest, built, _ = genuine
    cached = manifest_store(load_settings()).cache_dir / manifest.manifest_id / "build.json"
    copy = cached.read_bytes()
    yield genuine
    label = f"replay.manifest_id={manifest.manifest_id}"
    for image in engine.images.list(filters={"label": label}):
        if image.id != built.image_id:
            with contextlib.suppress(docker.errors.DockerException):
                engine.images.remove(image.id, force=True, noprune=True)
    repository, tag = built.tag.rsplit(":", 1)
    engine.images.get(built.image_id).tag(repository, tag)
    cached.write_bytes(copy)  # a test may have forged or removed this machine's copy


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


def starts_of(engine, image_id: str, since: float) -> list[dict]:
    """Containers of the image (by id or any tag) the engine started since `since`."""
    names = {image_id, *engine.images.get(image_id).tags}
    events = engine.events(
        since=int(since),
        until=int(time.time()) + 1,
        decode=True,
        filters={"type": "container", "event": "start"},
    )
    return [event for event in events if event.get("from") in names]


@pytest.mark.parametrize(
    "line",
    [
        'import sys; sys.stderr.write("FORGED CODE RAN\\n"); sys.exit(7)',
        "import time; time.sleep(600)",
    ],
)
def test_a_forged_runner_never_runs(forgeable, engine, line):
    """One line added to the image's runner, committed under its tag: refused naming the
    runner file and the image, and no container of the forgery ever starts."""
    manifest, built, txn = forgeable
    marker = "/^from __future__ import annotations$/a"
    forged = forge(engine, built, f"sed -i '{marker} {line}' /opt/replay/runner.py")
    since = time.time()
    serve = ("serve", manifest.manifest_id, "--port", str(free_port()))
    for command in (("replay", txn), ("build", manifest.manifest_id), serve):
        result = run_cli(*command)
        assert result.returncode == 4, result.stdout + result.stderr
        assert "FORGED" not in result.stdout + result.stderr
        assert "/opt/replay/runner.py" in result.stderr and forged[:19] in result.stderr
        assert "before anything in it ran" in result.stderr
    assert time.time() - since < 90  # a sleeping forgery would take 120 s to give up
    assert starts_of(engine, forged, since) == []


def test_a_forged_id_added_to_this_machines_build_record_is_refused(forgeable, engine):
    """The attack on the local copy of the build record: the standard-library forgery's
    id appended to `image_ids` in the cached build.json proves nothing, and `manifest
    verify` names the copy."""
    from replay.settings import load_settings
    from replay.stores.manifests import manifest_store

    manifest, built, txn = forgeable
    forged = forge(engine, built, "echo '# changed' >> /usr/lib/python3.11/json/__init__.py")
    cached = manifest_store(load_settings()).cache_dir / manifest.manifest_id / "build.json"
    record = json.loads(cached.read_text())
    record["image_ids"].append(forged)
    cached.write_text(json.dumps(record))
    error = refused("manifest", "verify", manifest.manifest_id)
    assert error.startswith("error: build record (this machine's copy): its signature")
    since = time.time()
    error = refused("replay", txn)
    assert forged[:19] in error and "not an image built for manifest" in error
    assert starts_of(engine, forged, since) == []


def test_a_forged_id_added_to_the_tracking_stores_record_is_refused(forgeable, engine):
    """The same id added to the tracking store's tags (anyone who can write MLflow's
    database): the record's signature no longer holds, so nothing is proven by it."""
    from mlflow.tracking import MlflowClient

    from replay.settings import load_settings
    from replay.stores.manifests import TAG_IMAGES, manifest_store

    manifest, built, txn = forgeable
    forged = forge(engine, built, "echo '# changed' >> /usr/lib/python3.11/json/__init__.py")
    settings = load_settings()
    store = manifest_store(settings)
    run = store._run_for(manifest.manifest_id)
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    genuine_ids = run.data.tags[TAG_IMAGES]
    client.set_tag(run.info.run_id, TAG_IMAGES, f"{genuine_ids} {forged}")
    (store.cache_dir / manifest.manifest_id / "build.json").unlink()
    try:
        error = refused("replay", txn)
        assert "build record of manifest" in error and "signature does not hold" in error
        error = refused("manifest", "verify", manifest.manifest_id)
        assert error.startswith("error: build record:") and "signature does not hold" in error
    finally:
        client.set_tag(run.info.run_id, TAG_IMAGES, genuine_ids)


def test_no_decision_reaches_the_engines_logs(served, captured, engine):
    """A served, sealed decision: its runner containers keep no engine log, and no file
    the engine keeps for them holds the decision's score."""
    assert served[0]["score"] is not None
    runners = engine.containers.list(
        filters={"label": [f"replay.manifest_id={captured.manifest_id}", "replay.role=runner"]}
    )
    assert runners, "the session's server runs no container"
    root = Path(engine.info()["DockerRootDir"])
    scores = [json.dumps(answer["score"]).encode() for answer in served]
    for runner in runners:
        assert runner.attrs["HostConfig"]["LogConfig"]["Type"] == "none"
        assert runner.attrs["LogPath"] == ""
        kept = [path for path in (root / "containers" / runner.id).rglob("*") if path.is_file()]
        assert kept, f"cannot read the engine's files of {runner.id[:12]} under {root}"
        for path in kept:
            data = path.read_bytes()
            assert not [score for score in scores if score in data], path
