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

import contextlib
import hashlib
import json
import os
import re
import stat
import threading
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from replay.errors import BadInput, IntegrityError, ReplayWarning, one_line
from replay.ledger.chain import Ledger, LedgerVerification
from replay.manifests.canonical import canonical_json
from replay.stores.blobs import reaching_s3, s3_client
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


# A checkpoint is a few hundred bytes: anything past this is not one, and is never read
# further (a store's writers could otherwise make `verify` read without end).
MAX_CHECKPOINT_BYTES = 64 * 1024

_HEX_64 = re.compile(r"[0-9a-f]{64}")  # a SHA-256, as the chain writes it
_HEX_128 = re.compile(r"[0-9a-f]{128}")  # an Ed25519 signature


def _refused(where: str, why: str) -> IntegrityError:
    return IntegrityError(f"{where} is not a checkpoint: {why}")


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object"


def _is_text(value: object) -> bool:
    """A string UTF-8 can hold: JSON's escapes can make one it cannot (a lone surrogate),
    which `Checkpoint.statement` could not encode."""
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _is_time(value: object) -> bool:
    try:
        return isinstance(value, str) and bool(datetime.fromisoformat(value))
    except ValueError:
        return False


# What each field must be, and how a message says it: the values `write_checkpoint`
# writes (a count within the ledger's 64-bit sequence numbers).
_FIELDS: dict[str, tuple[Callable[[object], bool], str]] = {
    "ledger": (_is_text, "UTF-8 text"),
    "count": (
        lambda v: isinstance(v, int) and not isinstance(v, bool) and 1 <= v < 2**63,
        "a whole number from 1 to 2**63 - 1",
    ),
    "head_hash": (lambda v: isinstance(v, str) and bool(_HEX_64.fullmatch(v)), "64 hex digits"),
    "time": (_is_time, "an ISO 8601 time"),
    "signature": (
        lambda v: isinstance(v, str) and bool(_HEX_128.fullmatch(v)),
        "128 hex digits",
    ),
}


def parse_checkpoint(data: bytes, where: str) -> Checkpoint:
    """The checkpoint in `data` (a stored file's bytes), or IntegrityError naming `where`
    and what is wrong: whatever a store holds, this is the one check of its shape."""
    if len(data) > MAX_CHECKPOINT_BYTES:
        raise _refused(where, f"it holds more than {MAX_CHECKPOINT_BYTES // 1024} KiB")
    try:
        document = json.loads(data.decode("utf-8"))  # json would also guess UTF-16 or -32
    except UnicodeDecodeError:
        raise _refused(where, "its bytes are not UTF-8 text") from None
    except (ValueError, RecursionError):  # RecursionError: brackets nested too deep
        raise _refused(where, "it is not JSON") from None
    if not isinstance(document, dict):
        raise _refused(where, f"it holds {_json_kind(document)}, not a JSON object")
    missing = [name for name in _FIELDS if name not in document]
    if missing:
        raise _refused(where, f"it has no {', no '.join(missing)}")
    unknown = sorted(name for name in document if name not in _FIELDS)
    if unknown:  # named by the first, cut short: their names are anyone's choice
        first = one_line(repr(unknown[0]), 40)
        raise _refused(where, f"it has {len(unknown)} unknown field(s), the first {first}")
    for name, (valid, expected) in _FIELDS.items():
        if not valid(document[name]):
            raise _refused(where, f"its {name} is {_json_kind(document[name])}, not {expected}")
    return Checkpoint(**document)


def _shown(name: str) -> str:
    """A stored name as a message shows it: a store's writers choose names, and one with
    a line break or a terminal's control codes must not shape the message."""
    return name if name.isprintable() else ascii(name)


