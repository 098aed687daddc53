"""Console users: Argon2id hashes at rest in a private file, roles checked, the same
answer for a wrong name as for a wrong password, and the CLI never echoing a password."""

from __future__ import annotations

import json
import stat
from concurrent.futures import ThreadPoolExecutor

import pytest
from click.testing import CliRunner
from replay.cli.main import cli

from replay.errors import BadInput
from replay.stores.users import UserStore

PASSWORD = "correct horse battery"


@pytest.fixture
def store(tmp_path):
    return UserStore(tmp_path / "home" / "users.json")


def test_a_password_is_kept_only_as_an_argon2id_hash(store):
    user = store.add("ana", "support", PASSWORD)
    held = store.file.path.read_text()
    assert PASSWORD not in held and user.password_hash.startswith("$argon2id$")
    assert stat.S_IMODE(store.file.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.file.path.parent.stat().st_mode) == 0o700
    assert store.check("ana", PASSWORD) == user
    assert store.check("ana", PASSWORD + "!") is None
    assert store.check("nobody", PASSWORD) is None


@pytest.mark.parametrize(
    ("name", "role", "password", "message"),
    [
        ("ana", "root", PASSWORD, "role is one of support, compliance, admin"),
        ("ana smith", "support", PASSWORD, "letters, digits"),
        ("ana", "support", "short", "at least 12 characters"),
    ],
)
def test_bad_users_are_refused(store, name, role, password, message):
    with pytest.raises(BadInput, match=message):
        store.add(name, role, password)
    assert store.users() == []


def test_names_are_unique_and_removal_takes_effect(store):
    store.add("ana", "compliance", PASSWORD)
    with pytest.raises(BadInput, match="exists"):
        store.add("ana", "support", PASSWORD)
    assert store.remove("ana").role == "compliance"
    assert store.check("ana", PASSWORD) is None
    with pytest.raises(BadInput, match="no user named 'ana'"):
        store.remove("ana")


def test_users_added_at_once_are_all_kept(store):
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: store.add(f"user{i}", "support", PASSWORD), range(8)))
    assert sorted(user.name for user in store.users()) == [f"user{i}" for i in range(8)]


def test_the_cli_asks_twice_and_never_prints_the_password(tmp_path, monkeypatch):
    monkeypatch.setenv("REPLAY_HOME", str(tmp_path / "home"))
    runner = CliRunner()
    added = runner.invoke(
        cli, ["users", "add", "ana", "--role", "support"], input=f"{PASSWORD}\n{PASSWORD}\n"
    )
    assert added.exit_code == 0 and "user ana (support) added" in added.output
    scripted = runner.invoke(
        cli, ["users", "add", "bo", "--role", "admin", "--password-stdin"], input=f"{PASSWORD}\n"
    )
    assert scripted.exit_code == 0, scripted.output
    listed = runner.invoke(cli, ["users", "list", "--json"])
    assert [(u["name"], u["role"]) for u in json.loads(listed.output)] == [
        ("ana", "support"),
        ("bo", "admin"),
    ]
    assert PASSWORD not in listed.output and "argon2" not in listed.output
    short = runner.invoke(
        cli, ["users", "add", "cy", "--role", "support", "--password-stdin"], input="short\n"
    )
    assert short.exit_code == 2 and "at least 12 characters" in short.output
