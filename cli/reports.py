"""`replay report`: the decision report, as HTML and PDF."""

from __future__ import annotations

from pathlib import Path

import click
from replay.cli.output import console, emit, json_option

import replay
from replay.reports.reporting import DecisionReport

FORMAT_CHOICES = {"html": ("html",), "pdf": ("pdf",), "both": ("html", "pdf")}


@click.command("report")
@click.argument("txn_id", required=False)
@click.option("--subject", help="A report for every decision of this person (their identifier).")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="The folder the report files are written in.",
)
@click.option("--format", "kind", type=click.Choice(list(FORMAT_CHOICES)), default="both")
@json_option
def report(txn_id: str | None, subject: str | None, out: Path, kind: str, as_json: bool) -> None:
    """Why a decision was made, for the person it was about: reasons, data used, what
    would have changed it, their rights, and the evidence. The decision is re-executed
    in its original container while the report is made."""
    if (txn_id is None) == (subject is None):
        raise click.UsageError("name a transaction, or a person with --subject")
    formats = FORMAT_CHOICES[kind]
    if txn_id is not None:
        made = [replay.report(txn_id, out=out, formats=formats)]
    else:
        made = replay.report_subject(str(subject), out=out, formats=formats)

    def show(reports: list[DecisionReport]) -> None:
        for item in reports:
            content = item.content
            if not content.reproduced:
                console().print(
                    f"[bold red]{content.txn_id}: the re-execution {content.replay['verdict']}"
                    "; the report says so at the top[/]"
                )
            for path in item.files.values():
                click.echo(path)

    emit(made, as_json, show)
