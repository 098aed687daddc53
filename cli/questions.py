"""`replay replay`, `whatif`, `sweep`, `counterfactual`, `explain`: one decision asked again."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING

import click
from replay.cli.output import console, emit, json_option, number, progress_bar, table
from replay.cli.params import (
    Assignment,
    GridRange,
    Moment,
    count_option,
    scheduler_option,
    workers_option,
)

import replay
from replay.display import format_value
from replay.errors import ImmutableInput, VerificationFailed

if TYPE_CHECKING:  # result types; each command loads only the question it asks
    from replay.execution.reexecution import ReplayResult
    from replay.history.batch_replay import ReplaySummary
    from replay.questions.counterfactuals import CounterfactualSet
    from replay.questions.explanations import Explanation
    from replay.questions.sweeps import Range, Sweep
    from replay.questions.what_if import WhatIf

VERDICT_COLOURS = {"reproduced": "green", "diverged": "yellow", "failed": "red"}
allow_immutable_option = click.option(
    "--allow-immutable",
    is_flag=True,
    help="Compliance probing: let the question change an immutable (protected) input.",
)
MAX_SWEEP_ROWS = 60  # more variants than this are shown thinned out


@click.command("replay")
@click.argument("txn_id", required=False)
@click.option("--all", "replay_all", is_flag=True, help="Replay every decision (filtered).")
@click.option("--deployment", help="With --all: only this deployment's decisions.")
@click.option("--since", type=Moment(), help="With --all: only decisions at or after this time.")
@click.option("--until", type=Moment(), help="With --all: only decisions before this time.")
@scheduler_option
@workers_option
@json_option
def replay_command(
    txn_id: str | None,
    replay_all: bool,
    deployment: str | None,
    since: datetime | None,
    until: datetime | None,
    scheduler: str | None,
    workers: int | None,
    as_json: bool,
) -> None:
    """Re-execute a logged decision in its original container; compare bit for bit.

    Exit 0 when reproduced, 1 when diverged or failed.
    """
    if bool(txn_id) == replay_all:
        raise click.UsageError("give one transaction id, or --all (with its filters)")
    if txn_id:
        result = replay.replay(txn_id)
        emit(result, as_json, _show_replay)
        if not result.reproduced:
            raise VerificationFailed(f"{txn_id} {result.verdict}")
        return

    with progress_bar("replaying", as_json) as progress:
        summary = replay.replay_many(
            deployment=deployment,
            since=since,
            until=until,
            scheduler=scheduler,
            workers=workers,
            keep_reproduced=False,  # only what did not reproduce is shown (and kept)
            progress=progress,
        )
    emit(summary, as_json, _show_summary)
    if not summary.all_reproduced:
        failed = summary.total - summary.counts["reproduced"]
        raise VerificationFailed(f"{failed} decisions did not reproduce")


def _show_replay(result: ReplayResult) -> None:
    out = console()
    out.print(
        f"[bold {VERDICT_COLOURS[result.verdict]}]{result.verdict}[/]  {result.txn_id}  "
        f"manifest {result.manifest_id[:12]}  image: {result.recovery}  "
        f"({result.seconds:.2f} s)"
    )
    if result.error:
        out.print(f"  {result.error}")
    if result.differences:
        table(
            ("field", "logged", "replayed", "abs diff", "ULPs"),
            (
                (
                    diff.field,
                    repr(diff.logged),
                    repr(diff.replayed),
                    "" if diff.absolute is None else f"{diff.absolute:.3g}",
                    "" if diff.ulps is None else diff.ulps,
                )
                for diff in result.differences
            ),
        )
    if result.record_txn:
        out.print(f"  [dim]recorded as {result.record_txn}[/dim]")


def _show_summary(summary: ReplaySummary) -> None:
    for result in summary.results:
        if not result.reproduced:
            _show_replay(result)
    counts = summary.counts
    click.echo(
        f"{summary.total} replayed on {summary.workers} Dask worker(s): "
        f"{counts['reproduced']} reproduced, {counts['diverged']} diverged, "
        f"{counts['failed']} failed"
        + (f"; {summary.erased} erased decisions left out" if summary.erased else "")
    )


@click.command()
@click.argument("txn_id")
@click.option(
    "--set",
    "assignments",
    type=Assignment(),
    multiple=True,
    required=True,
    help="An edited input; repeat for several.",
)
@allow_immutable_option
@json_option
def whatif(
    txn_id: str, assignments: tuple[tuple[str, str], ...], allow_immutable: bool, as_json: bool
) -> None:
    """Re-run a logged decision with edited inputs, in its original container."""
    with _immutable_hint():
        answer = replay.whatif(txn_id, dict(assignments), allow_immutable=allow_immutable)
    emit(answer, as_json, _show_whatif)


def _show_whatif(answer: WhatIf) -> None:
    rows: list[tuple[str, str, str]] = [
        (name, format_value(old), f"[bold]{format_value(new)}[/bold]")
        for name, (old, new) in answer.changed.items()
    ]
    decision, score = answer.output.decision, answer.output.score
    fields = set(answer.original_outputs) | set(answer.modified_outputs)
    others = sorted(fields - {decision, score})
    for field in (decision, score, *others):  # every output, the decision and score first
        old, new = answer.original_outputs.get(field), answer.modified_outputs.get(field)
        changed = field == decision and answer.decision_changed
        rows.append(
            (field, number(old), f"[bold yellow]{number(new)}[/]" if changed else number(new))
        )
    table(("", "original (logged)", "what if"), rows, title=f"what if: {answer.txn_id}")
    _say_probed(answer.probed)


def _say_probed(probed: tuple[str, ...]) -> None:
    if probed:
        console().print(
            f"[bold yellow]compliance probing:[/] {', '.join(probed)} changed although "
            "immutable; a person is never offered this"
        )


@contextmanager
def _immutable_hint() -> Iterator[None]:
    """The library's refusal of an immutable input, with the flag that allows it."""
    try:
        yield
    except ImmutableInput as error:
        raise ImmutableInput(f"{error} (--allow-immutable)") from None


