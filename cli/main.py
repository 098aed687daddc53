"""The `replay` command: thin over the library, one line per error, `--json` for scripts.

Heavy libraries (mlflow, dvc, docker, pandas) are imported inside the commands that
use them so that `replay --help` answers at once.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

import click

from replay.errors import ReplayError


def _fail(message: str, code: int) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def handles_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a ReplayError raised anywhere below into one line and its exit code."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ReplayError as error:
            _fail(str(error), error.exit_code)
        except KeyboardInterrupt:
            _fail("interrupted", 130)

    return wrapper


def emit_json(document: Any) -> None:
    click.echo(json.dumps(document, indent=2, sort_keys=True, default=str))


json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="replay-engine", prog_name="replay")
def cli() -> None:
    """Freeze ML deployments, log their decisions, and replay them bit for bit."""


@cli.command()
@json_option
@handles_errors
def up(as_json: bool) -> None:
    """Start (or reuse) the Docker engine, local registry and base image."""
    from replay.environment import up as bring_up

    environment = bring_up()
    if as_json:
        emit_json(environment.__dict__)
    else:
        click.echo(f"engine {environment.engine_version}, registry {environment.registry}")
        click.echo(f"base image {environment.base_image}")


def main() -> None:
    cli()
