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
    for path in ("/docs", "/openapi.json", "/redoc"):  # no such pages, even with a token
        assert httpx.get(f"{server}{path}", headers=tokens["read"]).status_code == 404
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


# Bodies the API refuses once it parses them: malformed JSON, bytes that are not UTF-8,
# a form, a multipart body without its boundary, nothing at all.
UNPARSABLE = [
    ("application/json", b'{"inputs": {'),
    ("application/json", b"\xff\xfe{"),
    ("application/x-www-form-urlencoded", b"inputs=1"),
    ("multipart/form-data", b"--x\r\n"),
    ("application/json", b""),
]


def test_a_caller_without_the_right_token_is_refused_before_the_body_is_read(
    server, served, tokens, warm
):
    """Every route of the API, as `create_app` makes it, with bodies that would be refused
    4xx once parsed: no or an unknown token is 401, a token of the other scope 403, so a
    caller without a token learns nothing of what the API parses."""
    from replay.settings import load_settings
    from replay.web.open_inference_routes import OPEN_PATHS
    from replay.web.serving import create_app

    txn = served[0]["transaction_id"]
    routes = sorted(
        (method, route.path.replace("{txn_id}", txn))
        for route in create_app(warm, load_settings()).routes
        for method in route.methods
        if route.path not in {"/health", *OPEN_PATHS}  # probes carry no token
    )
    assert ("POST", "/decisions") in routes and ("GET", f"/decisions/{txn}") in routes
    assert ("POST", "/v2/models/{name}/infer") in routes and ("POST", "/ingest/kserve") in routes

    def message(answer: httpx.Response) -> str:
        # the Open Inference Protocol's key on /v2, and the event routes' own on /ingest
        body = answer.json()
        return body["error"] if answer.url.path.startswith(("/v2", "/ingest/")) else body["detail"]

    strangers = [
        {},
        {"Authorization": "Bearer rpl_not-a-token"},
        {"Authorization": "Basic dGVzdHM6dGVzdHM="},
        {"Authorization": "Bearer"},
    ]
    other_scope = {"POST": tokens["read"], "GET": tokens["decide"]}
    for method, path in routes:
        for kind, body in UNPARSABLE:
            sent = {"Content-Type": kind}
            for stranger in strangers:
                refused = httpx.request(
                    method, f"{server}{path}", content=body, headers={**sent, **stranger}
                )
                assert refused.status_code == 401, (method, path, stranger, body, refused.text)
                assert refused.headers["www-authenticate"] == "Bearer"
                assert "token" in message(refused)
            refused = httpx.request(
                method, f"{server}{path}", content=body, headers={**sent, **other_scope[method]}
            )
            assert refused.status_code == 403, (method, path, body, refused.text)
            assert "this token's scope is" in message(refused)
    # The same body with the route's own token is parsed, and refused for what it is.
    parsed = httpx.post(
        f"{server}/decisions",
        content=UNPARSABLE[0][1],
        headers={**tokens["decide"], "Content-Type": "application/json"},
    )
    assert parsed.status_code == 422 and "JSON decode error" in parsed.text


OVER_LIMIT = b"x" * (1_048_576 + 1)  # REPLAY_MAX_BODY's default, and a byte


def test_without_a_token_nothing_else_is_learned_not_even_the_body_limit(server, tokens):
    """The token is checked first from the headers alone: a body of no stated length or
    over the limit, a path or a method the API does not have, are all 401 to a stranger."""

    def chunks():
        yield b'{"inputs": {}}'

    for method, path, extra in (
        ("POST", "/decisions", {"content": chunks()}),
        ("POST", "/decisions", {"content": OVER_LIMIT}),
        ("GET", "/no-such-route", {}),
        ("DELETE", "/decisions/txn_x", {}),
        ("GET", "/openapi.json", {}),
    ):
        refused = httpx.request(method, f"{server}{path}", **extra)
        assert refused.status_code == 401, (method, path, refused.text)
    # with a token, each gets its own answer
    too_long = httpx.post(f"{server}/decisions", content=OVER_LIMIT, headers=tokens["decide"])
    assert too_long.status_code == 413 and "REPLAY_MAX_BODY" in too_long.json()["detail"]
    assert httpx.get(f"{server}/no-such-route", headers=tokens["read"]).status_code == 404
    wrong_method = httpx.delete(f"{server}/decisions/txn_x", headers=tokens["read"])
    assert wrong_method.status_code == 405


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


@pytest.mark.parametrize("status", [422, 503])
def test_a_password_in_a_failure_never_reaches_an_answer(warm, tokens, status):
    """serve's failures are answered with their message, masked like the CLI's: a store's
    address named by an error keeps its host and loses its password."""
    from fastapi.testclient import TestClient

    from replay.errors import BadInput, EnvironmentProblem
    from replay.settings import load_settings
    from replay.web.serving import create_app

    error = {422: BadInput, 503: EnvironmentProblem}[status]

    def fail() -> None:
        raise error("cannot reach the S3 endpoint http://alice:s3cretpw@127.0.0.1:1/bucket")

    app = create_app(warm, load_settings())
    app.add_api_route("/failing", fail, methods=["GET"])
    answer = TestClient(app).get("/failing", headers=tokens["read"])
    assert answer.status_code == status
    assert "s3cretpw" not in answer.text
    assert "127.0.0.1:1/bucket" in answer.json()["detail"]
