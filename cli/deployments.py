"""`replay up`, `capture`, `build`, `publish`, `deployments list`, `manifest show|verify`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click
from replay.cli.output import console, emit, json_option, table

import replay
from replay.display import format_value
from replay.settings import load_settings, without_password

if TYPE_CHECKING:  # result types; the functions come through `replay`'s lazy names
    from replay.manifests.manifest import Manifest

    from replay.deployments.building import BuildResult
    from replay.deployments.environment import HostEnvironment
    from replay.deployments.history import ManifestVerification
    from replay.deployments.publishing import Publication
    from replay.stores.manifests import DeploymentRecord


@click.command()
@json_option
def up(as_json: bool) -> None:
    """Start (or reuse) the Docker engine, local registry and base image."""

    def show(environment: HostEnvironment) -> None:
        click.echo(
            f"engine {environment.engine_version}, {environment.builder}, "
            f"registry {environment.registry}"
        )
        click.echo(f"base image {environment.base_image}")
        click.echo(f"state folder {environment.home}")

    emit(replay.up(), as_json, show)


@click.command()
@click.argument("target", default=".")
@click.option("--allow-dirty", is_flag=True, help="Capture uncommitted changes (recorded).")
@click.option(
    "--relock", is_flag=True, help="Resolve the requirements again, replacing the stored lock."
)
@click.option("--push", is_flag=True, help="`dvc push` model files the remote lacks first.")
@click.option(
    "--spec",
    type=click.Path(dir_okay=False),
    help="For an MLflow model: what its signature cannot say (replay.yaml's keys).",
)
@click.option(
    "--reference",
    type=click.Path(dir_okay=False),
    help="For an MLflow model: a CSV of realistic inputs (else its input example).",
)
@json_option
def capture(
    target: str,
    allow_dirty: bool,
    relock: bool,
    push: bool,
    spec: str | None,
    reference: str | None,
    as_json: bool,
) -> None:
    """Freeze a deployment as a manifest in MLflow: the folder TARGET (its replay.yaml),
    or an MLflow model (models:/NAME/VERSION, models:/NAME@ALIAS, runs:/RUN_ID/PATH, or
    a model folder)."""
    manifest = replay.capture(
        target,
        allow_dirty=allow_dirty,
        relock=relock,
        push=push,
        spec=spec,
        reference=reference,
    )
    emit(manifest, as_json, lambda found: click.echo(found.manifest_id))


@click.command()
@click.argument("manifest_id")
@click.option(
    "--rebuild",
    is_flag=True,
    help="Build afresh, its environment too, even where a copy exists; say whether the "
    "image is identical to the recorded one.",
)
@json_option
def build(manifest_id: str, rebuild: bool, as_json: bool) -> None:
    """Build (or reuse) the image of a manifest and check its fingerprint."""

    def show(result: BuildResult) -> None:
        how = "reused" if result.reused else "built"
        click.echo(
            f"{result.tag} {result.image_id} ({how}, fingerprint {result.fingerprint_id[:12]})"
        )
        if result.identical is not None:
            click.echo(
                "identical to the recorded image"
                if result.identical
                else "differs from the recorded image (built before images were reproducible)"
            )

    emit(replay.build(manifest_id, rebuild=rebuild), as_json, show)


@click.command()
@click.argument("manifest_id")
@json_option
def publish(manifest_id: str, as_json: bool) -> None:
    """Push a manifest's image to the registry and archive it in the blob store."""

    def show(publication: Publication) -> None:
        click.echo(f"registry {publication.repo_digest}")
        megabytes = publication.archive_bytes / 1e6
        click.echo(f"archive  sha256:{publication.archive_sha256} ({megabytes:.0f} MB)")

    emit(replay.publish(manifest_id), as_json, show)


deployments = click.Group("deployments", help="Deployment history (from MLflow).")


