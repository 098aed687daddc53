"""`replay backtest`: whole histories asked again (batch replay is `replay replay --all`)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click
from replay.cli.output import emit, json_option, table
from replay.cli.params import Moment, scheduler_option, workers_option

import replay

if TYPE_CHECKING:
    from replay.history.backtest import Backtest


@click.command()
@click.option(
    "--challenger", required=True, help="A manifest id, or a deployment name (its newest)."
)
@click.option("--deployment", help="Whose logged decisions (default: the challenger's).")
@click.option("--since", type=Moment(), help="ISO date or time, inclusive.")
@click.option("--until", type=Moment(), help="ISO date or time, exclusive.")
@click.option("--sample", type=click.IntRange(min=1), help="A uniform sample of N decisions.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Folder for the HTML summary and the Parquet of flips.",
)
@scheduler_option
@workers_option
@json_option
def backtest(
    challenger: str,
    deployment: str | None,
    since: datetime | None,
    until: datetime | None,
    sample: int | None,
    out: Path,
    scheduler: str | None,
    workers: int | None,
    as_json: bool,
) -> None:
    """Re-run logged decisions in the CHALLENGER's container with their logged inputs
    and seeds; count what would have been decided otherwise, and for whom."""
    from rich.progress import Progress

    with Progress(transient=True, disable=as_json) as bar:
        task = bar.add_task("backtesting", total=None)
        result = replay.backtest(
            challenger,
            deployment=deployment,
            since=since,
            until=until,
            sample=sample,
            out=out,
            scheduler=scheduler,
            workers=workers,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    emit(result, as_json, _show_backtest)


def _show_backtest(result: Backtest) -> None:
    summary = result.summary
    click.echo(
        f"{summary['decisions']:,} decisions of {result.deployment} re-run by "
        f"{result.challenger[:12]}: {summary['flips']:,} flipped "
        f"({summary['flip_rate']:.2%}); favourable {summary['favourable_rate_before']:.2%} "
        f"-> {summary['favourable_rate_after']:.2%}"
        + (f"; {result.refused:,} refused ({result.refusal})" if result.refused else "")
    )
    table(
        ("logged", "challenger", "decisions", "share"),
        (
            (cell["logged"], cell["challenger"], f"{cell['count']:,}", f"{cell['rate']:.2%}")
            for cell in summary["flip_table"]
        ),
    )
    click.echo(f"summary: {result.files['html']}\nflips:   {result.files['parquet']}")
    click.echo(f"MLflow run {result.mlflow_run}; recorded as {result.record_txn}")
