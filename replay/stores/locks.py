"""Dependency locks kept beside the manifests, reused while what they were made from is
unchanged (see `replay.manifests.lock.LockInputs`).

A record (`locks/<key>.json` in the blob store's location: the folder, or the same
S3 bucket and prefix) holds the lock, the hashed inputs its key is made from and the
wheels chosen for it, so another machine sharing the stores reuses both. This
machine's cache keeps a copy, so a new state folder on the same machine (a test
session, a demo) does not resolve again. A record is read as untrusted: it is reused
only when its inputs hash to the key it is kept under, its lock text still hashes to
the sha256 recorded with it, parses as a hashed lock, pins what the requirements ask,
and its wheels are files the lock allows.
"""

from __future__ import annotations

import json
import os
import tempfile
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from replay.errors import BadInput
from replay.manifests.canonical import canonical_json, sha256_bytes
from replay.manifests.lock import LockInputs, parse_lock, unmet_requirement
from replay.settings import Settings
from replay.stores.blobs import reaching_s3, s3_client

RECORD_FORMAT = "replay lock record 1"
FOLDER = "locks"
# Bytes read of a record at most: a lock of hundreds of distributions is far smaller,
# and a store's writer must not make a capture read (or hold) anything larger.
MAX_RECORD = 8 * 2**20


@dataclass(frozen=True)
class StoredLock:
    """A lock found for a key, checked; `wheels` (as the manifest lists them) when the
    capture that made it recorded them."""

    key: str
    lock: str
    wheels: list[dict[str, str]] | None
    made_at: str
    where: str


