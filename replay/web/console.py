"""`replay console`: web pages for customer support and compliance staff.

Server-rendered Jinja2 pages (FastAPI), with htmx (shipped in `static/`, no CDN) for
the answers that appear in place: a what-if, a sweep's plot, the options, a replay's
verdict. Each page is a router of its own under `replay.web.pages`; what they share
(sessions, CSRF, rendering, the warm containers) is `replay.web.pages.shared.Console`.
The questions are replay's own algorithms (`whatif_of`, `sweep_of`, ...), asked with
the decision a page opened, of its original container, which a `WarmPool` keeps running
while pages use it.

Every response that shows a person's data writes an `access` entry to the ledger (who,
which decision, which page); a form that is refused writes nothing. This module is only
imported by `replay console` (FastAPI and Starlette load at the top, about 0.3 s).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware

from replay.errors import (
    BadInput,
    EnvironmentProblem,
    Erased,
    IntegrityError,
    ReplayError,
    one_line,
)
from replay.execution.warm import WarmDeployment
from replay.ledger import open_ledger
from replay.ledger.group_commit import GroupCommit
from replay.settings import Settings, load_settings
from replay.web.access import user_store
from replay.web.forms import shown
from replay.web.pages import (
    decision,
    find,
    options,
    report,
    sign_in,
    sweep,
    users,
    verify,
    what_if,
)
from replay.web.pages.shared import Console, Missing
from replay.web.running import end_on_sigterm, limit_body, run
from replay.web.sessions import (
    SESSION_COOKIE,
    SESSION_MAX,
    Forbidden,
    Sessions,
    SignInNeeded,
    StaleForm,
    console_secret,
)
from replay.web.warm_pool import WarmPool

log = logging.getLogger(__name__)

# No inline script, no other origin: htmx and the stylesheet are served from here.
# Inline styles are allowed for matplotlib's SVG charts.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",  # pages hold personal data: never kept by the browser
}

PAGES = (sign_in, find, decision, what_if, sweep, options, report, verify, users)


def create_console(settings: Settings, pool: WarmPool, *, secure_cookies: bool = False) -> Any:
    """The console's app: the pages' routers over one shared `Console`. `secure_cookies`:
    its session cookie is only sent over HTTPS (a console reached over a network sits
    behind a TLS proxy)."""
    environment = Environment(
        loader=PackageLoader("replay.web", "templates"), autoescape=select_autoescape(["html"])
    )
    environment.filters["shown"] = shown
    ledger = open_ledger(settings)
    state = Console(
        settings,
        Sessions(user_store(settings), settings.console_idle),
        pool,
        ledger,
        GroupCommit(ledger),
        Jinja2Templates(env=environment),
    )
    app = FastAPI(title="replay console", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.console = state
    app.add_middleware(
        SessionMiddleware,
        secret_key=console_secret(settings),
        session_cookie=SESSION_COOKIE,
        max_age=SESSION_MAX,
        # Lax, not Strict: a link from a ticket or an email keeps the session; a form
        # posted from another site carries no cookie (and no CSRF token) either way.
        same_site="lax",
        https_only=secure_cookies,
    )
    limit_body(app, settings.max_body)
    app.mount("/static", StaticFiles(packages=[("replay.web", "static")]), name="static")

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Any:
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    app.add_exception_handler(SignInNeeded, lambda r, e: state.to_sign_in(r, str(e)))
    app.add_exception_handler(Forbidden, lambda r, e: state.message(r, 403, str(e)))
    app.add_exception_handler(StaleForm, lambda r, e: state.message(r, 403, str(e)))
    app.add_exception_handler(Missing, lambda r, e: state.message(r, 404, str(e)))
    app.add_exception_handler(Erased, lambda r, e: state.message(r, 410, one_line(e, 300)))
    app.add_exception_handler(BadInput, lambda r, e: state.message(r, 422, one_line(e, 300)))
    for problem in (EnvironmentProblem, IntegrityError, ReplayError):
        app.add_exception_handler(problem, lambda r, e: state.message(r, 503, one_line(e, 300)))
    app.add_exception_handler(  # no such page (404), a GET where a form posts (405), ...
        StarletteHTTPException,
        lambda r, e: state.message(r, e.status_code, str(e.detail).lower()),
    )

    def unexpected(request: Request, error: Exception) -> Any:
        log.exception("console: %s %s failed", request.method, request.url.path)
        return state.message(request, 500, f"internal error: {type(error).__name__}")

    app.add_exception_handler(Exception, unexpected)
    for page in PAGES:
        app.include_router(page.router)
    return app


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class NoConsoleUsers(BadInput):
    """The console would listen beyond loopback with nobody to sign in."""


def console(
    *,
    host: str = "127.0.0.1",
    port: int = 8100,
    settings: Settings | None = None,
    ready: Callable[[str], None] | None = None,
) -> None:
    """Serve the console until interrupted. It shows personal data: on an address other
    than loopback it refuses to start until users exist (`replay users add`), and its
    session cookie is then sent over HTTPS only."""
    settings = settings or load_settings()
    accounts = user_store(settings).users()
    local = _loopback(host)
    if not local and not accounts:
        raise NoConsoleUsers(
            f"the console shows personal data: add a console user before listening on {host}"
        )
    end_on_sigterm()
    pool = WarmPool(
        lambda manifest_id: WarmDeployment(manifest_id, settings=settings),
        idle=settings.console_warm,
    )
    try:
        app = create_console(settings, pool, secure_cookies=not local)
        if ready is not None:
            hint = "" if accounts else " (no users yet: add one with `replay users add`)"
            ready(f"console on http://{host}:{port}{hint}")
        run(app, host, port)
    finally:
        pool.close()
