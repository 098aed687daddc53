"""Signed checkpoints of the ledger's head, kept where the database's writers cannot
rewrite them.

A hash chain shows that an entry was changed, but not that its end was cut off, nor
that every hash after an edit was recomputed. A checkpoint closes that: the number of
entries, the head's hash and the time, signed with Ed25519 (`replay.stores.keys`) and
written, never overwritten, to a checkpoint store (a folder, or `s3://bucket/prefix`:
with S3 Object Lock's default retention on the bucket, not even the store's owner can
change it). `verify` then needs every checkpoint's entry to be there with the hash it
had. This holds as long as the signing key and the checkpoint store are kept apart from
whoever can write the database.
"""

from __future__ import annotations

import hashlib
import json
import threading
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from replay.errors import BadInput, IntegrityError, ReplayWarning, one_line
from replay.ledger.chain import Ledger, LedgerVerification
from replay.manifests.canonical import canonical_json
from replay.stores.blobs import reaching_s3
from replay.stores.keys import write_once

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )


@dataclass(frozen=True)
class Checkpoint:
    ledger: str  # where the ledger is (no password)
    count: int  # the entries it covers: the head's sequence number
    head_hash: str
    time: str
    signature: str = ""  # Ed25519 over `statement`, hex

    def statement(self) -> bytes:
        return canonical_json({**asdict(self), "signature": None})

    @property
    def name(self) -> str:
        return f"{self.count:012d}-{self.head_hash[:16]}.json"


class CheckpointStore(ABC):
    """Checkpoint files of one ledger: written once, never replaced."""

    @abstractmethod
    def write(self, name: str, data: bytes) -> None: ...

    @abstractmethod
    def names(self) -> list[str]: ...

    @abstractmethod
    def read(self, name: str) -> bytes: ...


class LocalCheckpointStore(CheckpointStore):
    """A folder; each checkpoint created exclusively and read-only."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def __str__(self) -> str:
        return str(self.root)

    def write(self, name: str, data: bytes) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        write_once(self.root / name, data, 0o444)  # the same head checkpointed: kept as is

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(path.name for path in self.root.glob("*.json"))

    def read(self, name: str) -> bytes:
        return (self.root / name).read_bytes()


class S3CheckpointStore(CheckpointStore):
    """A bucket and prefix; endpoint and credentials from boto3's usual chain.

    A checkpoint is written only if its name is free (`If-None-Match`). Read back, a
    checkpoint is its first version: in a versioned bucket (as Object Lock requires) a
    checkpoint overwritten or deleted afterwards is still found, and checked as first
    written."""

    def __init__(self, bucket: str, prefix: str) -> None:
        import boto3  # about 0.5 s: only S3 users pay it

        self.bucket, self.prefix = bucket, prefix.strip("/") + "/"
        self.client = boto3.client("s3")

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def write(self, name: str, data: bytes) -> None:
        from botocore.exceptions import ClientError

        with reaching_s3(f"checkpoint store {self}"):
            try:
                self.client.put_object(
                    Bucket=self.bucket, Key=self.prefix + name, Body=data, IfNoneMatch="*"
                )
            except ClientError as error:  # the same head checkpointed before: kept as is
                if error.response.get("Error", {}).get("Code") != "PreconditionFailed":
                    raise

    def _first_versions(self) -> dict[str, str]:
        """Each checkpoint's first version id, by name (deleted ones included)."""
        first: dict[str, str] = {}
        with reaching_s3(f"checkpoint store {self}"):
            pages = self.client.get_paginator("list_object_versions").paginate(
                Bucket=self.bucket, Prefix=self.prefix
            )
            for page in pages:
                # a key's versions are listed newest first: the last one seen is the first
                for version in page.get("Versions", []):
                    first[version["Key"][len(self.prefix) :]] = version["VersionId"]
        return {name: version for name, version in first.items() if name.endswith(".json")}

    def names(self) -> list[str]:
        self._versions = self._first_versions()  # read() then needs no second listing
        return sorted(self._versions)

    def read(self, name: str) -> bytes:
        versions = getattr(self, "_versions", {})
        version = (versions if name in versions else self._first_versions()).get(name)
        with reaching_s3(f"checkpoint store {self}"):
            # "null" too: the version an object had before versioning was turned on
            extra = {"VersionId": version} if version else {}
            found = self.client.get_object(Bucket=self.bucket, Key=self.prefix + name, **extra)
            data: bytes = found["Body"].read()
        return data


