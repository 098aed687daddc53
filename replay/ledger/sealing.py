"""Personal data sealed per subject, so that a person's data can be erased without
breaking the chain.

A decision's inputs and outputs (and those of its replays) are stored as AES-GCM
ciphertext under a key that belongs to its subject alone, and the chain hashes the
ciphertext. Destroying the key (`replay subject erase`) makes every entry sealed under
it unreadable while each hash, and so `ledger verify`, stays as it was.

The keys live in a key store (`replay.stores.subject_keys`). A sealed field names the
key it was sealed under, so a subject who returns after an erasure gets a new key and
the old entries stay erased.
"""

from __future__ import annotations

import base64
import os

from replay.errors import IntegrityError
from replay.stores.subject_keys import SubjectKey

CIPHER = "aes-256-gcm"


def seal(key: SubjectKey, plain: bytes, context: str) -> str:
    """`plain` encrypted under `key`, bound to `context` (which entry, which field):
    `aes-256-gcm:<key id>:<base64 of nonce and ciphertext>`."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(12)
    sealed = AESGCM(key.secret).encrypt(nonce, plain, context.encode())
    return f"{CIPHER}:{key.key_id}:{base64.b64encode(nonce + sealed).decode()}"


def key_id_of(sealed: str) -> str:
    cipher, _, rest = sealed.partition(":")
    key_id, _, data = rest.partition(":")
    if cipher != CIPHER or not key_id or not data:
        raise IntegrityError(f"sealed data that is not {CIPHER}:<key id>:<data>")
    return key_id


def unseal(secret: bytes, sealed: str, context: str) -> bytes:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    try:
        data = base64.b64decode(sealed.split(":", 2)[2], validate=True)
        return AESGCM(secret).decrypt(data[:12], data[12:], context.encode())
    except (InvalidTag, ValueError, IndexError):  # binascii.Error is a ValueError
        raise IntegrityError(f"sealed data for {context} does not open with its key") from None
