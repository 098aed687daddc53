"""Content-addressed blob stores (wheels, image archives), behind one base class.

A blob's name is its sha256; a read checks it, so a flipped byte is caught where it
is read, not later inside a build. `open_blob_store` picks the store from a location:
a folder (the embedded default) or `s3://bucket/prefix`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from replay.errors import BadInput, EnvironmentProblem, IntegrityError
from replay.manifests.canonical import sha256_file
from replay.settings import load_settings, without_password

if TYPE_CHECKING:
    from botocore.client import BaseClient


class BlobStore(ABC):
    @abstractmethod
    def has(self, digest: str) -> bool: ...

    @abstractmethod
    def put(self, path: Path) -> str:
        """Store a file's bytes; return their sha256."""

    @abstractmethod
    def _fetch(self, digest: str, destination: Path) -> None: ...

    def get(self, digest: str, destination: Path) -> Path:
        """Copy a blob to `destination`, checking its hash on the way."""
        destination.parent.mkdir(parents=True, exist_ok=True)
        self._fetch(digest, destination)
        found = sha256_file(destination)
        if found != digest:
            destination.unlink()
            raise IntegrityError(f"blob {digest} in {self} hashes to {found}")
        return destination

    def copy(self, digest: str, destination: Path) -> Path:
        """Copy a blob as stored, unchecked: for callers that compare its hash with a
        manifest's themselves (to name the copy that differs)."""
        destination.parent.mkdir(parents=True, exist_ok=True)
        self._fetch(digest, destination)
        return destination

    def stored_sha256(self, digest: str) -> str:
        """The sha256 of the bytes stored under `digest` (for verification reports)."""
        with tempfile.TemporaryDirectory() as scratch:
            copy = Path(scratch) / "blob"
            self._fetch(digest, copy)
            return sha256_file(copy)


class LocalBlobStore(BlobStore):
    """A folder: `sha256/ab/abcdef…`; writes go through a temporary file and a rename."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def __str__(self) -> str:
        return str(self.root)

    def path(self, digest: str) -> Path:
        return self.root / "sha256" / digest[:2] / digest

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def put(self, path: Path) -> str:
        digest = sha256_file(path)
        target = self.path(digest)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            handle, partial = tempfile.mkstemp(dir=target.parent, prefix=".partial-")
            os.close(handle)
            shutil.copyfile(path, partial)
            os.replace(partial, target)
        return digest

    def _fetch(self, digest: str, destination: Path) -> None:
        source = self.path(digest)
        if not source.is_file():
            raise IntegrityError(f"blob {digest} is missing from {self.root}")
        shutil.copyfile(source, destination)

    def stored_sha256(self, digest: str) -> str:
        return sha256_file(self.path(digest))


class S3BlobStore(BlobStore):
    """A bucket (and key prefix) on S3 or anything that speaks its API.

    The endpoint and credentials come from boto3's usual chain (`AWS_ENDPOINT_URL_S3`,
    `AWS_ACCESS_KEY_ID`, profiles, instance roles). An upload becomes visible only once
    complete, so a failed `put` leaves nothing half-written under the blob's name.
    """

    def __init__(self, bucket: str, prefix: str = "", connect_timeout: float | None = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.client = s3_client(connect_timeout)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def key(self, digest: str) -> str:
        return f"{self.prefix}sha256/{digest[:2]}/{digest}"

    def has(self, digest: str) -> bool:
        # A listing rather than HEAD: HEAD answers a bare 404 for a missing bucket too,
        # which would read as "blob absent" instead of "store misconfigured".
        key = self.key(digest)
        with reaching_s3(f"blob store {self}"):
            listing = self.client.list_objects_v2(Bucket=self.bucket, Prefix=key, MaxKeys=1)
        return any(item["Key"] == key for item in listing.get("Contents", []))

    def put(self, path: Path) -> str:
        digest = sha256_file(path)
        if not self.has(digest):
            with reaching_s3(f"blob store {self}"):
                self.client.upload_file(str(path), self.bucket, self.key(digest))
        return digest

    def _fetch(self, digest: str, destination: Path) -> None:
        if not self.has(digest):
            raise IntegrityError(f"blob {digest} is missing from {self}")
        with reaching_s3(f"blob store {self}"):
            self.client.download_file(self.bucket, self.key(digest), str(destination))


def s3_client(connect_timeout: float | None = None) -> BaseClient:
    """An S3 client (endpoint and credentials from boto3's usual chain) whose every call
    is one try of `connect_timeout` seconds (None: REPLAY_CONNECT_TIMEOUT): botocore's
    default, 60 s and five tries with backoff, would hold a command for minutes."""
    import boto3  # about 0.5 s: only S3 users pay it
    from botocore.config import Config

    seconds = load_settings().connect_timeout if connect_timeout is None else connect_timeout
    bounded = Config(
        connect_timeout=seconds,
        read_timeout=seconds,
        retries={"total_max_attempts": 1, "mode": "standard"},
    )
    return boto3.client("s3", config=bounded)


@contextlib.contextmanager
def reaching_s3(where: str) -> Iterator[None]:
    """Turn botocore's failures into one line naming `where` (a store), the endpoint
    without its password."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        ConnectTimeoutError,
        EndpointConnectionError,
        ReadTimeoutError,
    )

    try:
        yield
    except (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError) as error:
        endpoint = urlsplit(error.kwargs.get("endpoint_url", "")).netloc or "(unknown)"
        raise EnvironmentProblem(
            f"{where}: cannot reach the S3 endpoint {without_password(endpoint)}"
        ) from None
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        message = error.response.get("Error", {}).get("Message") or code
        raise EnvironmentProblem(f"{where}: {code}: {without_password(message)}") from None
    except BotoCoreError as error:
        raise EnvironmentProblem(f"{where}: {without_password(str(error))}") from None


def open_blob_store(location: str, connect_timeout: float | None = None) -> BlobStore:
    """`s3://bucket/prefix` or a folder; an S3 call answers within `connect_timeout`
    seconds or fails (None: REPLAY_CONNECT_TIMEOUT)."""
    if location.startswith("s3://"):
        bucket, _, prefix = location.removeprefix("s3://").partition("/")
        if not bucket:
            raise BadInput(f"blob store {location!r} names no bucket (s3://bucket/prefix)")
        return S3BlobStore(bucket, prefix, connect_timeout)
    return LocalBlobStore(Path(location))
