"""`replay serve` (the decision API), `replay tokens` (who may use it), `replay
console` (web pages for support and compliance) and `replay users` (who may use them)."""

from __future__ import annotations

import sys

import click
from replay.cli.output import emit, json_option, table
from replay.cli.params import Assignment, count_option

import replay
from replay.stores.tokens import SCOPES
from replay.stores.users import ROLES


@click.command()
@click.argument("target")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@count_option(
    "--containers", default=2, low=1, high=32, help="Warm containers answering in parallel."
)
@click.option(
    "--map",
    "mapping",
    multiple=True,
    type=Assignment(),
    help="ISVC=DEPLOYMENT: KServe's CloudEvents of that InferenceService are its decisions.",
)
def serve(
    target: str, host: str, port: int, containers: int, mapping: tuple[tuple[str, str], ...]
) -> None:
    """Serve decisions of TARGET (a deployment name or manifest id) over HTTP, logging
    each: replay's API, the Open Inference Protocol (/v2) and KServe's CloudEvents
    (/ingest/kserve)."""
    replay.serve(
        target,
        host=host,
        port=port,
        containers=containers,
        mapping=dict(mapping),
        ready=lambda line: click.echo(line, err=True),
    )


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8100, show_default=True, type=click.IntRange(1, 65535))
def console(host: str, port: int) -> None:
    """Serve the console: find a person's decisions, ask what-if, sweep, options, reports."""
    from replay.web.console import NoConsoleUsers

    try:
        replay.console(host=host, port=port, ready=lambda line: click.echo(line, err=True))
    except NoConsoleUsers as error:
        raise NoConsoleUsers(f"{error} (replay users add NAME --role ROLE)") from None


tokens = click.Group("tokens", help="API tokens for `replay serve` (hashed at rest).")


@tokens.command("add")
@click.argument("name")
@click.option("--scope", required=True, type=click.Choice(SCOPES), help="What it may do.")
@json_option
def tokens_add(name: str, scope: str, as_json: bool) -> None:
    """Make a token NAME; it is printed once, and only its hash is kept."""
    made = replay.add_token(name, scope)
    emit(
        made,
        as_json,
        lambda token: click.echo(
            f"token {token.name} ({token.scope}): {token.token}\n"
            "send it as `Authorization: Bearer TOKEN`; it is not shown again"
        ),
    )


@tokens.command("list")
@json_option
def tokens_list(as_json: bool) -> None:
    """The tokens: name, scope and when each was made (never the token)."""
    emit(
        [{"name": t.name, "scope": t.scope, "created": t.created} for t in replay.list_tokens()],
        as_json,
        lambda rows: (
            table(
                ("name", "scope", "created"), ((r["name"], r["scope"], r["created"]) for r in rows)
            )
            if rows
            else click.echo("no tokens: make one with `replay tokens add NAME --scope decide|read`")
        ),
    )


@tokens.command("revoke")
@click.argument("name")
def tokens_revoke(name: str) -> None:
    """Revoke the token NAME: it is refused from the next request on."""
    revoked = replay.revoke_token(name)
    click.echo(f"revoked {revoked.name} ({revoked.scope})")


users = click.Group("users", help="The console's users and their roles (passwords hashed).")


@users.command("add")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(ROLES), help="What they may see and do.")
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from standard input (scripts)."
)
@json_option
def users_add(name: str, role: str, password_stdin: bool, as_json: bool) -> None:
    """Add user NAME; their password is asked for (twice) and kept only as a hash."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    user = replay.add_user(name, role, password)
    emit(
        {"name": user.name, "role": user.role, "created": user.created},
        as_json,
        lambda row: click.echo(f"user {row['name']} ({row['role']}) added"),
    )


@users.command("list")
@json_option
def users_list(as_json: bool) -> None:
    """The users: name, role and when each was added (never a password or its hash)."""
    emit(
        [{"name": u.name, "role": u.role, "created": u.created} for u in replay.list_users()],
        as_json,
        lambda rows: (
            table(("name", "role", "created"), ((r["name"], r["role"], r["created"]) for r in rows))
            if rows
            else click.echo("no users: add one with `replay users add NAME --role ROLE`")
        ),
    )


@users.command("remove")
@click.argument("name")
def users_remove(name: str) -> None:
    """Remove user NAME: they cannot sign in any more."""
    removed = replay.remove_user(name)
    click.echo(f"removed {removed.name} ({removed.role})")
