"""Personal data sealed per subject, so that a person's data can be erased without
breaking the chain.

A decision's inputs and outputs (and those of its replays) are stored as AES-GCM
ciphertext under a key that belongs to its subject alone, and the chain hashes the
ciphertext. Destroying the key (`replay subject erase`) makes every entry sealed under
it unreadable while each hash, and so `ledger verify`, stays as it was.

Keys live in a `SubjectKeyStore`: files in the key folder by default
(`LocalSubjectKeys`); a KMS can stand behind the same three methods. A sealed field
names the key it was sealed under, so a subject who returns after an erasure gets a
new key and the old entries stay erased.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

from replay.errors import IntegrityError
from replay.stores.keys import private_folder, sync_folder, write_once

CIPHER = "aes-256-gcm"


@dataclass(frozen=True)
class SubjectKey:
    key_id: str
    secret: bytes = field(repr=False)


class SubjectKeyStore(ABC):
    """Where subjects' keys are kept; `subject` is always the pseudonym, never the
    person's identifier."""

    @abstractmethod
    def current(self, subject: str) -> SubjectKey:
        """The key new entries of `subject` are sealed under, made on first use and
        durable before it is returned."""

    @abstractmethod
    def find(self, subject: str, key_id: str) -> bytes | None:
        """The secret of `key_id`, or None once it was destroyed (or never existed)."""

    @abstractmethod
    def destroy(self, subject: str) -> bool:
        """Destroy the subject's key for good; whether there was one."""


class LocalSubjectKeys(SubjectKeyStore):
    """One 0600 file per subject, `<folder>/<2 hex>/<pseudonym>`, holding its key id and
    secret. Destroying overwrites the file, then unlinks it. On a copy-on-write or
    wear-levelled disk old blocks may survive that: where erasure must hold against
    forensic recovery, keep this folder on an encrypted filesystem or use a KMS."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, subject: str) -> Path:
        if not subject.isascii() or "/" in subject or subject.startswith("."):
            raise ValueError(f"not a subject pseudonym: {subject!r}")
        return self.folder / subject[-2:] / subject

    def _read(self, path: Path) -> SubjectKey | None:
        try:
            key_id, secret = path.read_text().split()
        except FileNotFoundError:
            return None
        return SubjectKey(key_id, bytes.fromhex(secret))

    def current(self, subject: str) -> SubjectKey:
        path = self._path(subject)
        found = self._read(path)
        if found is None:
            private_folder(path.parent)
            made = f"{secrets.token_hex(8)} {secrets.token_hex(32)}\n".encode()
            write_once(path, made, 0o600)  # when two race, both use the winner's key
            found = self._read(path)
        if found is None:  # destroyed between the write and the read
            return self.current(subject)
        return found

    def find(self, subject: str, key_id: str) -> bytes | None:
        found = self._read(self._path(subject))
        return found.secret if found is not None and found.key_id == key_id else None

    def destroy(self, subject: str) -> bool:
        path = self._path(subject)
        try:
            with path.open("r+b") as handle:
                size = handle.seek(0, os.SEEK_END)
                handle.seek(0)
                handle.write(secrets.token_bytes(size))
                handle.flush()
                os.fsync(handle.fileno())
        except FileNotFoundError:
            return False
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        sync_folder(path.parent)
        return True


def seal(key: SubjectKey, plain: bytes, context: str) -> str:
    """`plain` encrypted under `key`, bound to `context` (which entry, which field):
    `aes-256-gcm:<key id>:<base64 of nonce and ciphertext>`."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(12)
    sealed = AESGCM(key.secret).encrypt(nonce, plain, context.encode())
    return f"{CIPHER}:{key.key_id}:{base64.b64encode(nonce + sealed).decode()}"


def key_id_of(sealed: str) -> str:
    cipher, key_id, _ = sealed.split(":", 2)
    if cipher != CIPHER:
        raise IntegrityError(f"sealed with {cipher!r}, which this version cannot open")
    return key_id


def unseal(secret: bytes, sealed: str, context: str) -> bytes:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    data = base64.b64decode(sealed.split(":", 2)[2])
    try:
        return AESGCM(secret).decrypt(data[:12], data[12:], context.encode())
    except InvalidTag:
        raise IntegrityError(f"sealed data for {context} does not open with its key") from None
