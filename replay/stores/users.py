"""The console's users, with a role, their passwords hashed with Argon2id
(argon2-cffi): a private JSON file (`<state folder>/users.json`, 0600).

A password is something a person chose, so it is stored only as a slow, salted hash;
checking one costs the same whether the user exists or not.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

from replay.errors import BadInput
from replay.stores.records import RecordFile

ROLES = ("support", "compliance", "admin")
MIN_PASSWORD = 12  # characters


@dataclass(frozen=True)
class User:
    name: str
    role: str
    password_hash: str
    created: str


class UserStore:
    def __init__(self, path: Path) -> None:
        from argon2 import PasswordHasher  # only user commands and the console pay for it

        self.file = RecordFile(path, User)
        self.hasher = PasswordHasher()

    @cached_property
    def _absent(self) -> str:
        """A hash to check an unknown name against, so a wrong name answers as slowly."""
        return self.hasher.hash("no such user")

    def users(self) -> list[User]:
        return self.file.read()

    def add(self, name: str, role: str, password: str) -> User:
        if role not in ROLES:
            raise BadInput(f"a user's role is one of {', '.join(ROLES)}, not {role!r}")
        if not name or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise BadInput(f"a user's name is letters, digits, '.', '-' and '_', not {name!r}")
        if len(password) < MIN_PASSWORD:
            raise BadInput(f"a password needs at least {MIN_PASSWORD} characters")
        created = datetime.now(UTC).isoformat(timespec="seconds")
        user = User(name, role, self.hasher.hash(password), created)
        with self.file.changing() as users:
            if any(existing.name == name for existing in users):
                raise BadInput(f"a user named {name!r} exists: remove them first")
            users.append(user)
        return user

    def remove(self, name: str) -> User:
        with self.file.changing() as users:
            found = [user for user in users if user.name == name]
            if not found:
                raise BadInput(f"no user named {name!r}")
            users.remove(found[0])
        return found[0]

    def check(self, name: str, password: str) -> User | None:
        """The user, if `password` is theirs; None for a wrong name or password alike."""
        from argon2.exceptions import VerificationError

        user = next((user for user in self.users() if user.name == name), None)
        try:
            self.hasher.verify(user.password_hash if user else self._absent, password)
        except VerificationError:
            return None
        return user
