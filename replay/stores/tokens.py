"""API tokens, hashed at rest: a private JSON file (`<state folder>/tokens.json`, 0600).

A token is 256 random bits, so its sha256 is enough to store (a password hash's slowness
guards low-entropy secrets a person chose; a token is not one). The token itself is
shown once, when it is made, and never written anywhere.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from replay.errors import BadInput
from replay.stores.records import RecordFile

SCOPES = ("decide", "read", "ingest")  # ingest: post decisions made elsewhere
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
        self.file = RecordFile(path, Token)

    def tokens(self) -> list[Token]:
        return self.file.read()

    def add(self, name: str, scope: str) -> tuple[Token, str]:
        """A new token named `name`: its record and the token itself (shown once)."""
        if scope not in SCOPES:
            raise BadInput(f"a token's scope is one of {', '.join(SCOPES)}, not {scope!r}")
        if not name or not name.replace("-", "").replace("_", "").isalnum():
            raise BadInput(f"a token's name is letters, digits, - and _, not {name!r}")
        secret = PREFIX + secrets.token_urlsafe(32)
        created = datetime.now(UTC).isoformat(timespec="seconds")
        token = Token(name, scope, token_sha256(secret), created)
        with self.file.changing() as tokens:
            if any(existing.name == name for existing in tokens):
                raise BadInput(f"a token named {name!r} exists: revoke it first")
            tokens.append(token)
        return token, secret

    def revoke(self, name: str) -> Token:
        with self.file.changing() as tokens:
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
