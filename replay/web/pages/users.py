"""The console's users (admin): who may sign in, with which role."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from replay.errors import BadInput
from replay.stores.users import ROLES
from replay.web.access import add_user, remove_user, user_store
from replay.web.pages.shared import Shared, SignedIn

router = APIRouter()


@router.get("/users", response_class=HTMLResponse)
def users_page(request: Request, console: Shared, user: SignedIn) -> Any:
    user.require("users")
    users = user_store(console.settings).users()
    return console.page(request, "users.html", user, users=users, roles=ROLES)


@router.post("/users")
async def users_add(request: Request, console: Shared, user: SignedIn) -> Any:
    user.require("users")
    fields = await console.form(request)
    name = fields.get("name", "").strip()
    role = fields.get("role", "")
    password = fields.get("password", "")
    await run_in_threadpool(add_user, name, role, password, settings=console.settings)
    request.session["flash"] = f"user {name} ({role}) added"
    return RedirectResponse("/users", status_code=303)


@router.post("/users/{name}/remove")
async def users_remove(request: Request, name: str, console: Shared, user: SignedIn) -> Any:
    user.require("users")
    await console.form(request)
    if name == user.name:
        raise BadInput("you cannot remove yourself: ask another admin")
    removed = await run_in_threadpool(remove_user, name, settings=console.settings)
    request.session["flash"] = f"user {removed.name} removed"
    return RedirectResponse("/users", status_code=303)
