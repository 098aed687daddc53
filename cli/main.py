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
    from replay.deployments.environment import up as bring_up

    environment = bring_up()
    if as_json:
        emit_json(environment.__dict__)
    else:
        click.echo(f"engine {environment.engine_version}, registry {environment.registry}")
        click.echo(f"base image {environment.base_image}")


@cli.command()
@click.argument("path", type=click.Path(file_okay=True, dir_okay=True), default=".")
@click.option("--allow-dirty", is_flag=True, help="Capture uncommitted changes (recorded).")
@click.option("--relock", is_flag=True, help="Resolve the requirements again (no cache).")
@json_option
@handles_errors
def capture(path: str, allow_dirty: bool, relock: bool, as_json: bool) -> None:
    """Freeze the deployment at PATH (its replay.yaml) as a manifest in MLflow."""
    from replay.deployments.lifecycle import capture as capture_manifest

    manifest = capture_manifest(path, allow_dirty=allow_dirty, relock=relock)
    if as_json:
        emit_json({"manifest_id": manifest.manifest_id, "manifest": manifest.document})
    else:
        click.echo(manifest.manifest_id)


@cli.command()
@click.argument("manifest_id")
@json_option
@handles_errors
def build(manifest_id: str, as_json: bool) -> None:
    """Build (or reuse) the image of a manifest and check its fingerprint."""
    from replay.deployments.lifecycle import build as build_image

    result = build_image(manifest_id)
    if as_json:
        emit_json(result.__dict__)
    else:
        how = "reused" if result.reused else "built"
        fingerprint = result.fingerprint_id[:12]
        click.echo(f"{result.tag} {result.image_id} ({how}, fingerprint {fingerprint})")


@cli.group()
def deployments() -> None:
    """Deployment history (from MLflow)."""


@deployments.command("list")
@click.argument("name", required=False)
@json_option
@handles_errors
def deployments_list(name: str | None, as_json: bool) -> None:
    """Every captured manifest, newest first (only NAME's, if given)."""
    from replay.deployments.lifecycle import list_deployments

    records = list_deployments(name)
    if as_json:
        emit_json([record.__dict__ for record in records])
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("deployment", "version", "captured", "manifest", "commit", "image")
    for record in records:
        table.add_row(
            record.name,
            record.version,
            record.created_at,
            record.manifest_id[:12],
            record.commit[:10] + (" (dirty)" if record.dirty else ""),
            (record.image_id or "not built")[:19],
        )
    Console().print(table)


@cli.group()
def manifest() -> None:
    """Inspect and verify stored manifests."""


@manifest.command("show")
@click.argument("manifest_id")
@json_option
@handles_errors
def manifest_show(manifest_id: str, as_json: bool) -> None:
    """Print a manifest (a unique prefix of its id is enough)."""
    from replay.deployments.lifecycle import show_manifest

    found = show_manifest(manifest_id)
    if as_json:
        emit_json({"manifest_id": found.manifest_id, "manifest": found.document})
        return
    from rich.console import Console
    from rich.table import Table

    document = found.document
    code, environment = document["code"], document["environment"]
    console = Console()
    console.print(f"[bold]{found.name}[/bold] {document['version']}  manifest {found.manifest_id}")
    console.print(f"captured   {document['created_at']}")
    console.print(
        f"code       {code['repository']} @ {code['commit'][:12]}"
        + (" [red](dirty)[/red]" if code["dirty"] else "")
        + f"  entrypoint {code['entrypoint']}"
    )
    console.print(f"base image {document['image']['base']}")
    console.print(f"python     {environment['python']}, {len(environment['wheels'])} locked wheels")
    for item in found.model_files:
        console.print(f"model      {item.path}  sha256 {item.sha256[:16]}…  {item.size:,} bytes")
    table = Table("input", "type", "bounds", "immutable", "monotone")
    for name, spec in document["io"]["inputs"].items():
        bounds = f"{spec.get('min', '')} … {spec.get('max', '')}" if "min" in spec else ""
        table.add_row(
            name,
            spec["type"],
            bounds,
            "yes" if spec.get("immutable") else "",
            spec.get("monotone", ""),
        )
    console.print(table)


