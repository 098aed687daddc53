"""The console's app as `create_console` assembles it from one router per page, asked
over HTTP in process (no server, no container): every page at its address, the shared
sign-in, CSRF, role and message handling in front of all of them."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from replay.settings import load_settings
from replay.web.access import add_user
from replay.web.console import PAGES, create_console
from replay.web.warm_pool import WarmPool

PASSWORD = "a long enough password"


def no_container(manifest_id: str):
    pytest.fail(f"no page here needs a container, yet {manifest_id} was started")


@pytest.fixture
def client(tmp_path):
    settings = load_settings({"REPLAY_HOME": str(tmp_path / "home")}, cwd=tmp_path)
    add_user("sue", "support", PASSWORD, settings=settings)
    pool = WarmPool(no_container, idle=60)  # type: ignore[arg-type]
    with TestClient(create_console(settings, pool), follow_redirects=False) as client:
        yield client
    pool.close()


def token(page) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page.text)[1]


def sign_in(client) -> str:
    """Signed in as support; the session's CSRF token."""
    signed = client.post(
        "/login", data={"csrf": token(client.get("/login")), "name": "sue", "password": PASSWORD}
    )
    assert signed.status_code == 303 and signed.headers["location"] == "/"
    return token(client.get("/"))


def test_the_console_answers_every_route_of_its_pages(client):
    routes = [
        (method, route.path)
        for page in PAGES
        for route in page.router.routes
        for method in route.methods
    ]
    assert len(set(routes)) == len(routes) == 20  # each page's own, none twice
    for method, path in routes:
        url = path.replace("{txn_id}", "txn_x").replace("{name}", "someone")
        answer = client.request(method, url)
        # not signed in: sent to sign in; signing in or out without a form: refused
        assert answer.status_code in (200, 303, 403), (method, path, answer.status_code)
        assert "not found" not in answer.text


def test_every_page_is_behind_sign_in_csrf_and_roles(client):
    page = client.get("/login")
    assert (
        page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]
    )
    assert client.get("/decisions/txn_x").headers["location"] == "/login"  # not signed in
    refused = client.post("/login", data={"name": "sue", "password": PASSWORD})
    assert refused.status_code == 403  # no CSRF token: not even a sign-in is taken
    wrong = client.post("/login", data={"csrf": token(page), "name": "sue", "password": "no"})
    assert wrong.status_code == 401 and "wrong user name or password" in wrong.text

    csrf = sign_in(client)
    assert client.get("/verify").status_code == 403  # support: not the ledger's page
    missing = client.get("/decisions/txn_nope")
    assert missing.status_code == 404 and "no transaction txn_nope" in missing.text
    stale = client.post("/decisions/txn_nope/what-if", data={"csrf": csrf + "x"})
    assert stale.status_code == 403 and "reload the page" in stale.text
    unknown = client.post("/decisions/txn_nope/what-if", data={"csrf": csrf})
    assert unknown.status_code == 404 and "error" in unknown.text
    fragment = client.post(
        "/find", data={"csrf": csrf}, headers={"HX-Request": "true"}
    )  # a refusal in place: the message alone, not a page
    assert fragment.status_code == 422 and fragment.text.startswith('<p class="error"')
    client.cookies.clear()
    gone = client.get("/decisions/txn_nope/reasons", headers={"HX-Request": "true"})
    assert gone.headers["HX-Redirect"] == "/login"
