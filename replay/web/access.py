"""Who may use the HTTP API: bearer tokens with a scope (`decide`, `read`).

`add_token`, `list_tokens` and `revoke_token` manage them (`replay tokens ...`);
`require` is the FastAPI dependency every route but `/health` uses: no or an unknown
token is 401, a token without the route's scope 403.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from replay.settings import Settings, load_settings
from replay.stores.tokens import Token, TokenStore


def token_store(settings: Settings) -> TokenStore:
    return TokenStore(settings.home / "tokens.json")


@dataclass(frozen=True)
class NewToken:
    name: str
    scope: str
    token: str  # shown once: only its hash is kept


def add_token(name: str, scope: str, *, settings: Settings | None = None) -> NewToken:
    """Make a token for the HTTP API; the token itself is only in the answer."""
    record, secret = token_store(settings or load_settings()).add(name, scope)
    return NewToken(record.name, record.scope, secret)


def list_tokens(*, settings: Settings | None = None) -> list[Token]:
    return token_store(settings or load_settings()).tokens()


def revoke_token(name: str, *, settings: Settings | None = None) -> Token:
    return token_store(settings or load_settings()).revoke(name)


def require(scope: str, store: TokenStore) -> Any:
    """A FastAPI dependency: the caller's token, which must have `scope`."""
    from fastapi import Depends, HTTPException
    from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

    bearer = HTTPBearer(auto_error=False)

    def check(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Token:  # noqa: B008
        unauthorised = {"WWW-Authenticate": "Bearer"}
        if credentials is None:
            raise HTTPException(401, "send a token: Authorization: Bearer TOKEN", unauthorised)
        token = store.find(credentials.credentials)
        if token is None:
            raise HTTPException(401, "unknown or revoked token", unauthorised)
        if token.scope != scope:
            raise HTTPException(403, f"this token's scope is {token.scope}, not {scope}")
        return token

    return Depends(check)