@click.command()
@click.argument("txn_id")
@click.option(
    "--vary",
    type=GridRange(),
    multiple=True,
    required=True,
    help="A feature and its grid; once for 1-D, twice for 2-D.",
)
@click.option("--out", type=click.Path(dir_okay=False), help="Write the grid (.csv/.parquet).")
@click.option("--plot", type=click.Path(dir_okay=False), help="Write a PNG plot.")
@allow_immutable_option
@json_option
def sweep(
    txn_id: str,
    vary: tuple[Range, ...],
    out: str | None,
    plot: str | None,
    allow_immutable: bool,
    as_json: bool,
) -> None:
    """How a logged decision responds as one or two features vary (original container)."""
    with _immutable_hint():
        result = replay.sweep(txn_id, list(vary), allow_immutable=allow_immutable)
    if out:
        result.save(out)
    if plot:
        result.plot(plot)
    emit(result, as_json, _show_sweep)
    for label, path in (("grid", out), ("plot", plot)):
        if path and not as_json:
            click.echo(f"{label} written to {path}")


def _show_sweep(result: Sweep) -> None:
    frame, decision, score = result.frame, result.decision_field, result.score_field
    every = 1 if len(frame) <= MAX_SWEEP_ROWS else max(len(frame) // (MAX_SWEEP_ROWS // 2), 1)
    title = f"sweep of {result.txn_id}: {len(frame):,} variants"
    table(
        (*result.features, decision, score),
        (
            (*[f"{row[f]:,.6g}" for f in result.features], row[decision], number(row[score]))
            for _, row in frame.iloc[::every].iterrows()
        ),
        title=title + (f", one in {every} shown" if every > 1 else ""),
    )
    _say_probed(result.probed)
    if len(result.features) == 1:
        (feature,) = result.features
        for _, row in result.changes.iterrows():
            console().print(
                f"decision becomes [bold]{row[decision]}[/bold] at {feature} = {row[feature]:,.6g}"
            )


@click.command()
@click.argument("txn_id")
@count_option("-n", "count", default=3, low=1, high=20, help="How many options to find.")
@click.option("--target", help="The decision to reach (default: the favourable one).")
@json_option
def counterfactual(txn_id: str, count: int, target: str | None, as_json: bool) -> None:
    """The smallest realistic changes that would have reached the favourable decision."""
    found = replay.counterfactual(txn_id, n=count, target=target)
    emit(found, as_json, _show_counterfactuals)


def _show_counterfactuals(found: CounterfactualSet) -> None:
    click.echo(
        f"{found.txn_id} was {found.decision}; {len(found.options)} verified option(s) "
        f"({found.evaluated:,} variants run in the original container):"
    )
    for position, option in enumerate(found.options, 1):
        click.echo(f"  {position}. {option.description}")
    if found.none_found:
        click.echo(f"  {found.none_found}")


@click.command()
@click.argument("txn_id")
@count_option(
    "--reference-rows", default=50, low=1, high=10_000, help="Reference rows to average over."
)
@json_option
def explain(txn_id: str, reference_rows: int, as_json: bool) -> None:
    """Reasons for a logged decision: what moved it (and its score), what decided it."""
    emit(replay.explain(txn_id, reference_rows=reference_rows), as_json, _show_explanation)


def _show_explanation(result: Explanation) -> None:
    out = console()
    score = "no score" if result.score is None else f"score {number(result.score)}"
    base = "" if result.base_score is None else f", score {number(result.base_score)}"
    out.print(
        f"[bold]{result.decision}[/bold]  {result.txn_id}: {score}, seed {result.seed}; "
        f"reference sample: {result.base_rate:.0%} {result.favourable_value}{base} "
        f"({result.method}, {result.reference_rows} reference rows)"
    )
    out.print(result.summary)

    def signed(value: float | None) -> str:
        if value is None:
            return "null"
        return f"[{'red' if value < 0 else 'green'}]{value:+.4f}[/]"

    table(
        ("feature", "value", "typical", f"to {result.favourable_value}", "to score", ""),
        (
            (
                item.feature,
                format_value(item.value),
                "" if item.reference_mean is None else f"{item.reference_mean:,.6g}",
                signed(item.decision),
                signed(item.score),
                "immutable" if item.immutable else "",
            )
            for item in result.contributions
        ),
    )
    if result.reasons:
        out.print("[bold]Main reasons[/bold]")
        for position, reason in enumerate(result.reasons, 1):
            out.print(f"  {position}. {reason}")
    if result.protected:
        out.print("[bold]Immutable features that contributed[/bold] (for a compliance reviewer)")
        for line in result.protected:
            out.print(f"  - {line}")
    out.print(
        f"features the model was given: {', '.join(result.features)}"
        + (f"; no effect here: {', '.join(result.unused)}" if result.unused else "")
    )
