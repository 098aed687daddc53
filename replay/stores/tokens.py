"""API tokens, hashed at rest: a private JSON file (`<state folder>/tokens.json`, 0600).

A token is 256 random bits, so its sha256 is enough to store (a password hash's slowness
guards low-entropy secrets a person chose; a token is not one). The token itself is
shown once, when it is made, and never written anywhere.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from replay.errors import BadInput
from replay.stores.keys import private_folder

SCOPES = ("decide", "read")
PREFIX = "rpl_"


@dataclass(frozen=True)
class Token:
    name: str
    scope: str
    sha256: str
    created: str


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    def __init__(self, path: Path) -> None:
        self.path = path

    def tokens(self) -> list[Token]:
        if not self.path.exists():
            return []
        return [Token(**item) for item in json.loads(self.path.read_text())]

    def _save(self, tokens: list[Token]) -> None:
        private_folder(self.path.parent)
        partial = self.path.with_name(f".{self.path.name}.{os.getpid()}.partial")
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump([asdict(token) for token in tokens], handle, indent=2)
        partial.replace(self.path)

    @contextlib.contextmanager
    def _changing(self) -> Iterator[list[Token]]:
        """The tokens, to change in place and save, one writer at a time."""
        private_folder(self.path.parent)
        lock_path = self.path.with_name(f".{self.path.name}.lock")
        lock = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            tokens = self.tokens()
            yield tokens
            self._save(tokens)
        finally:
            os.close(lock)

    def add(self, name: str, scope: str) -> tuple[Token, str]:
        """A new token named `name`: its record and the token itself (shown once)."""
        if scope not in SCOPES:
            raise BadInput(f"a token's scope is one of {', '.join(SCOPES)}, not {scope!r}")
        if not name or not name.replace("-", "").replace("_", "").isalnum():
            raise BadInput(f"a token's name is letters, digits, - and _, not {name!r}")
        secret = PREFIX + secrets.token_urlsafe(32)
        created = datetime.now(UTC).isoformat(timespec="seconds")
        token = Token(name, scope, token_sha256(secret), created)
        with self._changing() as tokens:
            if any(existing.name == name for existing in tokens):
                raise BadInput(f"a token named {name!r} exists: revoke it first")
            tokens.append(token)
        return token, secret

    def revoke(self, name: str) -> Token:
        with self._changing() as tokens:
            found = [token for token in tokens if token.name == name]
            if not found:
                raise BadInput(f"no token named {name!r}")
            tokens.remove(found[0])
        return found[0]

    def find(self, secret: str) -> Token | None:
        """The token `secret` is, if it is one (compared by hash)."""
        digest = token_sha256(secret)
        for token in self.tokens():
            if secrets.compare_digest(token.sha256, digest):
                return token
        return None
