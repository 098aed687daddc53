"""`replay serve`: the decision API."""

from __future__ import annotations

import click
from replay.cli.params import count_option

import replay


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