class CheckpointStore(ABC):
    """Checkpoint files of one ledger: written once, never replaced."""

    @abstractmethod
    def write(self, name: str, data: bytes) -> None: ...

    @abstractmethod
    def names(self) -> list[str]: ...

    @abstractmethod
    def read(self, name: str) -> bytes:
        """At most MAX_CHECKPOINT_BYTES + 1 bytes of the checkpoint: a longer one is cut
        there (`parse_checkpoint` names it); IntegrityError if it cannot be read."""

    def label(self, name: str) -> str:
        """The checkpoint `name` in this store, for messages."""
        return f"checkpoint {_shown(name)} in {self}"


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
        where = self.label(name)
        try:
            # looked at before it is opened: a FIFO blocks its reader, a device may never
            # end, a symbolic link leads anywhere
            _must_be_regular(os.lstat(self.root / name).st_mode, where)
            descriptor = os.open(self.root / name, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
            with os.fdopen(descriptor, "rb") as handle:
                # swapped since the look? O_NONBLOCK kept the opening from blocking
                _must_be_regular(os.fstat(handle.fileno()).st_mode, where)
                return handle.read(MAX_CHECKPOINT_BYTES + 1)
        except OSError as error:
            raise _refused(where, f"it cannot be read ({error.strerror or error})") from None


_NOT_REGULAR = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISLNK, "a symbolic link"),
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISCHR, "a device"),
    (stat.S_ISBLK, "a device"),
    (stat.S_ISSOCK, "a socket"),
)


def _must_be_regular(mode: int, where: str) -> None:
    if not stat.S_ISREG(mode):
        kind = next((kind for test, kind in _NOT_REGULAR if test(mode)), "not a file")
        raise _refused(where, f"it is {kind}, not a regular file")


class S3CheckpointStore(CheckpointStore):
    """A bucket and prefix; endpoint and credentials from boto3's usual chain.

    A checkpoint is written only if its name is free (`If-None-Match`). Read back, a
    checkpoint is its first version: in a versioned bucket (as Object Lock requires) a
    checkpoint overwritten or deleted afterwards is still found, and checked as first
    written."""

    def __init__(self, bucket: str, prefix: str) -> None:
        self.bucket, self.prefix = bucket, prefix.strip("/") + "/"
        self.client = s3_client()  # one try within the connect budget, never minutes

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

    def _first_versions(self) -> dict[str, dict[str, Any]]:
        """Each checkpoint's first version (its id and size), by name (deleted ones too)."""
        first: dict[str, dict[str, Any]] = {}
        with reaching_s3(f"checkpoint store {self}"):
            pages = self.client.get_paginator("list_object_versions").paginate(
                Bucket=self.bucket, Prefix=self.prefix
            )
            for page in pages:
                # a key's versions are listed newest first: the last one seen is the first
                for version in page.get("Versions", []):
                    first[version["Key"][len(self.prefix) :]] = version
        return {name: version for name, version in first.items() if name.endswith(".json")}

    def names(self) -> list[str]:
        self._versions = self._first_versions()  # read() then needs no second listing
        return sorted(self._versions)

    def read(self, name: str) -> bytes:
        versions = getattr(self, "_versions", {})
        first = (versions if name in versions else self._first_versions()).get(name, {})
        # "null" too: the version an object had before versioning was turned on
        extra = {"VersionId": first["VersionId"]} if first.get("VersionId") else {}
        if first.get("Size", 0) > MAX_CHECKPOINT_BYTES:  # asked for no more than is read
            extra["Range"] = f"bytes=0-{MAX_CHECKPOINT_BYTES}"
        with reaching_s3(f"checkpoint store {self}"):
            found = self.client.get_object(Bucket=self.bucket, Key=self.prefix + name, **extra)
            with contextlib.closing(found["Body"]) as body:
                data: bytes = body.read(MAX_CHECKPOINT_BYTES + 1)
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
        checkpoint = parse_checkpoint(store.read(name), store.label(name))
        assert key is not None
        try:
            key.verify(bytes.fromhex(checkpoint.signature), checkpoint.statement())
        except InvalidSignature:
            return replace(
                walked,
                first_bad=checkpoint.count,
                reason=f"has a checkpoint ({_shown(name)}) "
                "whose signature does not hold: it was forged or damaged",
            )
        if name != checkpoint.name:  # signed content filed under another name
            return replace(
                walked,
                first_bad=checkpoint.count,
                reason=f"has a checkpoint filed as {_shown(name)} "
                f"that covers {checkpoint.count} entries",
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
