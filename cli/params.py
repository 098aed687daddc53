"""Command-line syntax parsed into typed values before the library is called: the
library never sees `NAME=VALUE` or `A:B:N`, and its messages never name a flag."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

import replay
from replay.errors import BadInput

if TYPE_CHECKING:
    from replay.questions.sweeps import Range


def count_option(*names: str, default: int, low: int, high: int, help: str) -> Any:
    """An option taking a whole number from `low` to `high`, its default shown in help."""
    return click.option(
        *names, default=default, show_default=True, type=click.IntRange(low, high), help=help
    )


class Assignment(click.ParamType):
    """`NAME=VALUE` → (name, value text); the schema gives the text its type (and keeps a
    free text's spaces: only the schema knows which inputs are text)."""

    name = "NAME=VALUE"

    def convert(self, value: Any, param: Any, ctx: Any) -> tuple[str, str]:
        if isinstance(value, tuple):
            return value
        name, separator, text = str(value).partition("=")
        if not separator or not name.strip():
            self.fail(f"{value!r} is not NAME=VALUE", param, ctx)
        return name.strip(), text


class GridRange(click.ParamType):
    """`NAME=START:STOP:COUNT` → a sweep `Range`."""

    name = "NAME=START:STOP:COUNT"

    def convert(self, value: Any, param: Any, ctx: Any) -> Range:
        if isinstance(value, replay.Range):
            return value
        name, separator, grid = str(value).partition("=")
        parts = grid.split(":")
        try:
            if not separator or not name.strip() or len(parts) != 3:
                raise ValueError
            start, stop = (float(part.replace("_", "")) for part in parts[:2])
            count = int(parts[2])
        except ValueError:
            self.fail(f"{value!r} is not NAME=START:STOP:COUNT", param, ctx)
        return replay.Range(name.strip(), start, stop, count)


class Bins(click.ParamType):
    """`18,25,40,65,100` → a number's bin edges, each above the one before."""

    name = "E1,E2,..."

    def convert(self, value: Any, param: Any, ctx: Any) -> list[float]:
        from replay.history.groups import bin_edges  # only when bins are given

        if isinstance(value, list):
            return value
        try:
            edges = [float(part.replace("_", "")) for part in str(value).split(",")]
        except ValueError:
            self.fail(f"{value!r} is not numbers separated by commas (e.g. 18,25,40)", param, ctx)
        try:
            return bin_edges(edges)
        except BadInput as problem:
            self.fail(str(problem), param, ctx)


class Moment(click.ParamType):
    """An ISO date or time (`2026-05-01`, `2026-05-01T09:30+02:00`); no zone means UTC."""

    name = "ISO-TIME"

    def convert(self, value: Any, param: Any, ctx: Any) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            return datetime.fromisoformat(str(value))
        except ValueError:
            self.fail(f"{value!r} is not an ISO date or time (e.g. 2026-05-01)", param, ctx)


# Where work over many decisions runs (Dask).
scheduler_option = click.option(
    "--scheduler",
    metavar="ADDRESS",
    help="A Dask scheduler (tcp://HOST:8786); default a local cluster (or DASK_SCHEDULER_ADDRESS).",
)
workers_option = click.option(
    "--workers",
    type=click.IntRange(1, 256),
    help="Worker processes of the local cluster (default: one per core).",
)


def period_options(command: Any) -> Any:
    """`--since` (inclusive) and `--until` (exclusive): the time a selection covers."""
    command = click.option("--until", type=Moment(), help="ISO date or time, exclusive.")(command)
    return click.option("--since", type=Moment(), help="ISO date or time, inclusive.")(command)
