"""What is recorded of deployments: their history, a stored manifest, and a check of
every hash a manifest records."""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from replay.deployments.building import stored_files
from replay.errors import BadInput, EngineUnavailable, IntegrityError
from replay.manifests.canonical import sha256_bytes, sha256_file
from replay.manifests.manifest import Manifest, is_id_prefix
from replay.settings import Settings, load_settings
from replay.stores.blobs import open_blob_store
from replay.stores.manifests import DeploymentRecord, ManifestStore, manifest_store
from replay.stores.models import BLOB_STORE, stored_copies


def list_deployments(
    name: str | None = None, *, settings: Settings | None = None
) -> list[DeploymentRecord]:
    """Every captured manifest (of one deployment, if named), newest first."""
    return manifest_store(settings or load_settings()).history(name)


def resolve_target(target: str, settings: Settings) -> str:
    """A manifest id (or unique prefix), or a deployment name meaning its newest manifest."""
    if is_id_prefix(target):
        return manifest_store(settings).resolve(target)
    history = list_deployments(target, settings=settings)
    if not history:
        raise BadInput(f"{target!r} is neither a manifest id nor a captured deployment name")
    return history[0].manifest_id


def show_manifest(manifest_id: str, *, settings: Settings | None = None) -> Manifest:
    """The stored manifest (a unique id prefix is enough), checked to hash to its id."""
    return manifest_store(settings or load_settings()).load(manifest_id)


@dataclass(frozen=True)
class Check:
    what: str
    expected: str
    found: str

    @property
    def ok(self) -> bool:
        return self.expected == self.found


@dataclass(frozen=True)
class ManifestVerification:
    manifest_id: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def to_dict(self) -> dict[str, Any]:
        checks = [{**asdict(check), "ok": check.ok} for check in self.checks]
        return {"manifest_id": self.manifest_id, "ok": self.ok, "checks": checks}

    def raise_for_mismatch(self) -> None:
        for check in self.checks:
            if not check.ok and check.found.startswith("("):  # no copy to compare
                raise IntegrityError(
                    f"{check.what}: {check.found.strip('()')}, expected sha256 {check.expected}"
                )
            if not check.ok:
                raise IntegrityError(
                    f"{check.what}: sha256 {check.found} differs from the manifest's "
                    f"{check.expected}"
                )


def verify_manifest(manifest_id: str, *, settings: Settings | None = None) -> ManifestVerification:
    """Recompute every hash the manifest records: lock, source archive, reference, models,
    wheels and system packages; everything read from the stores again, never from this
    machine's cache."""
    settings = settings or load_settings()
    store = manifest_store(settings)
    manifest = store.load(manifest_id, fresh=True)
    checks = [Check("manifest.json", manifest.manifest_id, manifest.manifest_id)]
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        for name, expected in stored_files(manifest).items():
            path = store.artifact(manifest.manifest_id, name, folder)
            checks.append(Check(f"stored {name}", expected, sha256_file(path)))
    blobs = open_blob_store(settings.blobs)
    for item in manifest.model_files:
        places = []
        for where, path in stored_copies(manifest, item, blobs):  # lives until next()
            places.append(where)
            checks.append(
                Check(f"model file {item.path} ({where})", item.sha256, sha256_file(path))
            )
        if item.dvc is not None and not any(p.startswith("DVC remote") for p in places):
            # the copy that must outlive this machine: its absence always fails
            remote = f"DVC remote {item.dvc.remote or '(none configured)'}"
            checks.append(Check(f"model file {item.path} ({remote})", item.sha256, "(missing)"))
        elif manifest.model_source is not None and BLOB_STORE not in places:
            # a model from a registry is kept only here: the registry may delete it
            checks.append(Check(f"model file {item.path} ({BLOB_STORE})", item.sha256, "(missing)"))
        elif not places:
            checks.append(Check(f"model file {item.path}", item.sha256, "(no stored copy)"))
    checks.extend(_build_checks(store, manifest.manifest_id))
    checks.extend(_engine_checks(store, manifest.manifest_id, settings))
    for wheel in manifest.environment.wheels:
        found = (
            blobs.stored_sha256(wheel.sha256) if blobs.has(wheel.sha256) else f"(not in {blobs})"
        )
        checks.append(Check(f"wheel {wheel.filename}", wheel.sha256, found))
    for package in manifest.environment.system_packages:
        found = (
            blobs.stored_sha256(package.sha256)
            if blobs.has(package.sha256)
            else f"(not in {blobs})"
        )
        checks.append(Check(f"system package {package.filename}", package.sha256, found))
    return ManifestVerification(manifest.manifest_id, checks)


def _engine_checks(store: ManifestStore, manifest_id: str, settings: Settings) -> list[Check]:
    """The images this machine's engine holds for the manifest, if an engine answers:
    each must be one the reproducible record proves, id for id."""
    from replay.images.build import LABEL_MANIFEST
    from replay.images.engine import docker_client

    record = store.stored_build(manifest_id)
    if record is None or record.builder is None or store.build_problem(record) is not None:
        return []  # older images are held to their fingerprint; a bad record is its check
    try:
        client = docker_client(settings.docker_host, connect_timeout=settings.connect_timeout)
    except EngineUnavailable:
        return []
    labelled = client.images.list(filters={"label": f"{LABEL_MANIFEST}={manifest_id}"})
    return [
        Check(
            f"image in the engine (the record's is {record.image_id[:19]})",
            image.id,
            image.id if record.proves(image.id) else "(not proven by the signed record)",
        )
        for image in labelled
    ]


def _build_checks(store: ManifestStore, manifest_id: str) -> list[Check]:
    """The signed record of the images proven for the manifest, as the tracking store
    holds it, and this machine's copy of it (which may lag, never differ)."""
    stored = store.stored_build(manifest_id)
    if stored is None:  # never built: nothing may run for it yet
        return []
    signed = sha256_bytes(stored.statement())
    problem = store.build_problem(stored)
    checks = [Check("build record", signed, signed if problem is None else f"({problem})")]
    cached = store.cached_build(manifest_id)
    if cached is not None:
        # an older signed copy (fewer images) is only behind; a changed one is not
        behind = cached.image_ids == stored.image_ids[: len(cached.image_ids)]
        problem = store.build_problem(cached) or (None if behind else "it names other images")
        found = signed if problem is None else f"({problem})"
        checks.append(Check("build record (this machine's copy)", signed, found))
    return checks
