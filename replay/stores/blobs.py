"""Content-addressed blob stores (wheels, image archives), behind one base class.

A blob's name is its sha256; a read checks it, so a flipped byte is caught where it
is read, not later inside a build.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path

from replay.errors import IntegrityError
from replay.manifests.canonical import sha256_file


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
