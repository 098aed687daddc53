"""Finding a person's decisions, by their subject identifier or a transaction id."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

import replay
from replay.errors import BadInput
from replay.ledger.chain import LedgerEntry
from replay.web.pages.shared import Shared, SignedIn
from replay.web.sessions import ROLE_HOME

router = APIRouter()


@router.get("/", response_class=HTMLResponse)
def find_page(request: Request, console: Shared, user: SignedIn) -> Any:
    if not user.may("find"):
        return RedirectResponse(ROLE_HOME[user.role], status_code=303)
    return console.page(request, "find.html", user, decisions=None)


# A POST, so that a person's identifier never appears in a URL, a log or the history.
@router.post("/find", response_class=HTMLResponse)
async def find(request: Request, console: Shared, user: SignedIn) -> Any:
    user.require("find")
    fields = await console.form(request)
    txn_id = fields.get("txn", "").strip()
    subject = fields.get("subject", "").strip()
    if txn_id:
        await run_in_threadpool(console.entry, txn_id)
        return RedirectResponse(f"/decisions/{txn_id}", status_code=303)
    if not subject:
        raise BadInput("give a subject identifier or a transaction id")

    def look_up() -> list[tuple[LedgerEntry, Any]]:
        found = replay.list_transactions(subject=subject, settings=console.as_user(user))
        return [(e, None if e.erased_on else console.decision_value(e)) for e in found]

    decisions = await run_in_threadpool(look_up)
    return console.page(request, "find.html", user, decisions=decisions)
