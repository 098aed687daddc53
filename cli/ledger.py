"""`replay ledger show|list|export|verify|checkpoint`, and `replay review`."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import click
from replay.cli.output import emit, json_option, table
from replay.cli.params import Moment, period_options

import replay
from replay.errors import Erased
from replay.history.export import FORMATS
from replay.ledger import open_ledger
from replay.ledger.chain import KINDS, LedgerEntry, LedgerVerification
from replay.ledger.checkpoints import Checkpoint
from replay.ledger.reviews import OUTCOMES, Review

ledger = click.Group("ledger", help="The decision ledger.")


@ledger.command("show")
@click.argument("txn_id")
@json_option
def ledger_show(txn_id: str, as_json: bool) -> None:
    """One ledger entry."""

    def show(entry: LedgerEntry) -> None:
        for key, value in entry.to_dict().items():
            if key == "reviews":
                continue
            text = json.dumps(value, sort_keys=True) if isinstance(value, dict) else value
            click.echo(f"{key:12} {text}")
        for review in entry.reviews:
            try:
                said = Review.from_entry(review)
                click.echo(f"{'review':12} {said.summary} ({said.by}): {said.note}")
            except Erased:
                click.echo(f"{'review':12} reviewed by a person on {review.time[:10]} (erased)")

    emit(replay.show_transaction(txn_id), as_json, show)


@ledger.command("list")
@click.option("--deployment")
@click.option("--since", type=Moment(), help="ISO date or time (UTC unless a zone is given).")
@click.option("--subject", help="The person's identifier (matched by its pseudonym).")
@click.option("--kind", type=click.Choice([*KINDS, "all"]), default="decision", show_default=True)
@click.option("--limit", type=click.IntRange(min=1))
@json_option
def ledger_list(
    deployment: str | None,
    since: datetime | None,
    subject: str | None,
    kind: str,
    limit: int | None,
    as_json: bool,
) -> None:
    """Ledger entries, oldest first."""
    entries = replay.list_transactions(
        deployment=deployment,
        since=since,
        subject=subject,
        kind=None if kind == "all" else kind,
        limit=limit,
    )
    emit(entries, as_json, _show_entries)


def _show_entries(entries: list[LedgerEntry]) -> None:
    if not entries:
        click.echo(f"no entries like these in the ledger {open_ledger()}")
        return
    table(
        ("seq", "transaction", "kind", "deployment", "time (UTC)", "outcome"),
        (
            (
                entry.seq,
                entry.txn_id,
                entry.kind,
                entry.deployment,
                entry.time[:19].replace("T", " "),
                entry.outcome,
            )
            for entry in entries
        ),
        whole=("transaction",),
    )


@ledger.command("export")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--format", "format_", type=click.Choice(FORMATS), default="parquet", show_default=True
)
@click.option("--deployment")
@period_options
@json_option
def ledger_export(
    out: Path,
    format_: str,
    deployment: str | None,
    since: datetime | None,
    until: datetime | None,
    as_json: bool,
) -> None:
    """Write the logged decisions to OUT (Parquet or CSV), inputs and outputs as typed
    columns, subjects as pseudonyms; read in chunks, so any size fits in memory."""
    made = replay.export_ledger(
        out, format=format_, deployment=deployment, since=since, until=until
    )
    emit(
        made,
        as_json,
        lambda e: click.echo(
            f"{e.decisions:,} decisions written to {e.path} ({e.format}, "
            f"{len(e.columns)} columns"
            + (f"; {e.erased:,} erased, without inputs" if e.erased else "")
            + ")"
        ),
    )


@ledger.command("verify")
@json_option
def ledger_verify(as_json: bool) -> None:
    """Walk the hash chain and check it against every signed checkpoint; exit 4 naming
    the first entry that does not hold (changed, cut off or rewritten)."""
    report = replay.verify_ledger()

    def show(result: LedgerVerification) -> None:
        if result.ok:
            click.echo(
                f"ok: {result.entries} entries, chain intact, "
                f"{result.checkpoints} signed checkpoint(s) hold"
            )

    emit(report, as_json, show)
    report.raise_for_mismatch()


@ledger.command("checkpoint")
@json_option
def ledger_checkpoint(as_json: bool) -> None:
    """Sign the ledger's head (count, hash, time) and keep it in the checkpoint store."""
    checkpoint = replay.checkpoint_ledger()

    def show(result: Checkpoint | None) -> None:
        if result is None:
            click.echo("the ledger is empty: nothing to checkpoint")
        else:
            click.echo(f"checkpoint: {result.count} entries, head {result.head_hash[:16]}")

    emit(checkpoint, as_json, show)


@click.command("review")
@click.argument("txn_id")
@click.option("--outcome", type=click.Choice(OUTCOMES), required=True)
@click.option("--decision", help="The decision that replaces it (with --outcome overturned).")
@click.option("--note", required=True, help="The reviewer's reasons.")
@json_option
def review(txn_id: str, outcome: str, decision: str | None, note: str, as_json: bool) -> None:
    """Record a person's review of a decision, beside it in the ledger."""

    def show(result: Review) -> None:
        click.echo(f"{result.summary} (recorded as {result.txn_id})")

    emit(replay.review_decision(txn_id, outcome, note, decision=decision), as_json, show)
