"""Options: the smallest realistic changes that would have reached the favourable
decision, each verified in the original container."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from replay.questions import COUNTERFACTUAL_ROWS, counterfactuals_of
from replay.web.pages.shared import Shared, SignedIn

OPTIONS = 3  # options a page lists, as many as the report

router = APIRouter()


@router.get("/decisions/{txn_id}/options", response_class=HTMLResponse)
def options_page(request: Request, txn_id: str, console: Shared, user: SignedIn) -> Any:
    opened = console.shown_to(txn_id, user, "options")
    return console.page(request, "options.html", user, **opened.context())


@router.get("/decisions/{txn_id}/options/list", response_class=HTMLResponse)
def options(request: Request, txn_id: str, console: Shared, user: SignedIn) -> Any:
    opened = console.shown_to(txn_id, user, "options", seen_on="options: search")
    with console.pool.using(opened.entry.manifest_id) as warm:
        found = counterfactuals_of(
            schema=opened.schema,
            decision=opened.decision,
            predictor=warm,
            reference=warm.reference_rows(COUNTERFACTUAL_ROWS),
            n=OPTIONS,
        )
    return console.page(request, "_options.html", user, found=found, inputs=opened.entry.inputs)