@manifest.command("verify")
@click.argument("manifest_id")
@json_option
@handles_errors
def manifest_verify(manifest_id: str, as_json: bool) -> None:
    """Recompute every hash a manifest records; exit 4 naming the first mismatch."""
    from replay.deployments.lifecycle import verify_manifest

    report = verify_manifest(manifest_id)
    if as_json:
        emit_json(
            {
                "manifest_id": report.manifest_id,
                "ok": report.ok,
                "checks": [{**check.__dict__, "ok": check.ok} for check in report.checks],
            }
        )
    else:
        for check in report.checks:
            mark = "ok      " if check.ok else "MISMATCH"
            click.echo(f"{mark} {check.what}")
    report.raise_for_mismatch()


@cli.command()
@click.argument("manifest_id")
@json_option
@handles_errors
def publish(manifest_id: str, as_json: bool) -> None:
    """Push a manifest's image to the registry and archive it in the blob store."""
    from replay.deployments.publishing import publish as publish_image

    publication = publish_image(manifest_id)
    if as_json:
        emit_json(publication.__dict__)
    else:
        click.echo(f"registry {publication.repo_digest}")
        click.echo(
            f"archive  sha256:{publication.archive_sha256} "
            f"({publication.archive_bytes / 1e6:.0f} MB)"
        )


@cli.command()
@click.argument("target")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option(
    "--containers",
    default=2,
    show_default=True,
    type=click.IntRange(1, 32),
    help="Warm containers answering in parallel.",
)
@handles_errors
def serve(target: str, host: str, port: int, containers: int) -> None:
    """Serve decisions of TARGET (a deployment name or manifest id) over HTTP, logging each."""
    from replay.web.serving import serve as run_server

    run_server(target, host=host, port=port, containers=containers)


def _print_replay(result) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(soft_wrap=True)  # one verdict line, even when piped
    colour = {"reproduced": "green", "diverged": "yellow", "failed": "red"}[result.verdict]
    console.print(
        f"[bold {colour}]{result.verdict}[/]  {result.txn_id}  "
        f"manifest {result.manifest_id[:12]}  image: {result.recovery}  "
        f"({result.seconds:.2f} s)"
    )
    if result.error:
        console.print(f"  {result.error}")
    if result.differences:
        table = Table("field", "logged", "replayed", "abs diff", "ULPs")
        for diff in result.differences:
            table.add_row(
                diff.field,
                repr(diff.logged),
                repr(diff.replayed),
                "" if diff.absolute is None else f"{diff.absolute:.3g}",
                "" if diff.ulps is None else str(diff.ulps),
            )
        console.print(table)
    if result.record_txn:
        console.print(f"  [dim]recorded as {result.record_txn}[/dim]")


