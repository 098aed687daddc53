"""What every page of the console shares: the `Console` (settings, the ledger opened
once, sessions, warm containers, templates), how a page is rendered, how a posted form
is read (with its CSRF token), who is signed in, and how a decision is opened for a page
and recorded as seen.

The routers reach the `Console` through the app (`app.state.console`), so each page's
module is a plain `APIRouter` that `replay.web.console.create_console` includes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from replay.errors import BadInput
from replay.execution.decision import Decision
from replay.ledger import Ledger
from replay.ledger.chain import LedgerEntry, access_entry
from replay.ledger.group_commit import GroupCommit
from replay.ledger.reviews import Review
from replay.manifests.manifest import Manifest
from replay.manifests.schema import Schema
from replay.settings import Settings
from replay.stores.manifests import manifest_store
from replay.web.sessions import SESSION_COOKIE, ConsoleUser, Sessions
from replay.web.warm_pool import WarmPool


class Missing(BadInput):
    """No such decision (404)."""


@dataclass(frozen=True)
class Opened:
    """A decision opened for a page: its entry in clear, its manifest, and the
    `Decision` the question algorithms take (built once, not read again by each)."""

    entry: LedgerEntry
    manifest: Manifest
    decision: Decision

    @property
    def schema(self) -> Schema:
        return self.manifest.schema

    def context(self) -> dict[str, Any]:
        """What a decision's templates read."""
        return {"entry": self.entry, "manifest": self.manifest, "output": self.schema.output}


@dataclass(frozen=True)
class Console:
    """What the pages share: settings, the ledger (opened once), users and sessions,
    warm containers, templates."""

    settings: Settings
    sessions: Sessions
    pool: WarmPool
    ledger: Ledger
    group: GroupCommit  # access entries of concurrent pages share commits
    templates: Jinja2Templates

    def as_user(self, user: ConsoleUser) -> Settings:
        """Settings whose `user` is the console user: replay, review and report entries
        name them."""
        return replace(self.settings, user=user.by)

    def entry(self, txn_id: str) -> LedgerEntry:
        """The decision `txn_id` in clear (Erased when its subject's data was erased)."""
        try:
            entry = self.ledger.get(txn_id)
        except BadInput:
            raise Missing(f"no transaction {txn_id}") from None
        if entry.kind != "decision":
            raise Missing(f"{txn_id} is a {entry.kind} entry, not a decision")
        return entry.readable()

    def open(self, txn_id: str) -> Opened:
        """The decision `txn_id` with its manifest, as the questions take it."""
        entry = self.entry(txn_id)
        manifest = manifest_store(self.settings).load(entry.manifest_id)
        return Opened(entry, manifest, Decision.from_entry(entry, manifest))

    def shown_to(
        self, txn_id: str, user: ConsoleUser, right: str, seen_on: str | None = None
    ) -> Opened:
        """A decision's page (`seen_on` None) or a fragment of it, shown to `user` if
        their role has `right`, and recorded as an access entry naming the page."""
        user.require(right)
        opened = self.open(txn_id)
        self.seen(opened.entry, user, seen_on or right)
        if seen_on is None:
            self.pool.warm_up(opened.entry.manifest_id)  # the page's questions will need it
        return opened

    def seen(self, entry: LedgerEntry, user: ConsoleUser, page: str) -> None:
        """Record that `user` was shown this decision's data on `page` (people only)."""
        if entry.subject is not None:
            self.group.record(
                access_entry(entry.subject, user.by, "console", page=page, refers_to=entry.txn_id)
            )

    def reviews(self, txn_id: str) -> list[Review]:
        return [Review.from_entry(e) for e in self.ledger.list(kind="review", refers_to=txn_id)]

    def decision_value(self, entry: LedgerEntry) -> Any:
        """The decision an entry logged, under its own manifest's output name."""
        output = manifest_store(self.settings).load(entry.manifest_id).schema.output
        return entry.outputs.get(output.decision)

    # -- answering ---------------------------------------------------------------------

    def page(
        self,
        request: Request,
        template: str,
        user: ConsoleUser | None,
        code: int = 200,
        **context: Any,
    ) -> Response:
        # a fragment has nowhere to show a message: it waits for the next page
        flash = None if partial(request) else request.session.pop("flash", None)
        return self.templates.TemplateResponse(
            request,
            template,
            {"user": user, "csrf": self.sessions.csrf(request.session), "flash": flash, **context},
            status_code=code,
        )

    def message(self, request: Request, status: int, text: str) -> Response:
        """A refusal or failure: in place for htmx, as a page otherwise."""
        if partial(request):
            return self.templates.TemplateResponse(
                request, "_message.html", {"text": text, "status": status}, status_code=status
            )
        user = getattr(request.state, "user", None)
        return self.page(request, "message.html", user, status, text=text, status=status)

    def to_sign_in(self, request: Request, text: str) -> Response:
        request.session["flash"] = text
        if partial(request):  # htmx: the whole page goes to sign in, not a fragment
            return Response(status_code=200, headers={"HX-Redirect": "/login"})
        return RedirectResponse("/login", status_code=303)

    async def form(self, request: Request) -> dict[str, str]:
        """The posted form as text fields, refused without this session's CSRF token.
        Past the sign-in page, read only once the session and the role are checked
        (`SignedIn` runs before the route, `require` first in it): a refused caller's
        body is never parsed."""
        form = await request.form()
        fields = {key: value for key, value in form.items() if isinstance(value, str)}
        self.sessions.check_form(
            request.session, fields.get("csrf") or request.headers.get("X-CSRF-Token")
        )
        return fields


def partial(request: Request) -> bool:
    """Asked by htmx for a fragment of a page."""
    return request.headers.get("HX-Request") == "true"


def console_of(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


Shared = Annotated[Console, Depends(console_of)]


def signed_in(request: Request, console: Shared) -> ConsoleUser:
    user = console.sessions.current(request.session, SESSION_COOKIE in request.cookies)
    request.state.user = user  # a message page names who is signed in
    return user


SignedIn = Annotated[ConsoleUser, Depends(signed_in)]
