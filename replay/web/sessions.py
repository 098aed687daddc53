"""Who is using the console and what their role lets them open.

A session is a cookie signed with itsdangerous (Starlette's `SessionMiddleware`) by a
key kept private in the key folder; it holds the user's name, which account it was
(a digest of its salted password hash), when it began and was last used, and a CSRF token, never a
password. The user's role is read from the user store on every request, so removing a
user, or removing and adding them again (a new password), ends their sessions at once.
Everything here works on the session as a plain dict, so it is tested without a server.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from replay.errors import BadInput
from replay.settings import Settings
from replay.stores.keys import create_private
from replay.stores.users import User, UserStore

SESSION_COOKIE = "replay_console"
SESSION_MAX = 12 * 3600  # seconds from signing in after which a session ends, used or not
SIGN_INS_AT_ONCE = 2  # Argon2 checks in parallel: each takes 64 MiB and a core's time

_SUPPORT = frozenset({"find", "decision", "what-if", "sweep", "options"})
# What each role may open or do: pages, and the actions `review` and `verify`.
ROLE_RIGHTS: dict[str, frozenset[str]] = {
    "support": _SUPPORT,
    "compliance": _SUPPORT | {"report", "verify", "review"},
    # Admins manage accounts; they see no one's data unless also given a data role.
    "admin": frozenset({"users"}),
}
ROLE_HOME = {"support": "/", "compliance": "/", "admin": "/users"}


class SignInNeeded(Exception):
    """No valid session: the console answers with its sign-in page and this message."""


class Forbidden(Exception):
    """A signed-in user whose role does not include the page."""


class StaleForm(BadInput):
    """A form without this session's CSRF token: not sent from this console's page."""


@dataclass(frozen=True)
class ConsoleUser:
    name: str
    role: str

    @property
    def by(self) -> str:
        """Who, as the ledger records it (access, replay, review and report entries)."""
        return f"{self.name} (console)"

    def may(self, page: str) -> bool:
        return page in ROLE_RIGHTS[self.role]

    def require(self, page: str) -> None:
        if not self.may(page):
            raise Forbidden(
                f"your role ({self.role}) does not include {page}: ask someone with "
                f"the {_role_with(page)} role"
            )


def _role_with(page: str) -> str:
    return next(role for role, pages in ROLE_RIGHTS.items() if page in pages)


def _account(user: User) -> str:
    """Which account a session belongs to: a user removed and added again (a new salted
    password hash) is another account. A digest, so the cookie does not carry the hash."""
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:g} seconds"
    if seconds < 7200:
        return f"{seconds / 60:g} minutes"
    return f"{seconds / 3600:g} hours"


def console_secret(settings: Settings) -> str:
    """The key sessions are signed with, made once and kept private in the key folder.
    Deleting it signs everybody out."""
    return create_private(
        settings.key_folder / "console.key", secrets.token_hex(32).encode()
    ).decode()


class Sessions:
    def __init__(
        self, users: UserStore, idle: float, clock: Callable[[], float] = time.time
    ) -> None:
        if idle <= 0:
            raise BadInput(f"a console session's idle time must be positive, not {idle:g}")
        self.users = users
        self.idle = idle
        self._clock = clock
        # Sign-in is open to anyone who reaches the page: bound what guessing can cost.
        self._checking = threading.BoundedSemaphore(SIGN_INS_AT_ONCE)

    def csrf(self, session: MutableMapping[str, Any]) -> str:
        """This session's CSRF token (made on its first page, the sign-in page included)."""
        if "csrf" not in session:
            session["csrf"] = secrets.token_urlsafe(32)
        return str(session["csrf"])

    def check_form(self, session: MutableMapping[str, Any], sent: str | None) -> None:
        expected = session.get("csrf")
        if not expected or not sent or not secrets.compare_digest(str(expected), sent):
            raise StaleForm(
                "this form was not sent from this console's page, or your session changed: "
                "reload the page and try again"
            )

    def sign_in(self, session: MutableMapping[str, Any], name: str, password: str) -> ConsoleUser:
        with self._checking:
            user = self.users.check(name, password)
        if user is None:
            raise BadInput("wrong user name or password")
        session.clear()  # a new session: nothing carried over from before signing in
        now = int(self._clock())
        session.update(user=user.name, account=_account(user), since=now, seen=now)
        self.csrf(session)
        return ConsoleUser(user.name, user.role)

    def current(self, session: MutableMapping[str, Any], had_cookie: bool) -> ConsoleUser:
        """The signed-in user, the session's last use moved to now; SignInNeeded with the
        reason otherwise (expired, ended, or a cookie that is not valid)."""
        name = session.get("user")
        if name is None:
            session.pop("seen", None)
            raise SignInNeeded(
                "your session is not valid (it expired, or the cookie was altered): sign in again"
                if had_cookie and not session
                else "sign in to use the console"
            )
        now = int(self._clock())
        if now - int(session.get("seen", 0)) > self.idle:
            session.clear()
            raise SignInNeeded(
                f"your session expired after {_duration(self.idle)} without use: sign in again"
            )
        if now - int(session.get("since", 0)) > SESSION_MAX:
            session.clear()
            raise SignInNeeded(
                f"sessions end {_duration(SESSION_MAX)} after signing in: sign in again"
            )
        user = next((u for u in self.users.users() if u.name == name), None)
        if user is None or _account(user) != session.get("account"):
            session.clear()  # removed, or removed and added again since this sign-in
            raise SignInNeeded(f"user {name} no longer exists, or was changed: sign in again")
        session["seen"] = now
        return ConsoleUser(user.name, user.role)
