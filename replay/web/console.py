"""`replay console`: web pages for customer support and compliance staff.

Server-rendered Jinja2 pages (FastAPI), with htmx (shipped in `static/`, no CDN) for
the answers that appear in place: a what-if, a sweep's plot, the options, a replay's
verdict. Every answer comes from replay's public functions, the command line's own
(`replay.whatif`, `replay.sweep`, ...), asked of the decision's original container,
which a `WarmPool` keeps running while pages use it.

Every response that shows a person's data writes an `access` entry to the ledger (who,
which decision, which page); a form that is refused writes nothing. This module is only
imported by `replay console` (FastAPI and Starlette load at the top, about 0.3 s).
"""

from __future__ import annotations

import ipaddress
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.middleware.sessions import SessionMiddleware

import replay
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
from replay.ledger.chain import LedgerEntry, access_entry
from replay.ledger.group_commit import GroupCommit
from replay.ledger.reviews import OUTCOMES, Review, review_decision
from replay.settings import Settings, load_settings
from replay.stores.manifests import manifest_store
from replay.stores.users import ROLES
from replay.web.access import add_user, remove_user, user_store
from replay.web.forms import input_fields, shown, sweep_choices, sweep_ranges, whatif_changes
from replay.web.sessions import (
    ROLE_HOME,
    SESSION_COOKIE,
    SESSION_MAX,
    ConsoleUser,
    Forbidden,
    Sessions,
    SignInNeeded,
    StaleForm,
    console_secret,
)
from replay.web.warm_pool import WarmPool

STOP_WITHIN = 15.0  # seconds from SIGTERM to the end of the process, containers closed

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


class Missing(BadInput):
    """No such decision (404)."""


@dataclass(frozen=True)
class Console:
    """What the pages share: settings, the ledger, users and sessions, warm containers."""

    settings: Settings
    sessions: Sessions
    pool: WarmPool
    group: GroupCommit

    def as_user(self, user: ConsoleUser) -> Settings:
        """Settings whose `user` is the console user: replay, review and report entries
        name them."""
        return replace(self.settings, user=user.by)

    def decision(self, txn_id: str) -> LedgerEntry:
        """The decision `txn_id` in clear (Erased when its subject's data was erased)."""
        try:
            entry = open_ledger(self.settings).get(txn_id)
        except BadInput:
            raise Missing(f"no transaction {txn_id}") from None
        if entry.kind != "decision":
            raise Missing(f"{txn_id} is a {entry.kind} entry, not a decision")
        return entry.readable()

    def ask(self, question: Callable[..., Any], entry: LedgerEntry, *args: Any, **kw: Any) -> Any:
        """One of replay's questions about `entry`, in its warm original container."""
        with self.pool.using(entry.manifest_id) as warm:
            return question(entry.txn_id, *args, warm=warm, settings=self.settings, **kw)

    def seen(self, entry: LedgerEntry, user: ConsoleUser, page: str) -> None:
        """Record that `user` was shown this decision's data on `page` (people only)."""
        if entry.subject is not None:
            self.group.record(
                access_entry(entry.subject, user.by, "console", page=page, refers_to=entry.txn_id)
            )


