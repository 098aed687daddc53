"""Keys kept apart from the data they protect: private files in a key folder
(`REPLAY_KEYS`, by default `<state folder>/keys`), created 0600 in a 0700 folder.

The ledger's signing key (Ed25519) signs checkpoints of the chain's head and the record
of every image proven for a manifest. Whoever can read it can sign a forged checkpoint
or vouch for a forged image, so an operator keeps the folder away from the ledger
database's and the state folder's writers; an auditor's machine needs only the public
key file.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from replay.errors import EnvironmentProblem

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

SIGNING_KEY = "ledger-signing.key"
VERIFYING_KEY = "ledger-signing.pub"


def private_folder(path: Path) -> Path:
    """A folder only its owner may enter (created if missing)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def write_once(path: Path, data: bytes, mode: int) -> None:
    """Create `path` holding `data` with `mode`, whole or not at all, never replacing
    an existing file (when several writers race, the first wins), and on disk before
    this returns."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(partial, path)
    finally:
        partial.unlink()
    sync_folder(path.parent)  # the new name, too


def sync_folder(path: Path) -> None:
    """Make the names created or removed in a folder survive a crash."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def create_private(path: Path, data: bytes) -> bytes:
    """Write `data` to a new file readable by its owner only, unless the file exists;
    the bytes the file holds (the first writer wins when several race)."""
    private_folder(path.parent)
    write_once(path, data, 0o600)
    return path.read_bytes()


def signing_key(folder: Path) -> Ed25519PrivateKey:
    """The ledger's signing key in the key folder, made on first use (with its public
    half beside it)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = folder / SIGNING_KEY
    if not path.exists():
        new = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        create_private(path, new)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise EnvironmentProblem(f"{path} is not an Ed25519 private key")
    public = folder / VERIFYING_KEY
    if not public.exists():
        public.write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    return key


def verifying_key(folder: Path) -> Ed25519PublicKey | None:
    """The public half of the signing key (the .pub file alone is enough), or None when
    no key was ever made in the key folder."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    public = folder / VERIFYING_KEY
    if not public.exists():
        if not (folder / SIGNING_KEY).exists():
            return None
        signing_key(folder)  # writes the public half
    key = serialization.load_pem_public_key(public.read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        raise EnvironmentProblem(f"{public} is not an Ed25519 public key")
    return key
