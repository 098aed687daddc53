"""Signed checkpoints in S3 (moto's server over HTTP), in a bucket with Object Lock and
a default retention as the README asks: a checkpoint overwritten or deleted by someone
with write access to the bucket is still checked as it was first written."""

from __future__ import annotations

import json
import sqlite3
import uuid

import boto3
import pytest

from replay.ledger import open_ledger
from replay.ledger.decisions import checkpoint_ledger, verify_ledger
from replay.settings import load_settings
from tests.factories import ledger_decision

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
