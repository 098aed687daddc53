"""One decision: its inputs and outputs as logged, the reasons behind it, its
re-execution in the original container, and people's reviews of it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

import replay
from replay.execution.reexecution import ReplayResult
from replay.ledger.reviews import OUTCOMES, review_decision
from replay.questions import EXPLANATION_ROWS, explanation_of
from replay.web.forms import input_fields
from replay.web.pages.shared import Shared, SignedIn

# Reference rows the reasons are averaged over: `replay explain`'s own default, so the
# page gives the command line's reasons.

router = APIRouter()


@router.get("/decisions/{txn_id}", response_class=HTMLResponse)
def decision_page(request: Request, txn_id: str, console: Shared, user: SignedIn) -> Any:
    opened = console.shown_to(txn_id, user, "decision")
    return console.page(
        request,
        "decision.html",
        user,
        **opened.context(),
        fields=input_fields(opened.schema, opened.entry.inputs),
        reviews=console.reviews(txn_id),
        outcomes=OUTCOMES,
    )


@router.get("/decisions/{txn_id}/reasons", response_class=HTMLResponse)
def reasons(request: Request, txn_id: str, console: Shared, user: SignedIn) -> Any:
    opened = console.shown_to(txn_id, user, "decision", seen_on="decision: reasons")
    with console.pool.using(opened.entry.manifest_id) as warm:
        explanation = explanation_of(
            schema=opened.schema,
            decision=opened.decision,
            predictor=warm,
            reference=warm.reference_rows(EXPLANATION_ROWS),
        )
    return console.page(request, "_reasons.html", user, explanation=explanation)


@router.post("/decisions/{txn_id}/replay", response_class=HTMLResponse)
async def reexecute(request: Request, txn_id: str, console: Shared, user: SignedIn) -> Any:
    user.require("decision")  # before the form is read: a role refused whatever was sent
    await console.form(request)

    def run() -> ReplayResult:
        opened = console.shown_to(txn_id, user, "decision", "decision: re-execute")
        with console.pool.using(opened.entry.manifest_id) as warm:
            # the replay entry names the console user
            return replay.replay(txn_id, warm=warm, settings=console.as_user(user))

    result = await run_in_threadpool(run)
    return console.page(request, "_verdict.html", user, result=result)


@router.post("/decisions/{txn_id}/review")
async def review(request: Request, txn_id: str, console: Shared, user: SignedIn) -> Any:
    user.require("review")
    fields = await console.form(request)
    made = await run_in_threadpool(
        lambda: review_decision(
            txn_id,
            fields.get("outcome", ""),
            fields.get("note", ""),
            decision=fields.get("decision") or None,
            by=user.by,
            settings=console.settings,
        )
    )
    request.session["flash"] = f"review recorded: {made.summary}"
    return RedirectResponse(f"/decisions/{txn_id}", status_code=303)
