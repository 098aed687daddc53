"""A private JSON file of records (API tokens, console users): created 0600 in a 0700
folder, replaced whole on each change, and changed by one writer at a time (an flock on
a file beside it), so that two commands adding at once both keep their record."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from replay.stores.keys import private_folder

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

Record = TypeVar("Record", bound="DataclassInstance")


class RecordFile(Generic[Record]):
    def __init__(self, path: Path, kind: type[Record]) -> None:
        self.path = path
        self.kind = kind
        # The records as last read, and the file's identity then: a server checks a
        # token on every request, and the file changes only by being replaced whole.
        self._read: tuple[tuple[int, int, int], list[Record]] | None = None

    def read(self) -> list[Record]:
        try:
            status = self.path.stat()
        except FileNotFoundError:
            return []
        identity = (status.st_ino, status.st_mtime_ns, status.st_size)
        if self._read is None or self._read[0] != identity:
            items: list[dict[str, Any]] = json.loads(self.path.read_text())
            self._read = identity, [self.kind(**item) for item in items]
        return list(self._read[1])

    @contextlib.contextmanager
    def changing(self) -> Iterator[list[Record]]:
        """The records, to change in place; saved when the block ends without error."""
        private_folder(self.path.parent)
        lock = os.open(
            self.path.with_name(f".{self.path.name}.lock"), os.O_CREAT | os.O_RDWR, 0o600
        )
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            records = self.read()
            yield records
            self._save(records)
        finally:
            os.close(lock)

    def _save(self, records: list[Record]) -> None:
        partial = self.path.with_name(f".{self.path.name}.{os.getpid()}.partial")
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump([asdict(record) for record in records], handle, indent=2)
        partial.replace(self.path)
