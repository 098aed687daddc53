"""Canonical JSON and content hashes.

Canonical form: keys sorted, UTF-8 (no ASCII escaping), no insignificant whitespace,
floats as Python's shortest round-trip repr. Two equal documents give equal bytes, so
their sha256 is an identity.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any


def _reject_non_finite(value: Any) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"canonical JSON cannot hold {value!r}")
    if isinstance(value, dict):
        for item in value.values():
            _reject_non_finite(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _reject_non_finite(item)


def canonical_json(document: Any) -> bytes:
    """The canonical UTF-8 bytes of a JSON-compatible document."""
    try:
        text = json.dumps(
            document, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False
        )
    except ValueError:  # json's message does not say which value: find it
        _reject_non_finite(document)
        raise
    return text.encode("utf-8")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path | str, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def document_id(document: Any) -> str:
    """sha256 of the canonical JSON of `document`."""
    return sha256_bytes(canonical_json(document))
