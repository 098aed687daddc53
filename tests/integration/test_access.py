"""Who may use the decision API: bearer tokens with a scope, hashed at rest; private
data files; no secret in a message or a response."""

from __future__ import annotations

import json
import stat

import httpx
import pytest

from tests.integration.conftest import run_cli

pytestmark = pytest.mark.integration


def test_every_route_but_health_needs_a_token_of_its_scope(server, served, tokens):
    txn = served[0]["transaction_id"]
    body = {"inputs": {"income": 1.0}}
    assert httpx.get(f"{server}/health").status_code == 200
    for path in ("/docs", "/openapi.json", "/redoc"):
        assert httpx.get(f"{server}{path}").status_code == 404
    missing = httpx.post(f"{server}/decisions", json=body)
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert httpx.get(f"{server}/decisions/{txn}").status_code == 401
    wrong = {"Authorization": "Bearer rpl_not-a-token"}
    assert httpx.get(f"{server}/decisions/{txn}", headers=wrong).status_code == 401
    # a token for one scope is refused by the other's routes
    assert httpx.post(f"{server}/decisions", json=body, headers=tokens["read"]).status_code == 403
    refused = httpx.get(f"{server}/decisions/{txn}", headers=tokens["decide"])
    assert refused.status_code == 403 and "scope is decide, not read" in refused.text
    shown = httpx.get(f"{server}/decisions/{txn}", headers=tokens["read"])
    assert shown.status_code == 200 and shown.json()["txn_id"] == txn


def test_a_token_is_shown_once_kept_hashed_and_refused_once_revoked(server, served, replay_env):
    made = run_cli("tokens", "add", "auditor", "--scope", "read", "--json")
    assert made.returncode == 0, made.stderr
    token = json.loads(made.stdout)["token"]
    stored = (replay_env / "tokens.json").read_text()
    assert token not in stored and "auditor" in stored
    assert stat.S_IMODE((replay_env / "tokens.json").stat().st_mode) == 0o600
    listed = run_cli("tokens", "list", "--json")
    assert token not in listed.stdout
    assert {"name": "auditor", "scope": "read"}.items() <= next(
        t for t in json.loads(listed.stdout) if t["name"] == "auditor"
    ).items()
    headers = {"Authorization": f"Bearer {token}"}
    txn = served[0]["transaction_id"]
    assert httpx.get(f"{server}/decisions/{txn}", headers=headers).status_code == 200
    assert run_cli("tokens", "revoke", "auditor").returncode == 0
    assert httpx.get(f"{server}/decisions/{txn}", headers=headers).status_code == 401
    again = run_cli("tokens", "revoke", "auditor")
    assert again.returncode == 2 and "no token named 'auditor'" in again.stderr


def test_the_ledger_and_keys_are_private(served, replay_env):
    import replay

    replay.checkpoint_ledger()
    assert stat.S_IMODE((replay_env / "ledger.db").stat().st_mode) == 0o600
    assert stat.S_IMODE((replay_env / "subject.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((replay_env / "keys").stat().st_mode) == 0o700
    assert stat.S_IMODE((replay_env / "keys" / "ledger-signing.key").stat().st_mode) == 0o600


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://ledger:s3cret-pw@127.0.0.1:1/replay",
        "postgresql://ledger@127.0.0.1:1/replay?password=s3cret-pw&connect_timeout=2",
    ],
)
def test_a_ledger_password_never_reaches_a_message(url):
    result = run_cli("ledger", "list", env={"REPLAY_LEDGER": url})
    assert result.returncode == 3, result.stderr
    assert "s3cret-pw" not in result.stderr + result.stdout
    assert "127.0.0.1:1" in result.stderr
