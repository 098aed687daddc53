"""`replay ingest`: decisions made by other serving stacks, logged (from files, from
SageMaker Data Capture, or as KServe's payload logger posts them), and the events held
beside the ledger (pending halves, quarantined events)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click
from replay.cli.output import emit, json_option, progress_bar, table
from replay.cli.params import Assignment

import replay
from replay.errors import BadInput
from replay.ingestion.files import FORMATS

if TYPE_CHECKING:
    from replay.ingestion import IngestCounts
    from replay.ledger.holding import HeldEvent


@click.command()
@click.argument("location", required=False)
@click.option("--format", "format_", type=click.Choice(FORMATS), help="How LOCATION is written.")
@click.option(
    "--deployment", help="Whose decisions: a deployment name (its newest) or a manifest id."
)
@click.option(
    "--listen", type=click.IntRange(1, 65535), help="Receive KServe's CloudEvents on this port."
)
@click.option("--host", default="127.0.0.1", show_default=True, help="With --listen.")
@click.option(
    "--map",
    "mapping",
    multiple=True,
    type=Assignment(),
    help="ISVC=DEPLOYMENT: events of a KServe InferenceService are that deployment's.",
)
@click.option(
    "--columns",
    help="NAME,NAME,...: the order of the inputs in CSV payloads (default: the manifest's).",
)
@click.option("--pending", is_flag=True, help="List the halves of decisions still waiting.")
@click.option("--quarantined", is_flag=True, help="List the events that could not be logged.")
@click.option("--limit", type=click.IntRange(min=1), help="With --pending or --quarantined.")
@click.option(
    "--workers",
    type=click.IntRange(0, 256),
    help="With LOCATION: processes preparing its decisions (default: one per core; 0: none).",
)
@json_option
def ingest(
    location: str | None,
    format_: str | None,
    deployment: str | None,
    listen: int | None,
    host: str,
    mapping: tuple[tuple[str, str], ...],
    columns: str | None,
    pending: bool,
    quarantined: bool,
    limit: int | None,
    workers: int | None,
    as_json: bool,
) -> None:
    """Log decisions made elsewhere: LOCATION (a file, a folder or s3://bucket/prefix)
    read as --format, or KServe's CloudEvents received on --listen PORT; or list what
    is held: --pending, --quarantined."""
    modes = [location is not None, listen is not None, pending, quarantined]
    if sum(modes) != 1:
        raise BadInput("give one of LOCATION, --listen PORT, --pending or --quarantined")
    if pending or quarantined:
        state = "pending" if pending else "quarantined"
        emit(replay.held_events(state, limit=limit), as_json, _held)
        return
    if listen is not None:
        replay.listen(
            host=host,
            port=listen,
            deployment=deployment,
            mapping=dict(mapping),
            ready=lambda line: print(line, file=sys.stderr, flush=True),
        )
        return
    if format_ is None or deployment is None:
        raise BadInput("reading LOCATION needs --format and --deployment")

    with progress_bar("ingesting", as_json) as progress:
        counts = replay.ingest(
            str(location),
            format=format_,
            deployment=deployment,
            columns=[name.strip() for name in columns.split(",")] if columns else None,
            progress=progress,
            workers=workers,
        )
    emit(counts, as_json, _counts)


def _counts(counts: IngestCounts) -> None:
    click.echo(str(counts))


def _held(events: list[HeldEvent]) -> None:
    table(
        ["source", "source id", "held as", "received", "deployment", "reason"],
        (
            [e.source, e.source_id, e.held_as, e.received[:19], e.deployment, e.reason]
            for e in events
        ),
        whole=["source id"],
    )