@deployments.command("list")
@click.argument("name", required=False)
@json_option
def deployments_list(name: str | None, as_json: bool) -> None:
    """Every captured manifest, newest first (only NAME's, if given)."""

    def show(records: list[DeploymentRecord]) -> None:
        if not records:
            where = without_password(load_settings().tracking_uri)
            click.echo(f"no deployment{f' named {name}' if name else ''} captured in {where}")
            return
        table(
            ("deployment", "version", "captured", "manifest", "commit", "image"),
            (
                (
                    record.name,
                    record.version,
                    record.created_at,
                    record.manifest_id[:12],
                    record.commit[:10] + (" (dirty)" if record.dirty else ""),
                    _image_column(record),
                )
                for record in records
            ),
        )

    emit(replay.list_deployments(name), as_json, show)


def _image_column(record: DeploymentRecord) -> str:
    """The image, `not built`, or `failed: REASON` (the latest build's one line)."""
    if record.build_failure is not None:
        return f"failed: {record.build_failure}"
    return (record.image_id or "not built")[:19]


manifest = click.Group("manifest", help="Inspect and verify stored manifests.")


@manifest.command("show")
@click.argument("manifest_id")
@json_option
def manifest_show(manifest_id: str, as_json: bool) -> None:
    """Print a manifest (a unique prefix of its id is enough)."""
    emit(replay.show_manifest(manifest_id), as_json, _show_manifest)


def _show_manifest(found: Manifest) -> None:
    out, code = console(), found.code
    out.print(f"[bold]{found.name}[/bold] {found.version}  manifest {found.manifest_id}")
    out.print(f"captured   {found.created_at}")
    source = found.model_source
    if source is None:
        out.print(
            f"code       {code.repository} @ {(code.commit or '')[:12]}"
            + (" [red](dirty)[/red]" if code.dirty else "")
            + f"  entrypoint {code.entrypoint}"
        )
    else:
        origin = [f"version {source.version}"] if source.version else []
        origin += [f"run {source.run_id}"] if source.run_id else []
        out.print(f"model      {source.uri} ({', '.join(origin + list(source.flavours))})")
        if source.rule is not None:
            rule = source.rule
            out.print(
                f"rule       {rule['decision']} = {rule['at_or_above']} if {rule['score']} "
                f">= {rule['threshold']}, else {rule['below']}"
            )
    out.print(f"base image {found.image.base}")
    environment = found.environment
    out.print(f"python     {environment.python}, {len(environment.wheels)} locked wheels")
    if environment.system_packages:
        debs = ", ".join(f"{p.name} {p.version}" for p in environment.system_packages)
        out.print(f"debian     {debs}")
    out.print(f"seed       {found.runtime.seed}, threads {found.runtime.threads}")
    for item in found.model_files:
        out.print(f"model      {item.path}  sha256 {item.sha256[:16]}…  {item.size:,} bytes")
    table(
        ("input", "type", "values", "unit", "immutable", "monotone"),
        (
            (
                feature.name,
                feature.type,
                _allowed(feature.min, feature.max, feature.values),
                feature.unit or "",
                "yes" if feature.immutable else "",
                feature.monotone or "",
            )
            for feature in found.schema.inputs.values()
        ),
    )


def _allowed(low: float | None, high: float | None, values: tuple[str, ...] | None) -> str:
    if values is not None:
        return ", ".join(values)
    if low is None and high is None:
        return ""
    return (
        f"{'' if low is None else format_value(low)} … {'' if high is None else format_value(high)}"
    )


@manifest.command("verify")
@click.argument("manifest_id")
@json_option
def manifest_verify(manifest_id: str, as_json: bool) -> None:
    """Recompute every hash a manifest records; exit 4 naming the first mismatch."""

    def show(report: ManifestVerification) -> None:
        for check in report.checks:
            click.echo(f"{'ok      ' if check.ok else 'MISMATCH'} {check.what}")

    report = replay.verify_manifest(manifest_id)
    emit(report, as_json, show)
    report.raise_for_mismatch()
