"""Who may use the HTTP API and the console.

The API takes bearer tokens with a scope (`decide`, `read`): `add_token`, `list_tokens`
and `revoke_token` manage them (`replay tokens ...`); `require` is the FastAPI
dependency every route but `/health` uses: no or an unknown token is 401, a token
without the route's scope 403. The console's people sign in as users with a role
(`support`, `compliance`, `admin`): `add_user`, `list_users`, `remove_user`
(`replay users ...`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from replay.settings import Settings, load_settings
from replay.stores.tokens import Token, TokenStore
from replay.stores.users import User, UserStore


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


def user_store(settings: Settings) -> UserStore:
    return UserStore(settings.home / "users.json")


def add_user(name: str, role: str, password: str, *, settings: Settings | None = None) -> User:
    """A console user; only the password's Argon2id hash is kept."""
    return user_store(settings or load_settings()).add(name, role, password)


def list_users(*, settings: Settings | None = None) -> list[User]:
    return user_store(settings or load_settings()).users()


def remove_user(name: str, *, settings: Settings | None = None) -> User:
    return user_store(settings or load_settings()).remove(name)


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