def open_checkpoint_store(location: str, ledger: Ledger) -> CheckpointStore:
    """The checkpoints of `ledger` under `location` (one folder per ledger location)."""
    ledger_id = hashlib.sha256(str(ledger).encode()).hexdigest()[:16]
    if location.startswith("s3://"):
        bucket, _, prefix = location.removeprefix("s3://").partition("/")
        if not bucket:
            raise BadInput(f"checkpoint store {location!r} names no bucket")
        return S3CheckpointStore(bucket, f"{prefix.strip('/')}/{ledger_id}")
    return LocalCheckpointStore(Path(location) / ledger_id)


def write_checkpoint(
    ledger: Ledger, store: CheckpointStore, key: Ed25519PrivateKey
) -> Checkpoint | None:
    """Sign and store the ledger's head now (None for an empty ledger)."""
    head = ledger.head()
    if head is None:
        return None
    unsigned = Checkpoint(
        str(ledger), head.seq, head.hash, datetime.now(UTC).isoformat(timespec="seconds")
    )
    checkpoint = replace(unsigned, signature=key.sign(unsigned.statement()).hex())
    store.write(checkpoint.name, json.dumps(asdict(checkpoint), sort_keys=True).encode())
    return checkpoint


def check_checkpoints(
    ledger: Ledger,
    store: CheckpointStore,
    key: Ed25519PublicKey | None,
    walked: LedgerVerification,
) -> LedgerVerification:
    """`walked` (a sound chain of `walked.entries`) against every stored checkpoint: a
    cut end or a rewritten chain is named by the entry a checkpoint covers."""
    from cryptography.exceptions import InvalidSignature

    names = store.names()
    if names and key is None:
        raise IntegrityError(
            f"{len(names)} checkpoint(s) in {store} but no key to check them: "
            "put the signing key's .pub file in the key folder"
        )
    for name in names:
        try:
            checkpoint = Checkpoint(**json.loads(store.read(name)))
        except (ValueError, TypeError):
            raise IntegrityError(f"checkpoint {name} in {store} is not a checkpoint") from None
        assert key is not None
        try:
            key.verify(bytes.fromhex(checkpoint.signature), checkpoint.statement())
        except (InvalidSignature, ValueError):
            return replace(
                walked,
                first_bad=checkpoint.count,
                reason=f"has a checkpoint ({name}) "
                "whose signature does not hold: it was forged or damaged",
            )
        if name != checkpoint.name:  # signed content filed under another name
            return replace(
                walked,
                first_bad=checkpoint.count,
                reason=f"has a checkpoint filed as {name} that covers {checkpoint.count} entries",
            )
        signed = f"a checkpoint signed at {checkpoint.time}"
        if checkpoint.count > walked.entries:
            return replace(
                walked,
                first_bad=walked.entries + 1,
                reason=f"is missing: the ledger ends at entry {walked.entries}, but {signed} "
                f"covers {checkpoint.count} entries (its end was cut off)",
            )
        entry = ledger.at(checkpoint.count)
        if entry.hash != checkpoint.head_hash:
            return replace(
                walked,
                first_bad=checkpoint.count,
                reason=f"differs from {signed}: the chain up to it was rewritten",
            )
    return replace(walked, checkpoints=len(names))


class Checkpointer:
    """A server's schedule: `write` a checkpoint every `every` seconds, and once more on
    the way out. A failed checkpoint is a warning; the next one tries again."""

    def __init__(self, write: Callable[[], Checkpoint | None], every: float) -> None:
        self.write, self.every = write, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="checkpoints", daemon=True)

    def _write(self) -> None:
        try:
            self.write()
        except Exception as error:  # any: this thread must outlive one failed checkpoint
            warnings.warn(
                f"ledger checkpoint failed: {one_line(error)}", ReplayWarning, stacklevel=2
            )

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self._write()

    def __enter__(self) -> Checkpointer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._write()
