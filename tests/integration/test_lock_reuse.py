"""A lock is resolved once per set of inputs: a new version of a deployment with the same
requirements reuses the stored lock and its wheels (no pip-compile, no pip download),
`--relock` resolves again and replaces it, a stored lock that was edited is not reused,
and another machine sharing the stores (S3 blobs, the same tracking store) reuses it.

What ran is read from what `replay capture` tells a user on stderr (its steps), and
from the stored record itself (rewritten only when a lock is made)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.integration.conftest import run_cli

pytestmark = pytest.mark.integration

RESOLVED = "lock requirements (pip-compile)"
REUSED = "lock requirements (stored lock "
NO_PIP = "already in the blob store)"


def capture(workspace: Path, *options: str, env: dict[str, str | None] | None = None) -> str:
    """`replay capture` as a user runs it; its stderr (the steps and warnings)."""
    result = run_cli("capture", str(workspace), *options, env=env)
    assert result.returncode == 0, result.stderr
    return result.stderr


def new_version(workspace: Path, version: str) -> None:
    """The same deployment with only its version raised, committed."""
    spec = workspace / "replay.yaml"
    spec.write_text(re.sub(r'(?m)^version: ".*"$', f'version: "{version}"', spec.read_text()))
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", version],
        cwd=workspace,
        check=True,
    )


def stored_record(workspace: Path, folder: Path) -> Path:
    """The record in `folder` of the workspace's requirements."""
    from replay.manifests.canonical import sha256_file

    wanted = sha256_file(workspace / "requirements.in")
    found = [
        path
        for path in folder.glob("*.json")
        if json.loads(path.read_text())["inputs"]["requirements_sha256"] == wanted
    ]
    assert len(found) == 1, found
    return found[0]


@pytest.fixture(scope="module")
def credit(registry, tmp_path_factory) -> Path:
    """A credit deployment of its own (versions are raised here), captured once."""
    from workspace import make_workspace

    folder = tmp_path_factory.mktemp("lock-reuse")
    workspace = make_workspace("credit", folder / "credit-approval", folder / "dvc-remote")
    capture(workspace)  # resolved, or this machine's copy shared with the stores
    return workspace


def locks_folder(replay_env: Path) -> Path:
    return replay_env / "blobs" / "locks"


def latest_lock(name: str) -> str:
    from replay.settings import load_settings
    from replay.stores.manifests import manifest_store

    store = manifest_store(load_settings())
    newest = store.history(name)[0]
    return store.load(newest.manifest_id).environment.lock


def test_a_new_version_reuses_the_lock_and_relock_replaces_it(credit, replay_env):
    record = stored_record(credit, locks_folder(replay_env))
    before = record.read_bytes()
    first_lock = latest_lock("credit-approval")

    new_version(credit, "1.1")
    told = capture(credit)
    assert REUSED in told and RESOLVED not in told
    assert NO_PIP in told and "download wheels" not in told
    assert record.read_bytes() == before  # reused as it was, not made again
    assert latest_lock("credit-approval") == first_lock

    new_version(credit, "1.2")
    told = capture(credit, "--relock")
    assert RESOLVED in told and REUSED not in told
    remade = json.loads(record.read_bytes())
    assert remade["made_at"] >= json.loads(before)["made_at"]
    assert record.read_bytes() != before  # the stored one is replaced
    assert remade["lock"] == latest_lock("credit-approval")


def test_an_edited_stored_lock_is_not_reused(credit, replay_env):
    """Edited text is locked again, with a warning naming the record: the capture still
    gets a lock resolved for it, and the store is mended, where refusing would stop every
    capture of these requirements until someone removed the file by hand."""
    from replay.manifests.lock import parse_lock

    record = stored_record(credit, locks_folder(replay_env))
    document = json.loads(record.read_text())
    document["lock"] = document["lock"].replace("numpy==2.1.3", "numpy==2.1.2")
    record.write_text(json.dumps(document))

    new_version(credit, "1.3")
    told = capture(credit)
    assert RESOLVED in told and REUSED not in told
    (warning,) = [line for line in told.splitlines() if line.startswith("warning:")]
    assert str(record) in warning and "edited" in warning and "locking again" in warning
    versions = {item.key: item.version for item in parse_lock(latest_lock("credit-approval"))}
    assert versions["numpy"] == "2.1.3"
    mended = json.loads(record.read_text())
    assert "numpy==2.1.3" in mended["lock"] and "numpy==2.1.2" not in mended["lock"]

    new_version(credit, "1.4")
    assert REUSED in capture(credit)


def test_another_machine_sharing_the_stores_reuses_lock_and_wheels(credit, s3, tmp_path):
    import boto3

    bucket = s3("lock-reuse")
    shared = {"REPLAY_BLOBS": f"s3://{bucket}/blobs"}
    new_version(credit, "2.0")
    told = capture(credit, env=shared)  # this machine: its copy goes to the S3 store
    assert RESOLVED not in told

    elsewhere = {**shared, "REPLAY_CACHE": str(tmp_path / "another-machine-cache")}
    new_version(credit, "2.1")
    told = capture(credit, env=elsewhere)
    assert REUSED in told and RESOLVED not in told
    assert NO_PIP in told and "download wheels" not in told
    listing = boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix="blobs/locks/")
    assert len(listing["Contents"]) == 1
    assert not (tmp_path / "another-machine-cache" / "wheels").exists()  # pip never ran
