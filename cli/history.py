"""`replay backtest`, `replay audit`, `replay fairness` and `replay drift`: whole
histories asked again (batch replay is `replay replay --all`, export `replay ledger
export`)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click
from replay.cli.output import emit, json_option, progress_bar, table
from replay.cli.params import Bins, period_options, scheduler_option, workers_option

import replay
from replay.display import shorten
from replay.errors import VerificationFailed

if TYPE_CHECKING:
    from replay.history.audit import Audit
    from replay.history.backtest import Backtest
    from replay.history.drift import Drift
    from replay.history.fairness import Fairness


@click.command()
@click.option(
    "--challenger", required=True, help="A manifest id, or a deployment name (its newest)."
)
@click.option("--deployment", help="Whose logged decisions (default: the challenger's).")
@period_options
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

    with progress_bar("backtesting", as_json) as progress:
        result = replay.backtest(
            challenger,
            deployment=deployment,
            since=since,
            until=until,
            sample=sample,
            out=out,
            scheduler=scheduler,
            workers=workers,
            progress=progress,
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


@click.command()
@click.option("--deployment", required=True, help="Whose ingested decisions (its name).")
@period_options
@click.option("--source", help="Only those from one stack: kserve, sagemaker, file.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Folder for the HTML summary.",
)
@scheduler_option
@workers_option
@json_option
def audit(
    deployment: str,
    since: datetime | None,
    until: datetime | None,
    source: str | None,
    out: Path,
    scheduler: str | None,
    workers: int | None,
    as_json: bool,
) -> None:
    """Re-execute the decisions ingested from other serving stacks in the frozen
    deployment's container: did production decide as what was frozen and validated?
    Exit 1 when any diverged or failed."""

    with progress_bar("auditing", as_json) as progress:
        result = replay.audit(
            deployment,
            since=since,
            until=until,
            source=source,
            out=out,
            scheduler=scheduler,
            workers=workers,
            progress=progress,
        )
    emit(result, as_json, _show_audit)
    if not result.all_reproduced:
        counts = result.summary["counts"]
        raise VerificationFailed(
            f"{counts['diverged'] + counts['failed']:,} decisions did not reproduce"
        )


def _largest(difference: float | None) -> str:
    return "n/a" if difference is None else f"{difference:.6g}"


def _show_audit(result: Audit) -> None:
    summary = result.summary
    counts = summary["counts"]
    click.echo(
        f"{summary['decisions']:,} ingested decisions of {result.deployment} re-executed: "
        f"{counts['reproduced']:,} reproduced, {counts['diverged']:,} diverged, "
        f"{counts['failed']:,} failed"
    )
    table(
        ("source", "reproduced", "diverged", "failed"),
        (
            (source, *(f"{c[v]:,}" for v in ("reproduced", "diverged", "failed")))
            for source, c in summary["by_source"].items()
        ),
    )
    if summary["fields"]:
        table(
            ("field", "diverged", "largest difference"),
            (
                (
                    name,
                    f"{seen['diverged']:,}",
                    "n/a" if seen["max_absolute"] is None else f"{seen['max_absolute']:.6g}",
                )
                for name, seen in summary["fields"].items()
            ),
        )
    if summary["failure"]:
        click.echo(f"first failure: {summary['failure']}")
    click.echo(f"summary: {result.files['html']}")
    click.echo(f"MLflow run {result.mlflow_run}; recorded as {result.record_txn}")


@click.command()
@click.option("--attribute", required=True, help="The input whose groups are compared.")
@click.option(
    "--bins",
    type=Bins(),
    help="A number's group edges, e.g. 18,25,40,65,100; under the first and from the last "
    "are groups too (default: the reference's quartiles).",
)
@click.option("--deployment", help="Whose decisions (needed when several match).")
@period_options
@click.option(
    "--sample",
    type=click.IntRange(min=0),
    default=500,
    show_default=True,
    help="Decisions re-run for the flip test (0: rates only).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Folder for a PNG of the rates and flips.",
)
@scheduler_option
@workers_option
@json_option
def fairness(
    attribute: str,
    bins: list[float] | None,
    deployment: str | None,
    since: datetime | None,
    until: datetime | None,
    sample: int,
    out: Path | None,
    scheduler: str | None,
    workers: int | None,
    as_json: bool,
) -> None:
    """Favourable rates by group of ATTRIBUTE, the adverse impact ratio and Fisher's
    test; then whether decisions flip when only the attribute changes."""
    result = replay.fairness(
        attribute,
        deployment=deployment,
        bins=bins,
        since=since,
        until=until,
        sample=sample,
        out=out,
        scheduler=scheduler,
        workers=workers,
    )
    emit(result, as_json, _show_fairness)


def _show_fairness(result: Fairness) -> None:
    erased = f"; {result.erased:,} erased (no value left to group)" if result.erased else ""
    table(
        ("group", "decisions", f"{result.favourable} rate", "impact ratio", "Fisher p", ""),
        (
            (
                shorten(g.group),
                f"{g.decisions:,}",
                f"{g.rate:.1%}",
                f"{g.impact_ratio:.2f}",
                f"{g.fisher_p:.3g}",
                "under 0.8" if g.flagged else "",
            )
            for g in result.groups
        ),
        title=f"{result.deployment}: {result.favourable} by {result.attribute}, "
        f"{result.decisions:,} decisions{erased}",
    )
    test = result.flip_test
    if test:
        click.echo(
            f"flip test: {test['decisions_that_flip']} of {test['sampled']} sampled decisions "
            f"({test['flip_rate']:.1%}) change when only {result.attribute} is set to another "
            "group's typical value; by the value it was set to:"
        )
        for target, figures in test["by_target"].items():
            typical = test["typical"][target]
            value = shorten(typical) if isinstance(typical, str) else typical
            click.echo(
                f"  {shorten(target)} ({value}): {figures['flips']} of {figures['decisions']} flip"
            )
    if result.plot:
        click.echo(f"plot: {result.plot}")


@click.command()
@click.option("--deployment", help="Whose decisions (needed when several match).")
@period_options
@click.option(
    "--windows",
    type=click.IntRange(1, 1000),
    default=6,
    show_default=True,
    help="Equal spans of time the score is followed over.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Folder for a PNG of each flagged feature.",
)
@json_option
def drift(
    deployment: str | None,
    since: datetime | None,
    until: datetime | None,
    windows: int,
    out: Path | None,
    as_json: bool,
) -> None:
    """Each input of the logged decisions against the manifest's reference sample (PSI,
    KS or chi-squared; free text by its length and the share of its values the
    reference holds), and the score over time."""
    emit(
        replay.drift(deployment=deployment, since=since, until=until, windows=windows, out=out),
        as_json,
        _show_drift,
    )


def _show_drift(result: Drift) -> None:
    from replay.history.drift import window_labels

    table(
        ("feature", "PSI", "test", "p", "seen in the reference", "", "plot"),
        (
            (
                f.feature,
                f"{f.psi:.3f}",
                f.test,
                f"{f.p_value:.3g}",
                ""
                if f.seen is None
                else f"{f.seen.share:.0%} (its own {f.seen.reference_share:.0%}, "
                f"p {f.seen.p_value:.3g})",
                "drifted" if f.flagged else "",
                f.plot or "",
            )
            for f in result.features
        ),
        title=f"{result.decisions:,} decisions of {result.deployment} against the reference "
        f"sample of {result.manifest[:12]}",
    )
    windows = result.score_windows
    table(
        ("window (UTC)", "decisions", "mean score", "quartiles"),
        (
            (
                label,
                f"{w['decisions']:,}",
                "" if w["mean_score"] is None else f"{w['mean_score']:.4f}",
                "" if not w["quartiles"] else ", ".join(f"{q:.3f}" for q in w["quartiles"]),
            )
            for label, w in zip(window_labels(windows), windows, strict=True)
        ),
        title="the score over time",
    )
