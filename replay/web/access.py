"""Who may use the HTTP API and the console.

The API takes bearer tokens with a scope (`decide`, `read`): `add_token`, `list_tokens`
and `revoke_token` manage them (`replay tokens ...`); `TokenGate` checks them in front
of the whole API, from a request's headers alone, before its route runs or its body is
read: no or an unknown token is 401, a token without the scope of the request's method
403, whatever the body. The console's people sign in as users with a role (`support`,
`compliance`, `admin`): `add_user`, `list_users`, `remove_user` (`replay users ...`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from replay.settings import Settings, load_settings
from replay.stores.tokens import Token, TokenStore
from replay.stores.users import User, UserStore
from replay.web.running import refused

if TYPE_CHECKING:  # FastAPI loads in about 0.3 s: only a running server pays it
    from starlette.types import ASGIApp, Receive, Scope, Send


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


class TokenGate:
    """ASGI middleware in front of the whole API: every request but those to
    `open_paths` needs a bearer token with the scope its method needs (`scopes`), checked
    from its headers before anything reads its body or routes it, so that a caller
    without a token learns nothing of what the API parses (not even its body limit). A
    method no scope allows is refused (405) to every token. The request's token is kept
    in its state (`request.state.token`).

    A path under one of `sender_paths` needs that path's scope instead, and takes the
    token as its last segment too (`/ingest/kserve/TOKEN`): a sender such as KServe's
    payload logger is given a URL and cannot send headers. The server logs no URLs."""

    def __init__(
        self,
        app: ASGIApp,
        store: TokenStore,
        scopes: Mapping[str, str],
        open_paths: frozenset[str],
        sender_paths: Mapping[str, str] | None = None,
    ) -> None:
        self.app = app
        self.store = store
        self.scopes = scopes
        self.open_paths = open_paths
        self.sender_paths = dict(sender_paths or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in self.open_paths:
            refusal = self._refusal(scope)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope) -> Any:
        """The answer refusing this request, or None with its token kept in its state.
        (Run on every request: the raw headers are read as they are, and the answer is
        made only for a refusal.)"""
        path, method = scope["path"], scope["method"]
        authorization = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
        kind, _, secret = authorization.decode("latin-1").partition(" ")
        sender = next((p for p in self.sender_paths if path.startswith(p)), None)
        if sender is not None and kind.lower() != "bearer":
            kind, secret = "bearer", path[len(sender) :].strip("/")
        if kind.lower() != "bearer" or not secret.strip():
            return refused(path, 401, "send a token: Authorization: Bearer TOKEN", _ASK)
        token = self.store.find(secret.strip())  # a stat: the file is read when it changed
        if token is None:
            return refused(path, 401, "unknown or revoked token", _ASK)
        needed = self.scopes.get(method)
        if sender is not None:
            needed = self.sender_paths[sender] if method == "POST" else None
        if needed is None:
            return refused(path, 405, f"no route of this API takes {method}")
        if token.scope != needed:
            return refused(path, 403, f"this token's scope is {token.scope}, not {needed}")
        scope.setdefault("state", {})["token"] = token
        return None


_ASK = {"WWW-Authenticate": "Bearer"}
