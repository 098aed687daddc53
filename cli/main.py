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
    from replay.environment import up as bring_up

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
    from replay.deployments import capture as capture_manifest

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
    from replay.deployments import build as build_image

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
    from replay.deployments import list_deployments

    records = list_deployments(name)
    if as_json:
        emit_json([record.__dict__ for record in records])
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("deployment", "version", "captured", "manifest", "commit", "image")
    for record in records:
        table.add_row(
            record.name, record.version, record.created_at, record.manifest_id[:12],
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
    from replay.deployments import show_manifest

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
    console.print(f"code       {code['repository']} @ {code['commit'][:12]}"
                  + (" [red](dirty)[/red]" if code["dirty"] else "")
                  + f"  entrypoint {code['entrypoint']}")
    console.print(f"base image {document['image']['base']}")
    console.print(f"python     {environment['python']}, {len(environment['wheels'])} locked wheels")
    for item in found.model_files:
        console.print(f"model      {item.path}  sha256 {item.sha256[:16]}…  {item.size:,} bytes")
    table = Table("input", "type", "bounds", "immutable", "monotone")
    for name, spec in document["io"]["inputs"].items():
        bounds = f"{spec.get('min', '')} … {spec.get('max', '')}" if "min" in spec else ""
        table.add_row(name, spec["type"], bounds, "yes" if spec.get("immutable") else "",
                      spec.get("monotone", ""))
    console.print(table)


@manifest.command("verify")
@click.argument("manifest_id")
@json_option
@handles_errors
def manifest_verify(manifest_id: str, as_json: bool) -> None:
    """Recompute every hash a manifest records; exit 4 naming the first mismatch."""
    from replay.deployments import verify_manifest

    report = verify_manifest(manifest_id)
    if as_json:
        emit_json({"manifest_id": report.manifest_id, "ok": report.ok,
                   "checks": [{**check.__dict__, "ok": check.ok} for check in report.checks]})
    else:
        for check in report.checks:
            mark = "ok      " if check.ok else "MISMATCH"
            click.echo(f"{mark} {check.what}")
    report.raise_for_mismatch()


def main() -> None:
    cli()
