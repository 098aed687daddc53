"""`replay subject export|erase`: data subjects' rights."""

from __future__ import annotations

import json
from pathlib import Path

import click
from replay.cli.output import emit, json_option

import replay
from replay.ledger.subjects import Erasure

subject = click.Group("subject", help="A person's data: export it all, or erase it.")


@subject.command("export")
@click.argument("subject_id")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the JSON to this new file (created private) instead of printing it.",
)
def subject_export(subject_id: str, out: Path | None) -> None:
    """Everything the ledger holds about one person (decisions, replays, reviews, and
    who accessed them), as JSON; the export is itself recorded."""
    export = replay.export_subject(subject_id, out=out)
    if out is None:
        click.echo(json.dumps(export.to_dict(), indent=2, ensure_ascii=False))
    else:
        click.echo(f"{len(export.entries)} entries about this subject written to {out}")


@subject.command("erase")
@click.argument("subject_id")
@click.option("--yes", is_flag=True, help="Do not ask before erasing.")
@json_option
def subject_erase(subject_id: str, yes: bool, as_json: bool) -> None:
    """Destroy one person's key: their entries stay in the chain (which still verifies)
    and read as erased; the erasure is recorded. Reading them afterwards exits 5."""
    if not yes:
        click.confirm("Erase this person's data for good? It cannot be undone", abort=True)

    def show(result: Erasure) -> None:
        day = result.erased_on[:10]
        if result.already:
            click.echo(f"already erased on {day}: {result.entries} sealed entries unreadable")
        else:
            click.echo(f"erased on {day}: {result.entries} sealed entries are now unreadable")
        if result.in_clear:
            click.echo(
                f"warning: {len(result.in_clear)} entries written before sealing hold this "
                f"person's data in clear and stay readable: {', '.join(result.in_clear)}",
                err=True,
            )

    emit(replay.erase_subject(subject_id), as_json, show)
