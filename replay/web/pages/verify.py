"""The ledger's chain, verified (compliance)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

import replay
from replay.web.pages.shared import Shared, SignedIn

router = APIRouter()


@router.get("/verify", response_class=HTMLResponse)
def verify(request: Request, console: Shared, user: SignedIn) -> Any:
    user.require("verify")
    result = replay.verify_ledger(settings=console.settings)
    return console.page(request, "verify.html", user, result=result)