@cli.command("replay")
@click.argument("txn_id", required=False)
@click.option("--all", "replay_all", is_flag=True, help="Replay every decision (filtered).")
@click.option("--deployment", help="With --all: only this deployment's decisions.")
@click.option("--since", help="With --all: only decisions at or after this ISO date/time.")
@json_option
@handles_errors
def replay_command(
    txn_id: str | None, replay_all: bool, deployment: str | None, since: str | None, as_json: bool
) -> None:
    """Re-execute a logged decision in its original container; compare bit for bit.

    Exit 0 when reproduced, 1 when diverged or failed.
    """
    from replay.errors import BadInput, VerificationFailed

    if bool(txn_id) == replay_all:
        raise BadInput("give one transaction id, or --all (with --deployment/--since)")
    if not replay_all:
        from replay.execution.reexecution import replay

        result = replay(txn_id)
        if as_json:
            emit_json(result.to_dict())
        else:
            _print_replay(result)
        if not result.reproduced:
            sys.exit(1)
        return
    from rich.progress import Progress

    from replay.execution.reexecution import replay_many

    with Progress(transient=True, disable=as_json) as bar:
        task = bar.add_task("replaying", total=None)
        summary = replay_many(
            deployment=deployment,
            since=since,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    if as_json:
        emit_json({"counts": summary.counts, "results": [r.to_dict() for r in summary.results]})
    else:
        for result in summary.results:
            if not result.reproduced:
                _print_replay(result)
        counts = summary.counts
        click.echo(
            f"{len(summary.results)} replayed: {counts['reproduced']} reproduced, "
            f"{counts['diverged']} diverged, {counts['failed']} failed"
        )
    if not summary.all_reproduced:
        raise VerificationFailed(
            f"{len(summary.results) - summary.counts['reproduced']} decisions did not reproduce"
        )


@cli.command()
@click.argument("txn_id")
@click.option(
    "--set",
    "assignments",
    multiple=True,
    required=True,
    metavar="NAME=VALUE",
    help="An edited input; repeat for several.",
)
@json_option
@handles_errors
def whatif(txn_id: str, assignments: tuple[str, ...], as_json: bool) -> None:
    """Re-run a logged decision with edited inputs, in its original container."""
    from replay.questions.what_if import whatif as ask

    answer = ask(txn_id, list(assignments))
    if as_json:
        emit_json(answer.to_dict())
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("", "original (logged)", "what if", title=f"what if: {txn_id}")
    for name, (old, new) in answer.changed.items():
        table.add_row(
            name,
            f"{old:,}" if isinstance(old, float | int) else str(old),
            f"[bold]{new:,}[/bold]" if isinstance(new, float | int) else str(new),
        )
    table.add_section()
    decision, score = answer.decision_field, answer.score_field
    for field in (decision, score):
        old, new = answer.original_outputs[field], answer.modified_outputs[field]
        text = f"{new:.4f}" if isinstance(new, float) else str(new)
        changed = field == decision and answer.decision_changed
        table.add_row(
            field,
            f"{old:.4f}" if isinstance(old, float) else str(old),
            f"[bold yellow]{text}[/bold yellow]" if changed else text,
        )
    Console(soft_wrap=True).print(table)


@cli.command()
@click.argument("txn_id")
@click.option(
    "--vary",
    multiple=True,
    required=True,
    metavar="NAME=START:STOP:COUNT",
    help="A feature and its grid; once for 1-D, twice for 2-D.",
)
@click.option("--out", type=click.Path(dir_okay=False), help="Write the grid (.csv/.parquet).")
@click.option("--plot", type=click.Path(dir_okay=False), help="Write a PNG plot.")
@json_option
@handles_errors
def sweep(
    txn_id: str, vary: tuple[str, ...], out: str | None, plot: str | None, as_json: bool
) -> None:
    """How a logged decision responds as one or two features vary (original container)."""
    from replay.questions.sweeps import sweep as run_sweep

    result = run_sweep(txn_id, list(vary))
    if out:
        result.save(out)
    if plot:
        result.plot(plot)
    if as_json:
        emit_json(
            {
                "txn_id": result.txn_id,
                "features": result.features,
                "rows": result.frame.to_dict(orient="records"),
            }
        )
        return
    from rich.console import Console
    from rich.table import Table

    frame, decision, score = result.frame, result.decision_field, result.score_field
    every = 1 if len(frame) <= 60 else max(len(frame) // 30, 1)
    shown = frame.iloc[::every]
    title = f"sweep of {txn_id}: {len(frame):,} variants"
    table = Table(
        *result.features,
        decision,
        score,
        title=title + (f", every {every}th shown" if every > 1 else ""),
    )
    for _, row in shown.iterrows():
        table.add_row(
            *[f"{row[f]:,.6g}" for f in result.features], str(row[decision]), f"{row[score]:.4f}"
        )
    console = Console(soft_wrap=True)
    console.print(table)
    if len(result.features) == 1:
        (feature,) = result.features
        for _, row in result.changes.iterrows():
            console.print(
                f"decision becomes [bold]{row[decision]}[/bold] at {feature} = {row[feature]:,.6g}"
            )
    for label, path in (("grid", out), ("plot", plot)):
        if path:
            console.print(f"{label} written to {path}")


@cli.command()
@click.argument("txn_id")
@click.option(
    "-n",
    "count",
    default=3,
    show_default=True,
    type=click.IntRange(1, 20),
    help="How many different options to find.",
)
@json_option
@handles_errors
def counterfactual(txn_id: str, count: int, as_json: bool) -> None:
    """The smallest realistic changes that would have flipped a logged decision."""
    from replay.questions.counterfactuals import counterfactual as search

    found = search(txn_id, n=count)
    if as_json:
        emit_json(
            {
                "txn_id": found.txn_id,
                "decision": found.decision,
                "evaluated": found.evaluated,
                "options": [
                    {**option.__dict__, "changes": {k: list(v) for k, v in option.changes.items()}}
                    for option in found.options
                ],
            }
        )
        return
    click.echo(
        f"{txn_id} was {found.decision}; {len(found.options)} verified option(s) "
        f"({found.evaluated:,} variants run in the original container):"
    )
    for number, option in enumerate(found.options, 1):
        click.echo(f"  {number}. {option.description}")
    if not found.options:
        click.echo("  no change within the features' bounds flips this decision")


@cli.command()
@click.argument("txn_id")
@click.option(
    "--reference-rows",
    default=50,
    show_default=True,
    type=click.IntRange(1, 10_000),
    help="Rows of the manifest's reference sample to average over.",
)
@json_option
@handles_errors
def explain(txn_id: str, reference_rows: int, as_json: bool) -> None:
    """Reason codes for a logged decision: each feature's contribution to its score."""
    from replay.questions.explanations import explain as reasons_for

    result = reasons_for(txn_id, reference_rows=reference_rows)
    if as_json:
        emit_json(
            {
                **result.__dict__,
                "contributions": [c.__dict__ for c in result.contributions],
                "reasons": result.reasons(),
            }
        )
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(soft_wrap=True)
    console.print(
        f"[bold]{result.decision}[/bold]  {txn_id}: score {result.score:.4f}, "
        f"reference mean {result.base_score:.4f} ({result.method}, "
        f"{result.reference_rows} reference rows)"
    )
    table = Table("feature", "value", "typical", "contribution")
    for item in result.contributions:
        colour = "red" if item.contribution < 0 else "green"
        typical = "" if item.reference_mean is None else f"{item.reference_mean:,.6g}"
        table.add_row(
            item.feature,
            f"{item.value:,}" if not isinstance(item.value, str) else item.value,
            typical,
            f"[{colour}]{item.contribution:+.4f}[/{colour}]",
        )
    console.print(table)
    if not result.favourable and result.reasons():
        console.print("[bold]Main reasons[/bold]")
        for number, reason in enumerate(result.reasons(), 1):
            console.print(f"  {number}. {reason}")
    console.print(
        f"features the model was given: {', '.join(result.features)}"
        + (f"; no effect here: {', '.join(result.unused)}" if result.unused else "")
    )


@cli.group()
def ledger() -> None:
    """The decision ledger."""


@ledger.command("show")
@click.argument("txn_id")
@json_option
@handles_errors
def ledger_show(txn_id: str, as_json: bool) -> None:
    """One ledger entry."""
    from replay.ledger.decisions import show_transaction

    entry = show_transaction(txn_id).to_dict()
    if as_json:
        emit_json(entry)
        return
    for key, value in entry.items():
        text = json.dumps(value, sort_keys=True) if isinstance(value, dict) else value
        click.echo(f"{key:12} {text}")


@ledger.command("list")
@click.option("--deployment")
@click.option("--since", help="ISO date or time (UTC).")
@click.option("--subject", help="The person's identifier (matched by its pseudonym).")
@click.option(
    "--kind",
    type=click.Choice(["decision", "replay", "review", "all"]),
    default="decision",
    show_default=True,
)
@click.option("--limit", type=int)
@json_option
@handles_errors
def ledger_list(
    deployment: str | None,
    since: str | None,
    subject: str | None,
    kind: str,
    limit: int | None,
    as_json: bool,
) -> None:
    """Ledger entries, oldest first."""
    from replay.ledger.decisions import list_transactions

    entries = list_transactions(
        deployment=deployment,
        since=since,
        subject=subject,
        kind=None if kind == "all" else kind,
        limit=limit,
    )
    if as_json:
        emit_json([entry.to_dict() for entry in entries])
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("seq")
    table.add_column("transaction", no_wrap=True)  # ids are for copying: never cut
    for column in ("kind", "deployment", "time (UTC)", "outcome"):
        table.add_column(column)
    for entry in entries:
        outputs = entry.output_values
        outcome = outputs.get("verdict") or outputs.get("decision") or entry.outputs[:40]
        table.add_row(
            str(entry.seq),
            entry.txn_id,
            entry.kind,
            entry.deployment,
            entry.time[:19].replace("T", " "),
            str(outcome),
        )
    Console().print(table)


@ledger.command("verify")
@json_option
@handles_errors
def ledger_verify(as_json: bool) -> None:
    """Walk the hash chain; exit 4 naming the first entry that does not hold."""
    from replay.ledger.decisions import verify_ledger

    report = verify_ledger()
    if as_json:
        emit_json(
            {
                "entries": report.entries,
                "ok": report.ok,
                "first_bad": report.first_bad,
                "reason": report.reason,
            }
        )
    report.raise_for_mismatch()
    if not as_json:
        click.echo(f"ok: {report.entries} entries, chain intact")


def main() -> None:
    cli()
