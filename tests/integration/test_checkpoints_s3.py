"""Signed checkpoints in S3 (moto's server over HTTP), in a bucket with Object Lock and
a default retention as the README asks: a checkpoint overwritten or deleted by someone
with write access to the bucket is still checked as it was first written."""

from __future__ import annotations

import json
import sqlite3
import uuid

import boto3
import pytest

from replay.errors import IntegrityError
from replay.ledger import open_ledger
from replay.ledger.checkpoints import MAX_CHECKPOINT_BYTES
from replay.ledger.decisions import checkpoint_ledger, verify_ledger
from replay.settings import load_settings
from tests.factories import ledger_decision
from tests.integration.conftest import run_cli
from tests.ledger_tampering import rewritten_chain

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(s3, tmp_path):
    bucket = f"checkpoints-{uuid.uuid4().hex[:12]}"  # Object Lock is set on an empty bucket
    client = boto3.client("s3")
    client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    client.put_object_lock_configuration(
        Bucket=bucket,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}},
        },
    )
    environment = {
        "REPLAY_HOME": str(tmp_path / "home"),
        "REPLAY_CHECKPOINTS": f"s3://{bucket}/{tmp_path.name}",
    }
    settings = load_settings(environment, cwd=tmp_path)
    open_ledger(settings).append([ledger_decision(i) for i in range(1, 101)])
    return settings


def stored_checkpoints(settings):
    client = boto3.client("s3")
    bucket, _, prefix = settings.checkpoint_location.removeprefix("s3://").partition("/")
    listed = client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return client, bucket, [item["Key"] for item in listed]


def cut_end(settings, after):
    connection = sqlite3.connect(settings.ledger)
    connection.execute("DROP TRIGGER entries_no_delete")
    connection.execute("DELETE FROM entries WHERE seq > ?", [after])
    connection.commit()


def test_checkpoints_in_s3_find_a_cut_end(settings):
    checkpoint_ledger(settings=settings)
    checkpoint_ledger(settings=settings)  # the same head again: the first one is kept
    client, bucket, (key,) = stored_checkpoints(settings)
    versions = client.list_object_versions(Bucket=bucket, Prefix=key)["Versions"]
    assert len(versions) == 1  # not written over (If-None-Match)
    report = verify_ledger(settings=settings)
    assert report.ok and report.checkpoints == 1
    cut_end(settings, 60)
    report = verify_ledger(settings=settings)
    assert report.first_bad == 61 and "cut off" in report.reason


def test_an_overwritten_checkpoint_is_checked_as_first_written(settings):
    checkpoint_ledger(settings=settings)
    client, bucket, (key,) = stored_checkpoints(settings)
    # someone who cut the ledger's end replaces the checkpoint with one of the cut
    # ledger's head (unsigned content would be refused anyway: only the version counts)
    forged = json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    forged["count"] = 60
    client.put_object(Bucket=bucket, Key=key, Body=json.dumps(forged).encode())
    cut_end(settings, 60)
    report = verify_ledger(settings=settings)
    assert report.first_bad == 61 and "covers 100 entries" in report.reason


def test_a_deleted_checkpoint_is_still_found(settings):
    checkpoint_ledger(settings=settings)
    client, bucket, (key,) = stored_checkpoints(settings)
    client.delete_object(Bucket=bucket, Key=key)  # a delete marker; the version stays
    assert stored_checkpoints(settings)[2] == []
    cut_end(settings, 60)
    report = verify_ledger(settings=settings)
    assert report.first_bad == 61 and "cut off" in report.reason


def verify_with_the_cli(settings) -> str:
    """`replay ledger verify` as a user runs it: exit 4, and one line its only output."""
    environment = {
        "REPLAY_HOME": str(settings.home),
        "REPLAY_CHECKPOINTS": settings.checkpoint_location,
        "REPLAY_LEDGER": None,
    }
    result = run_cli("ledger", "verify", env=environment)
    assert result.returncode == 4, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    return line


def genuine(settings) -> dict:
    """The fields of the one checkpoint written."""
    client, bucket, (key,) = stored_checkpoints(settings)
    return json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())


def put_beside(settings, name: str, body: bytes) -> None:
    """What someone with write access to the bucket can do: add an object of their own
    beside the genuine checkpoint."""
    client, bucket, (key,) = stored_checkpoints(settings)
    client.put_object(Bucket=bucket, Key=f"{key.rsplit('/', 1)[0]}/{name}", Body=body)


def test_a_null_signature_in_s3_is_exit_4_naming_the_object(settings):
    checkpoint_ledger(settings=settings)
    null = {**genuine(settings), "signature": None}
    put_beside(settings, "000000000060-null.json", json.dumps(null).encode())
    line = verify_with_the_cli(settings)
    assert line.startswith("error: checkpoint 000000000060-null.json in s3://")
    assert line.endswith("is not a checkpoint: its signature is null, not 128 hex digits")


def test_a_forged_checkpoint_in_s3_is_named(settings):
    checkpoint_ledger(settings=settings)
    cut_end(settings, 60)
    # a checkpoint of the cut ledger's head, made without the key
    forged = {**genuine(settings), "count": 60, "head_hash": "0" * 64}
    put_beside(settings, "000000000060-0000000000000000.json", json.dumps(forged).encode())
    assert verify_with_the_cli(settings) == (
        "error: ledger entry 60 has a checkpoint (000000000060-0000000000000000.json) "
        "whose signature does not hold: it was forged or damaged"
    )


def test_a_rewritten_chain_is_named_by_its_checkpoint_in_s3(settings):
    checkpoint_ledger(settings=settings)
    ledger = open_ledger(settings)
    connection = sqlite3.connect(settings.ledger)
    connection.execute("DROP TRIGGER entries_no_update")
    for columns in rewritten_chain(ledger, 40):
        connection.execute(
            "UPDATE entries SET outputs = ?, prev_hash = ?, hash = ? WHERE seq = ?",
            [columns[name] for name in ("outputs", "prev_hash", "hash", "seq")],
        )
    connection.commit()
    connection.close()
    assert ledger.verify().ok  # the chain alone cannot tell
    line = verify_with_the_cli(settings)
    assert line.startswith("error: ledger entry 100 differs from a checkpoint signed at ")
    assert line.endswith("the chain up to it was rewritten")


@pytest.fixture
def sizes_sent():
    """The size of every object body S3 sends this process from now on."""
    sent: list[int] = []
    boto3.setup_default_session()  # hooks apply to clients made from the session after
    boto3.DEFAULT_SESSION.events.register(
        "after-call.s3.GetObject", lambda parsed, **_: sent.append(parsed["ContentLength"])
    )
    yield sent
    boto3.setup_default_session()


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"not json", "it is not JSON"),
        (b"null", "it holds null, not a JSON object"),
        (b"\xff" * 100, "its bytes are not UTF-8 text"),
        (b" " * (8 * 2**20), "it holds more than 64 KiB"),
    ],
    ids=["not-json", "null", "not-utf8", "huge"],
)
def test_a_junk_or_huge_object_is_named_and_never_read_whole(settings, sizes_sent, body, why):
    checkpoint_ledger(settings=settings)
    put_beside(settings, "000000000060-junk.json", body)
    with pytest.raises(IntegrityError) as raised:
        verify_ledger(settings=settings)
    message = str(raised.value)
    assert message.startswith(
        f"checkpoint 000000000060-junk.json in {settings.checkpoint_location}/"
    )
    assert message.endswith(f"is not a checkpoint: {why}")
    assert sizes_sent and max(sizes_sent) <= MAX_CHECKPOINT_BYTES + 1
