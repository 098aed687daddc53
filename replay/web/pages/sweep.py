"""Sweeps: one or two numbers of a decision varied over a range, all else as logged,
drawn as a plot."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from replay.questions import sweep_of
from replay.web.forms import sweep_choices, sweep_ranges
from replay.web.pages.shared import Shared, SignedIn

if TYPE_CHECKING:
    from replay.questions.sweeps import Sweep

router = APIRouter()


@router.get("/decisions/{txn_id}/sweep", response_class=HTMLResponse)
def sweep_page(request: Request, txn_id: str, console: Shared, user: SignedIn) -> Any:
    opened = console.shown_to(txn_id, user, "sweep")
    choices = sweep_choices(opened.schema, opened.entry.inputs)
    return console.page(request, "sweep.html", user, **opened.context(), choices=choices)


@router.post("/decisions/{txn_id}/sweep", response_class=HTMLResponse)
async def sweep(request: Request, txn_id: str, console: Shared, user: SignedIn) -> Any:
    user.require("sweep")
    form = await console.form(request)

    def ask() -> Sweep:
        opened = console.open(txn_id)
        ranges = sweep_ranges(opened.schema, opened.entry.inputs, form)  # refused: no entry
        with console.pool.using(opened.entry.manifest_id) as warm:
            answer = sweep_of(
                schema=opened.schema, decision=opened.decision, ranges=ranges, predictor=warm
            )
        console.seen(opened.entry, user, "sweep")
        return answer

    answer = await run_in_threadpool(ask)
    plot = await run_in_threadpool(answer.svg)
    return console.page(request, "_sweep_result.html", user, sweep=answer, plot=plot)
