"""`replay serve` (the decision API) and `replay tokens` (who may use it)."""

from __future__ import annotations

import click
from replay.cli.output import emit, json_option, table
from replay.cli.params import count_option

import replay
from replay.stores.tokens import SCOPES


@click.command()
@click.argument("target")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@count_option(
    "--containers", default=2, low=1, high=32, help="Warm containers answering in parallel."
)
def serve(target: str, host: str, port: int, containers: int) -> None:
    """Serve decisions of TARGET (a deployment name or manifest id) over HTTP, logging each."""
    replay.serve(
        target,
        host=host,
        port=port,
        containers=containers,
        ready=lambda line: click.echo(line, err=True),
    )


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