class LockStore(ABC):
    """Records by key; a write replaces the record whole or not at all."""

    @abstractmethod
    def read(self, key: str) -> bytes | None:
        """The record's first MAX_RECORD + 1 bytes, or None when there is none."""

    @abstractmethod
    def write(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def where(self, key: str) -> str: ...


class FolderLockStore(LockStore):
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def where(self, key: str) -> str:
        return str(self.path(key))

    def read(self, key: str) -> bytes | None:
        path = self.path(key)
        if not path.is_file():  # nor a FIFO, which would hang the read
            return None
        with open(path, "rb") as handle:
            return handle.read(MAX_RECORD + 1)

    def write(self, key: str, data: bytes) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        handle, partial = tempfile.mkstemp(dir=self.root, prefix=".partial-")
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(partial, self.path(key))


class S3LockStore(LockStore):
    """Objects under the blob store's bucket and prefix; S3 makes a put visible whole."""

    def __init__(self, bucket: str, prefix: str, connect_timeout: float) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.client = s3_client(connect_timeout)

    def where(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{key}.json"

    def read(self, key: str) -> bytes | None:
        name = f"{self.prefix}{key}.json"
        # a listing, as for blobs: a missing bucket must read as a misconfigured store
        with reaching_s3(f"lock store s3://{self.bucket}/{self.prefix}"):
            listing = self.client.list_objects_v2(Bucket=self.bucket, Prefix=name, MaxKeys=1)
            if not any(item["Key"] == name for item in listing.get("Contents", [])):
                return None
            found = self.client.get_object(
                Bucket=self.bucket, Key=name, Range=f"bytes=0-{MAX_RECORD}"
            )
            body: bytes = found["Body"].read(MAX_RECORD + 1)
        return body

    def write(self, key: str, data: bytes) -> None:
        with reaching_s3(f"lock store s3://{self.bucket}/{self.prefix}"):
            self.client.put_object(Bucket=self.bucket, Key=f"{self.prefix}{key}.json", Body=data)


def open_lock_store(blobs: str, connect_timeout: float) -> LockStore:
    """The lock records beside the blob store at `blobs` (a folder or s3://bucket/prefix)."""
    if blobs.startswith("s3://"):
        bucket, _, prefix = blobs.removeprefix("s3://").partition("/")
        if not bucket:
            raise BadInput(f"blob store {blobs!r} names no bucket (s3://bucket/prefix)")
        prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        return S3LockStore(bucket, f"{prefix}{FOLDER}/", connect_timeout)
    return FolderLockStore(Path(blobs) / FOLDER)


def lock_record(inputs: LockInputs, lock_text: str, wheels: list[dict[str, str]] | None) -> bytes:
    """A record's bytes (JSON, indented: people read these when something is wrong)."""
    record: dict[str, Any] = {
        "format": RECORD_FORMAT,
        "key": inputs.key,
        "inputs": inputs.document(),
        "lock": lock_text,
        "lock_sha256": sha256_bytes(lock_text.encode()),
        "wheels": wheels,
        "made_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    return json.dumps(record, indent=2, sort_keys=True).encode()


def record_problem(data: bytes, inputs: LockInputs, requirements_text: str) -> str | None:
    """Why a record read for `inputs` cannot be reused, or None."""
    if len(data) > MAX_RECORD:
        return f"it is larger than {MAX_RECORD // 2**20} MiB"
    try:
        record = json.loads(data)
    except ValueError:
        return "it is not JSON"
    if not isinstance(record, dict) or record.get("format") != RECORD_FORMAT:
        return f"it is not a {RECORD_FORMAT}"
    if record.get("key") != inputs.key:
        return "it is the record of another key"
    if not isinstance(record.get("inputs"), dict):
        return "it does not say what it was made from"
    if sha256_bytes(canonical_json(record["inputs"])) != inputs.key:
        return "what it says it was made from does not hash to its key"
    lock = record.get("lock")
    if not isinstance(lock, str) or sha256_bytes(lock.encode()) != record.get("lock_sha256"):
        return "its lock text does not hash to its recorded sha256 (it was edited)"
    try:
        unmet = unmet_requirement(lock, requirements_text)
    except BadInput as error:
        return f"its lock does not parse ({error})"
    if unmet is not None:
        return f"its lock does not pin the requirements ({unmet})"
    return _wheels_problem(record.get("wheels"), lock)


def _wheels_problem(wheels: Any, lock: str) -> str | None:
    if wheels is None:
        return None
    locked = {item.key: item for item in parse_lock(lock)}
    fields = ("name", "version", "filename", "sha256")
    if not isinstance(wheels, list) or not all(
        isinstance(wheel, dict) and all(isinstance(wheel.get(f), str) for f in fields)
        for wheel in wheels
    ):
        return "its wheels are not a list of files"
    for wheel in wheels:
        requirement = locked.get(wheel["name"])
        if (
            requirement is None
            or requirement.version != wheel["version"]
            or wheel["sha256"] not in requirement.hashes
        ):
            return f"its wheel {wheel['filename']} is not a file the lock allows"
    if {wheel["name"] for wheel in wheels} != set(locked) or len(wheels) != len(locked):
        return "its wheels are not one per locked distribution"
    return None


class Locks:
    """The stores' records, read through this machine's copy."""

    def __init__(self, settings: Settings) -> None:
        self.shared = open_lock_store(settings.blobs, settings.connect_timeout)
        self.local = FolderLockStore(settings.cache / FOLDER)

    def find(self, inputs: LockInputs, requirements_text: str) -> tuple[StoredLock | None, str]:
        """(the lock for `inputs`, or None; why a record found was not reused, or "").

        The stores' record decides when there is one: a record there that does not hold
        is not reused, even if this machine keeps a good copy, so the store is mended
        by the next lock rather than kept wrong."""
        key = inputs.key
        data = self.shared.read(key)
        if data is not None:
            problem = record_problem(data, inputs, requirements_text)
            if problem is not None:
                return None, f"the stored lock {self.shared.where(key)} cannot be reused: {problem}"
            if self.local.read(key) != data:
                self.local.write(key, data)
            return _stored(data, self.shared.where(key)), ""
        data = self.local.read(key)
        if data is None or record_problem(data, inputs, requirements_text) is not None:
            return None, ""  # this machine's copy is only a cache: a bad one is replaced
        self.shared.write(key, data)  # locked here for another state folder: share it
        return _stored(data, self.local.where(key)), ""

    def save(self, inputs: LockInputs, lock_text: str, wheels: list[dict[str, str]] | None) -> None:
        """Keep (or replace) the record for `inputs`, in the stores and on this machine."""
        data = lock_record(inputs, lock_text, wheels)
        self.shared.write(inputs.key, data)
        self.local.write(inputs.key, data)


def _stored(data: bytes, where: str) -> StoredLock:
    record = json.loads(data)
    return StoredLock(
        key=record["key"],
        lock=record["lock"],
        wheels=record.get("wheels"),
        made_at=str(record.get("made_at", "")),
        where=where,
    )
