"""Signing in and out."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from replay.errors import BadInput
from replay.web.pages.shared import Shared, signed_in
from replay.web.sessions import ROLE_HOME

router = APIRouter()


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, console: Shared) -> Any:
    return console.page(request, "login.html", None)


@router.post("/login")
async def login(request: Request, console: Shared) -> Any:
    fields = await console.form(request)
    try:
        user = await run_in_threadpool(
            console.sessions.sign_in,
            request.session,
            fields.get("name", "").strip(),
            fields.get("password", ""),
        )
    except BadInput as error:
        return console.page(request, "login.html", None, 401, error=str(error))
    return RedirectResponse(ROLE_HOME[user.role], status_code=303)


# Signed in first: without a session there is nothing to end, and no form is read.
@router.post("/logout", dependencies=[Depends(signed_in)])
async def logout(request: Request, console: Shared) -> Any:
    await console.form(request)
    request.session.clear()
    request.session["flash"] = "signed out"
    return RedirectResponse("/login", status_code=303)
