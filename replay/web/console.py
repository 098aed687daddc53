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
import logging
import tempfile
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
from starlette.exceptions import HTTPException as StarletteHTTPException
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
from replay.ledger import Ledger, open_ledger
from replay.ledger.chain import LedgerEntry, access_entry
from replay.ledger.group_commit import GroupCommit
from replay.ledger.reviews import OUTCOMES, Review, review_decision
from replay.manifests.schema import Schema
from replay.settings import Settings, load_settings
from replay.stores.manifests import manifest_store
from replay.stores.users import ROLES
from replay.web.access import add_user, remove_user, user_store
from replay.web.forms import input_fields, shown, sweep_choices, sweep_ranges, whatif_changes
from replay.web.running import end_on_sigterm, limit_body, run
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


class Missing(BadInput):
    """No such decision (404)."""


@dataclass(frozen=True)
class Console:
    """What the pages share: settings, the ledger (opened once), users and sessions,
    warm containers."""

    settings: Settings
    sessions: Sessions
    pool: WarmPool
    ledger: Ledger
    group: GroupCommit  # access entries of concurrent pages share commits

    def as_user(self, user: ConsoleUser) -> Settings:
        """Settings whose `user` is the console user: replay, review and report entries
        name them."""
        return replace(self.settings, user=user.by)

    def decision(self, txn_id: str) -> LedgerEntry:
        """The decision `txn_id` in clear (Erased when its subject's data was erased)."""
        try:
            entry = self.ledger.get(txn_id)
        except BadInput:
            raise Missing(f"no transaction {txn_id}") from None
        if entry.kind != "decision":
            raise Missing(f"{txn_id} is a {entry.kind} entry, not a decision")
        return entry.readable()

    def ask(self, question: Callable[..., Any], entry: LedgerEntry, *args: Any, **kw: Any) -> Any:
        """One of replay's questions about `entry`, in its warm original container."""
        with self.pool.using(entry.manifest_id) as warm:
            return question(entry.txn_id, *args, warm=warm, settings=self.settings, **kw)

    def reviews(self, txn_id: str) -> list[Review]:
        return [Review.from_entry(e) for e in self.ledger.list(kind="review", refers_to=txn_id)]

    def decision_value(self, entry: LedgerEntry) -> Any:
        """The decision an entry logged, under its own manifest's output name."""
        output = manifest_store(self.settings).load(entry.manifest_id).schema.output
        return entry.outputs.get(output.decision)

    def ask_form(
        self,
        question: Callable[..., Any],
        read: Callable[[Schema, dict[str, Any], dict[str, str]], Any],
        txn_id: str,
        fields: dict[str, str],
        user: ConsoleUser,
        page: str,
    ) -> Any:
        """A question whose arguments a form gives (`read` from the decision's schema and
        inputs): a form it refuses writes nothing; an answer is an access entry."""
        entry = self.decision(txn_id)
        schema = manifest_store(self.settings).load(entry.manifest_id).schema
        answer = self.ask(question, entry, read(schema, entry.inputs, fields))
        self.seen(entry, user, page)
        return answer

    def seen(self, entry: LedgerEntry, user: ConsoleUser, page: str) -> None:
        """Record that `user` was shown this decision's data on `page` (people only)."""
        if entry.subject is not None:
            self.group.record(
                access_entry(entry.subject, user.by, "console", page=page, refers_to=entry.txn_id)
            )


