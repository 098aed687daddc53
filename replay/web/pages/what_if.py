"""What if: the decision made again in its original container with the inputs a person
edited on the form."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from replay.questions import whatif_of
from replay.web.forms import input_fields, whatif_changes
from replay.web.pages.shared import Shared, SignedIn

if TYPE_CHECKING:
    from replay.questions.what_if import WhatIf

router = APIRouter()


@router.get("/decisions/{txn_id}/what-if", response_class=HTMLResponse)
def whatif_page(request: Request, txn_id: str, console: Shared, user: SignedIn) -> Any:
    opened = console.shown_to(txn_id, user, "what-if")
    fields = input_fields(opened.schema, opened.entry.inputs)
    return console.page(request, "whatif.html", user, **opened.context(), fields=fields)


@router.post("/decisions/{txn_id}/what-if", response_class=HTMLResponse)
async def whatif(request: Request, txn_id: str, console: Shared, user: SignedIn) -> Any:
    user.require("what-if")
    form = await console.form(request)

    def ask() -> WhatIf:
        opened = console.open(txn_id)
        changes = whatif_changes(opened.schema, opened.entry.inputs, form)  # refused: no entry
        with console.pool.using(opened.entry.manifest_id) as warm:
            answer = whatif_of(
                schema=opened.schema, decision=opened.decision, changes=changes, predictor=warm
            )
        console.seen(opened.entry, user, "what-if")
        return answer

    answer = await run_in_threadpool(ask)
    return console.page(request, "_whatif_result.html", user, answer=answer)