def create_console(settings: Settings, pool: WarmPool) -> Any:
    console = Console(
        settings,
        Sessions(user_store(settings), settings.console_idle),
        pool,
        GroupCommit(open_ledger(settings)),
    )
    environment = Environment(
        loader=PackageLoader("replay.web", "templates"), autoescape=select_autoescape(["html"])
    )
    environment.filters["shown"] = shown
    templates = Jinja2Templates(env=environment)
    app = FastAPI(title="replay console", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(
        SessionMiddleware,
        secret_key=console_secret(settings),
        session_cookie=SESSION_COOKIE,
        max_age=SESSION_MAX,
        same_site="strict",
    )
    app.mount("/static", StaticFiles(packages=[("replay.web", "static")]), name="static")

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Any:
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    def partial(request: Request) -> bool:
        return request.headers.get("HX-Request") == "true"

    def page(
        request: Request,
        template: str,
        user: ConsoleUser | None,
        code: int = 200,
        **context: Any,
    ) -> Any:
        flash = request.session.pop("flash", None)
        return templates.TemplateResponse(
            request,
            template,
            {
                "user": user,
                "csrf": console.sessions.csrf(request.session),
                "flash": flash,
                **context,
            },
            status_code=code,
        )

    def message(request: Request, status: int, text: str) -> Any:
        """A refusal or failure: in place for htmx, as a page otherwise."""
        if partial(request):
            return templates.TemplateResponse(
                request, "_message.html", {"text": text, "status": status}, status_code=status
            )
        user = request.session.get("user") and getattr(request.state, "user", None)
        return page(request, "message.html", user, status, text=text, status=status)

    def to_sign_in(request: Request, text: str) -> Any:
        request.session["flash"] = text
        if partial(request):  # htmx: the whole page goes to sign in, not a fragment
            return Response(status_code=200, headers={"HX-Redirect": "/login"})
        return RedirectResponse("/login", status_code=303)

    app.add_exception_handler(SignInNeeded, lambda r, e: to_sign_in(r, str(e)))
    app.add_exception_handler(Forbidden, lambda r, e: message(r, 403, str(e)))
    app.add_exception_handler(StaleForm, lambda r, e: message(r, 403, str(e)))
    app.add_exception_handler(Missing, lambda r, e: message(r, 404, str(e)))
    app.add_exception_handler(Erased, lambda r, e: message(r, 410, one_line(e, 300)))
    app.add_exception_handler(BadInput, lambda r, e: message(r, 422, one_line(e, 300)))
    for problem in (EnvironmentProblem, IntegrityError, ReplayError):
        app.add_exception_handler(problem, lambda r, e: message(r, 503, one_line(e, 300)))

    def signed_in(request: Request) -> ConsoleUser:
        user = console.sessions.current(request.session, SESSION_COOKIE in request.cookies)
        request.state.user = user
        return user

    async def form_of(request: Request) -> dict[str, str]:
        """The posted form as text fields, refused without this session's CSRF token."""
        form = await request.form()
        fields = {key: value for key, value in form.items() if isinstance(value, str)}
        console.sessions.check_form(
            request.session, fields.get("csrf") or request.headers.get("X-CSRF-Token")
        )
        return fields

    signed = Depends(signed_in)

    # -- signing in and out ------------------------------------------------------------

    @app.get("/login", response_class=HTMLResponse)
    def login_page(request: Request) -> Any:
        return page(request, "login.html", None)

    @app.post("/login")
    async def login(request: Request) -> Any:
        fields = await form_of(request)
        try:
            user = await run_in_threadpool(
                console.sessions.sign_in,
                request.session,
                fields.get("name", "").strip(),
                fields.get("password", ""),
            )
        except BadInput as error:
            return page(request, "login.html", None, 401, error=str(error))
        return RedirectResponse(ROLE_HOME[user.role], status_code=303)

    @app.post("/logout")
    async def logout(request: Request) -> Any:
        await form_of(request)
        request.session.clear()
        request.session["flash"] = "signed out"
        return RedirectResponse("/login", status_code=303)

    # -- finding a person's decisions ---------------------------------------------------

    @app.get("/", response_class=HTMLResponse)
    def find_page(request: Request, user: ConsoleUser = signed) -> Any:
        if not user.may("find"):
            return RedirectResponse(ROLE_HOME[user.role], status_code=303)
        return page(request, "find.html", user, decisions=None)

    # A POST, so that a person's identifier never appears in a URL, a log or the history.
    @app.post("/find", response_class=HTMLResponse)
    async def find(request: Request, user: ConsoleUser = signed) -> Any:
        user.require("find")
        fields = await form_of(request)
        txn_id = fields.get("txn", "").strip()
        subject = fields.get("subject", "").strip()
        if txn_id:
            await run_in_threadpool(console.decision, txn_id)
            return RedirectResponse(f"/decisions/{txn_id}", status_code=303)
        if not subject:
            raise BadInput("give a subject identifier or a transaction id")
        decisions = await run_in_threadpool(
            replay.list_transactions, subject=subject, settings=console.as_user(user)
        )
        return page(request, "find.html", user, decisions=decisions)

    # -- one decision --------------------------------------------------------------------

    def decision_context(txn_id: str, user: ConsoleUser, page_name: str) -> dict[str, Any]:
        user.require(page_name)
        entry = console.decision(txn_id)
        manifest = manifest_store(settings).load(entry.manifest_id)
        console.seen(entry, user, page_name)
        console.pool.warm_up(entry.manifest_id)  # the page's questions will need it
        return {"entry": entry, "manifest": manifest, "output": manifest.schema.output}

    @app.get("/decisions/{txn_id}", response_class=HTMLResponse)
    def decision_page(request: Request, txn_id: str, user: ConsoleUser = signed) -> Any:
        context = decision_context(txn_id, user, "decision")
        ledger = open_ledger(settings)
        reviews = [Review.from_entry(e) for e in ledger.list(kind="review", refers_to=txn_id)]
        schema = context["manifest"].schema
        return page(
            request,
            "decision.html",
            user,
            **context,
            fields=input_fields(schema, context["entry"].inputs),
            reviews=reviews,
            outcomes=OUTCOMES,
        )

    @app.get("/decisions/{txn_id}/reasons", response_class=HTMLResponse)
    def reasons(request: Request, txn_id: str, user: ConsoleUser = signed) -> Any:
        context = decision_context(txn_id, user, "decision")
        explanation = console.ask(replay.explain, context["entry"])
        return page(request, "_reasons.html", user, explanation=explanation)

    @app.post("/decisions/{txn_id}/replay", response_class=HTMLResponse)
    async def reexecute(request: Request, txn_id: str, user: ConsoleUser = signed) -> Any:
        await form_of(request)
        user.require("decision")
        entry = await run_in_threadpool(console.decision, txn_id)
        with_user = replace(console, settings=console.as_user(user))  # the replay entry names them
        result = await run_in_threadpool(with_user.ask, replay.replay, entry)
        return page(request, "_verdict.html", user, result=result)

    @app.post("/decisions/{txn_id}/review")
    async def review(request: Request, txn_id: str, user: ConsoleUser = signed) -> Any:
        fields = await form_of(request)
        user.require("review")
        made = await run_in_threadpool(
            lambda: review_decision(
                txn_id,
                fields.get("outcome", ""),
                fields.get("note", ""),
                decision=fields.get("decision") or None,
                by=user.by,
                settings=settings,
            )
        )
        request.session["flash"] = f"review recorded: {made.summary}"
        return RedirectResponse(f"/decisions/{txn_id}", status_code=303)

    # -- questions -----------------------------------------------------------------------

    @app.get("/decisions/{txn_id}/what-if", response_class=HTMLResponse)
    def whatif_page(request: Request, txn_id: str, user: ConsoleUser = signed) -> Any:
        context = decision_context(txn_id, user, "what-if")
        fields = input_fields(context["manifest"].schema, context["entry"].inputs)
        return page(request, "whatif.html", user, **context, fields=fields)

    @app.post("/decisions/{txn_id}/what-if", response_class=HTMLResponse)
    async def whatif(request: Request, txn_id: str, user: ConsoleUser = signed) -> Any:
        fields = await form_of(request)
        user.require("what-if")

        def run() -> Any:
            entry = console.decision(txn_id)
            schema = manifest_store(settings).load(entry.manifest_id).schema
            changes = whatif_changes(schema, entry.inputs, fields)  # refused: nothing written
            answer = console.ask(replay.whatif, entry, changes)
            console.seen(entry, user, "what-if")
            return answer

        answer = await run_in_threadpool(run)
        return page(request, "_whatif_result.html", user, answer=answer)

    @app.get("/decisions/{txn_id}/sweep", response_class=HTMLResponse)
    def sweep_page(request: Request, txn_id: str, user: ConsoleUser = signed) -> Any:
        context = decision_context(txn_id, user, "sweep")
        choices = sweep_choices(context["manifest"].schema, context["entry"].inputs)
        return page(request, "sweep.html", user, **context, choices=choices)

    @app.post("/decisions/{txn_id}/sweep", response_class=HTMLResponse)
    async def sweep(request: Request, txn_id: str, user: ConsoleUser = signed) -> Any:
        fields = await form_of(request)
        user.require("sweep")

        def run() -> tuple[Any, str]:
            entry = console.decision(txn_id)
            schema = manifest_store(settings).load(entry.manifest_id).schema
            ranges = sweep_ranges(schema, entry.inputs, fields)
            answer = console.ask(replay.sweep, entry, ranges)
            console.seen(entry, user, "sweep")
            return answer, answer.svg()

        answer, plot = await run_in_threadpool(run)
        return page(request, "_sweep_result.html", user, sweep=answer, plot=plot)

    @app.get("/decisions/{txn_id}/options", response_class=HTMLResponse)
    def options_page(request: Request, txn_id: str, user: ConsoleUser = signed) -> Any:
        return page(request, "options.html", user, **decision_context(txn_id, user, "options"))

    @app.get("/decisions/{txn_id}/options/list", response_class=HTMLResponse)
    def options(request: Request, txn_id: str, user: ConsoleUser = signed) -> Any:
        context = decision_context(txn_id, user, "options")
        found = console.ask(replay.counterfactual, context["entry"], n=3)
        return page(request, "_options.html", user, found=found)

    # -- compliance --------------------------------------------------------------------

    @app.get("/decisions/{txn_id}/report.pdf")
    def report_pdf(txn_id: str, user: ConsoleUser = signed) -> Any:
        user.require("report")
        entry = console.decision(txn_id)
        with_user = replace(console, settings=console.as_user(user))  # the report entry names them
        with tempfile.TemporaryDirectory() as folder:
            made = with_user.ask(replay.report, entry, out=Path(folder), formats=("pdf",))
            data = Path(made.files["pdf"]).read_bytes()
        return Response(
            data,
            media_type="application/pdf",
            headers={"Content-Disposition": f'attachment; filename="report-{txn_id}.pdf"'},
        )

    @app.get("/verify", response_class=HTMLResponse)
    def verify(request: Request, user: ConsoleUser = signed) -> Any:
        user.require("verify")
        return page(request, "verify.html", user, result=replay.verify_ledger(settings=settings))

    # -- users (admin) -----------------------------------------------------------------

    @app.get("/users", response_class=HTMLResponse)
    def users_page(request: Request, user: ConsoleUser = signed) -> Any:
        user.require("users")
        return page(request, "users.html", user, users=user_store(settings).users(), roles=ROLES)

    @app.post("/users")
    async def users_add(request: Request, user: ConsoleUser = signed) -> Any:
        fields = await form_of(request)
        user.require("users")
        name = fields.get("name", "").strip()
        role = fields.get("role", "")
        await run_in_threadpool(add_user, name, role, fields.get("password", ""), settings=settings)
        request.session["flash"] = f"user {name} ({role}) added"
        return RedirectResponse("/users", status_code=303)

    @app.post("/users/{name}/remove")
    async def users_remove(request: Request, name: str, user: ConsoleUser = signed) -> Any:
        await form_of(request)
        user.require("users")
        if name == user.name:
            raise BadInput("you cannot remove yourself: ask another admin")
        removed = await run_in_threadpool(remove_user, name, settings=settings)
        request.session["flash"] = f"user {removed.name} removed"
        return RedirectResponse("/users", status_code=303)

    return app


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def console(
    *,
    host: str = "127.0.0.1",
    port: int = 8100,
    settings: Settings | None = None,
    ready: Callable[[str], None] | None = None,
) -> None:
    """Serve the console until interrupted. It shows personal data: on an address other
    than loopback it refuses to start until users exist (`replay users add`)."""
    import uvicorn

    settings = settings or load_settings()
    users = user_store(settings).users()
    if not _loopback(host) and not users:
        raise BadInput(
            f"the console shows personal data: add a user (replay users add NAME --role ROLE) "
            f"before listening on {host}"
        )

    def stop(*_: object) -> None:
        watchdog = threading.Timer(STOP_WITHIN, os._exit, args=(0,))
        watchdog.daemon = True
        watchdog.start()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    pool = WarmPool(
        lambda manifest_id: WarmDeployment(manifest_id, settings=settings),
        idle=settings.console_warm,
    )
    try:
        app = create_console(settings, pool)
        if ready is not None:
            hint = "" if users else " (no users yet: add one with `replay users add`)"
            ready(f"console on http://{host}:{port}{hint}")
        uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=5)
    finally:
        pool.close()