def create_console(settings: Settings, pool: WarmPool, *, secure_cookies: bool = False) -> Any:
    """The console's app. `secure_cookies`: its session cookie is only sent over HTTPS
    (a console reached over a network sits behind a TLS proxy)."""
    ledger = open_ledger(settings)
    state = Console(
        settings,
        Sessions(user_store(settings), settings.console_idle),
        pool,
        ledger,
        GroupCommit(ledger),
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

    def partial(request: Request) -> bool:
        return request.headers.get("HX-Request") == "true"

    def page(
        request: Request,
        template: str,
        user: ConsoleUser | None,
        code: int = 200,
        **context: Any,
    ) -> Any:
        # a fragment has nowhere to show a message: it waits for the next page
        flash = None if partial(request) else request.session.pop("flash", None)
        return templates.TemplateResponse(
            request,
            template,
            {
                "user": user,
                "csrf": state.sessions.csrf(request.session),
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
        user = getattr(request.state, "user", None)
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
    app.add_exception_handler(  # no such page (404), a GET where a form posts (405), ...
        StarletteHTTPException, lambda r, e: message(r, e.status_code, str(e.detail).lower())
    )

    def unexpected(request: Request, error: Exception) -> Any:
        log.exception("console: %s %s failed", request.method, request.url.path)
        return message(request, 500, f"internal error: {type(error).__name__}")

    app.add_exception_handler(Exception, unexpected)

    def signed_in(request: Request) -> ConsoleUser:
        user = state.sessions.current(request.session, SESSION_COOKIE in request.cookies)
        request.state.user = user
        return user

    async def form_of(request: Request) -> dict[str, str]:
        """The posted form as text fields, refused without this session's CSRF token."""
        form = await request.form()
        fields = {key: value for key, value in form.items() if isinstance(value, str)}
        state.sessions.check_form(
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
                state.sessions.sign_in,
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
            await run_in_threadpool(state.decision, txn_id)
            return RedirectResponse(f"/decisions/{txn_id}", status_code=303)
        if not subject:
            raise BadInput("give a subject identifier or a transaction id")

        def look_up() -> list[tuple[LedgerEntry, Any]]:
            found = replay.list_transactions(subject=subject, settings=state.as_user(user))
            return [(e, None if e.erased_on else state.decision_value(e)) for e in found]

        decisions = await run_in_threadpool(look_up)
        return page(request, "find.html", user, decisions=decisions)

    # -- one decision --------------------------------------------------------------------

    def decision_context(
        txn_id: str, user: ConsoleUser, right: str, seen_on: str | None = None
    ) -> dict[str, Any]:
        """A decision's page (`seen_on` None) or a fragment of it, shown to `user` if
        their role has `right`, and recorded as an access entry naming the page."""
        user.require(right)
        entry = state.decision(txn_id)
        manifest = manifest_store(settings).load(entry.manifest_id)
        state.seen(entry, user, seen_on or right)
        if seen_on is None:
            state.pool.warm_up(entry.manifest_id)  # the page's questions will need it
        return {"entry": entry, "manifest": manifest, "output": manifest.schema.output}

    @app.get("/decisions/{txn_id}", response_class=HTMLResponse)
    def decision_page(request: Request, txn_id: str, user: ConsoleUser = signed) -> Any:
        context = decision_context(txn_id, user, "decision")
        reviews = state.reviews(txn_id)
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
        context = decision_context(txn_id, user, "decision", seen_on="decision: reasons")
        explanation = state.ask(replay.explain, context["entry"])
        return page(request, "_reasons.html", user, explanation=explanation)

    @app.post("/decisions/{txn_id}/replay", response_class=HTMLResponse)
    async def reexecute(request: Request, txn_id: str, user: ConsoleUser = signed) -> Any:
        await form_of(request)
        user.require("decision")
        context = await run_in_threadpool(
            decision_context, txn_id, user, "decision", "decision: re-execute"
        )
        with_user = replace(state, settings=state.as_user(user))  # the replay entry names them
        result = await run_in_threadpool(with_user.ask, replay.replay, context["entry"])
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

        answer = await run_in_threadpool(
            state.ask_form, replay.whatif, whatif_changes, txn_id, fields, user, "what-if"
        )
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

        answer = await run_in_threadpool(
            state.ask_form, replay.sweep, sweep_ranges, txn_id, fields, user, "sweep"
        )
        plot = await run_in_threadpool(answer.svg)
        return page(request, "_sweep_result.html", user, sweep=answer, plot=plot)

    @app.get("/decisions/{txn_id}/options", response_class=HTMLResponse)
    def options_page(request: Request, txn_id: str, user: ConsoleUser = signed) -> Any:
        return page(request, "options.html", user, **decision_context(txn_id, user, "options"))

    @app.get("/decisions/{txn_id}/options/list", response_class=HTMLResponse)
    def options(request: Request, txn_id: str, user: ConsoleUser = signed) -> Any:
        context = decision_context(txn_id, user, "options", seen_on="options: search")
        found = state.ask(replay.counterfactual, context["entry"], n=3)
        return page(request, "_options.html", user, found=found)

    # -- compliance --------------------------------------------------------------------

    # A POST: making a report is a ledger entry, which a link from elsewhere must not make.
    @app.post("/decisions/{txn_id}/report")
    async def report_pdf(request: Request, txn_id: str, user: ConsoleUser = signed) -> Any:
        await form_of(request)
        user.require("report")
        entry = await run_in_threadpool(state.decision, txn_id)
        with_user = replace(state, settings=state.as_user(user))  # the report entry names them

        def make() -> bytes:
            with tempfile.TemporaryDirectory() as folder:
                made = with_user.ask(replay.report, entry, out=Path(folder), formats=("pdf",))
                return Path(made.files["pdf"]).read_bytes()

        data = await run_in_threadpool(make)
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
    than loopback it refuses to start until users exist (`replay users add`), and its
    session cookie is then sent over HTTPS only."""
    settings = settings or load_settings()
    users = user_store(settings).users()
    local = _loopback(host)
    if not local and not users:
        raise BadInput(
            f"the console shows personal data: add a user (replay users add NAME --role ROLE) "
            f"before listening on {host}"
        )
    end_on_sigterm()
    pool = WarmPool(
        lambda manifest_id: WarmDeployment(manifest_id, settings=settings),
        idle=settings.console_warm,
    )
    try:
        app = create_console(settings, pool, secure_cookies=not local)
        if ready is not None:
            hint = "" if users else " (no users yet: add one with `replay users add`)"
            ready(f"console on http://{host}:{port}{hint}")
        run(app, host, port)
    finally:
        pool.close()
