"""How the CLI talks: one error handler, `--json` built one way, tables in one style.

Every `ReplayError` raised below a command becomes one line on stderr and its exit
code; with `--json` a command prints its result as data, else a human rendering.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import math
import os
import sys
import traceback
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO, TypeVar

import click

from replay.display import shorten
from replay.errors import INTERNAL_ERROR, ReplayError, ReplayWarning
from replay.settings import without_password

if TYPE_CHECKING:
    from rich.console import Console

T = TypeVar("T")
INTERRUPTED = 130  # as a shell reports a process ended by Ctrl-C
PIPED_WIDTH = 200  # columns for tables written to a pipe or file

json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


def fail(message: str, code: int) -> NoReturn:
    # a store's URL may reach here from a layer that cannot mask it (the engine's
    # address from replay.images) or inside a library's message: none shows a password
    click.echo(f"error: {without_password(message)}", err=True)
    sys.exit(code)


class ReplayGroup(click.Group):
    """The top command group: whatever goes wrong below it, in a command, a sub-group or
    click's own parsing of the command line, ends in one line and its exit code."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False  # errors come back here, not printed by click
        warnings.showwarning = _warn_in_one_line
        try:
            return super().main(*args, **kwargs)
        except ReplayError as error:
            fail(str(error), error.exit_code)
        except click.UsageError as error:  # BadInput's exit code: 2
            path = error.ctx.command_path if error.ctx else "replay"
            fail(f"{error.format_message()} (see `{path} --help`)", 2)
        except click.ClickException as error:
            fail(error.format_message(), error.exit_code)
        except (KeyboardInterrupt, click.Abort):
            fail("interrupted", INTERRUPTED)
        except OSError as error:  # the machine, not the user: a full disk, a lost mount
            where = f" ({error.filename})" if error.filename else ""
            if error.errno == errno.ENOSPC:
                fail(f"disk full{where}: nothing was kept half-written; free space, retry", 3)
            fail(f"{error.strerror or error}{where}", 3)
        except Exception as error:  # a bug of replay's: its own exit code, and the trace
            if os.environ.get("REPLAY_DEBUG"):
                traceback.print_exc()
            fail(
                f"internal error: {type(error).__name__}: "
                f"{shorten(without_password(str(error)), 200)} "
                "(a bug in replay; REPLAY_DEBUG=1 shows where)",
                INTERNAL_ERROR,
            )


def _warn_in_one_line(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """Replay's own warnings as one `warning:` line on stderr; others as Python shows them."""
    if issubclass(category, ReplayWarning):
        click.echo(f"warning: {without_password(str(message))}", err=True)
    else:
        shown = warnings.formatwarning(message, category, filename, lineno).strip()
        click.echo(without_password(shown), err=True)


def jsonable(value: Any) -> Any:
    """A result as JSON data: `to_dict()` where a result defines it, dataclass fields
    otherwise; paths and times as text."""
    if hasattr(value, "to_dict"):
        return jsonable(value.to_dict())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, Path | datetime | bytes):
        return str(value)
    return value


def emit(result: T, as_json: bool, human: Callable[[T], None]) -> None:
    """Print `result` as JSON data, or as `human` renders it."""
    if as_json:
        click.echo(json.dumps(jsonable(result), indent=2, sort_keys=True, default=str))
    else:
        human(result)


def console() -> Console:
    from rich.console import Console  # 30 ms: only human output pays it, not --json

    # soft_wrap: a long line (a verdict, an id) stays whole when piped; piped output is
    # not cut to 80 columns either (a terminal keeps its own width)
    return Console(soft_wrap=True, width=None if sys.stdout.isatty() else PIPED_WIDTH)


def table(
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    title: str | None = None,
    whole: Sequence[str] = (),
) -> None:
    """A table of text cells; a column named in `whole` is never cut (ids are copied)."""
    from rich.table import Table  # with rich.console: only human output pays it

    shown = Table(title=title)
    for column in columns:
        shown.add_column(column, no_wrap=column in whole)
    for row in rows:
        shown.add_row(*(str(cell) for cell in row))
    console().print(shown)


def number(value: Any, digits: int = 4) -> str:
    """A score or value for a table: fixed decimals for floats, `null` for a missing
    value (a NaN in a frame too), text on one short line, as is otherwise."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "null"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return shorten(value) if isinstance(value, str) else str(value)


@contextmanager
def progress_bar(label: str, hidden: bool) -> Iterator[Callable[[int, int], None]]:
    """A transient bar on stderr (none when `hidden`, as with --json), and the
    `progress(done, total)` a library call reports to."""
    from rich.progress import Progress  # only commands that show a bar load it

    with Progress(transient=True, disable=hidden) as bar:
        task = bar.add_task(label, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)
