"""Deployments: capture a manifest, build its image, list, show and verify.

Each public function here is one `replay` command; the CLI only formats.
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from replay.errors import BadInput, IntegrityError
from replay.images import base
from replay.images import build as image_build
from replay.images.engine import docker_client, engine_facts
from replay.images.wheelhouse import download_wheels
from replay.manifests.canonical import sha256_bytes, sha256_file
from replay.manifests.capture import assemble_manifest, image_platforms, model_file_facts
from replay.manifests.lock import compile_lock
from replay.manifests.manifest import Manifest
from replay.manifests.source import source_state, write_source_archive
from replay.manifests.spec import load_spec
from replay.progress import Progress, step
from replay.settings import Settings, load_settings
from replay.stores.blobs import open_blob_store
from replay.stores.manifests import (
    LOCK_FILE,
    REFERENCE_FILE,
    RUNNER_FILE,
    SOURCE_FILE,
    DeploymentRecord,
    ManifestStore,
    manifest_store,
)
from replay.stores.models import default_remote, fetch_model_files, stored_copies


def base_image_for(
    client: Any, requested: str | None, settings: Settings, progress: Progress
) -> tuple[str, str]:
    """(the reference asked for, its `name@sha256:…`): the deployment's `base_image`, else
    the configured one, else the offline base `replay up` makes."""
    requested = requested or settings.base_image
    if requested:
        return requested, base.resolve_digest(client, requested)
    repository = settings.default_base_repository
    default = base.default_base(client, repository, settings.cache, progress)
    return f"{repository}:{base.DEFAULT_TAG}", default


def _locked(requirements_in: Path, settings: Settings, relock: bool) -> str:
    """pip-compile's lock, cached by the exact requirements text and Python version.

    Resolving takes tens of seconds; the same requirements on the same Python give the
    cached lock back unless `relock` asks for a fresh resolution.
    """
    key = sha256_bytes(requirements_in.read_bytes() + sys.version.encode())
    cached = settings.cache / "locks" / f"{key}.txt"
    if cached.is_file() and not relock:
        return cached.read_text()
    text = compile_lock(requirements_in)
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_text(text)
    return text


def _wheels(
    manifest_lock: str, python: str, platforms: list[str], settings: Settings, progress: Progress
) -> list[dict[str, str]]:
    """Download (or reuse) the locked wheels and keep them in the blob store."""
    folder = settings.cache / "wheels" / f"cp{python.replace('.', '')}"
    wheels = download_wheels(manifest_lock, python, platforms, folder, progress)
    blobs = open_blob_store(settings.blobs)
    for wheel in wheels:
        blobs.put(folder / wheel["filename"])
    return wheels


def capture(
    path: str | Path,
    *,
    allow_dirty: bool = False,
    relock: bool = False,
    settings: Settings | None = None,
) -> Manifest:
    """Freeze the deployment described by `path/replay.yaml` as a manifest in MLflow."""
    settings = settings or load_settings()
    spec = load_spec(path)
    source = source_state(spec.root)
    if source.dirty and not allow_dirty:
        raise BadInput(
            f"{spec.root} has uncommitted changes (see `git status`); commit them, "
            "or capture with allow_dirty (recorded as dirty: true)"
        )
    client = docker_client(settings.docker_host)
    engine = engine_facts(client)
    with step("base image") as progress:
        requested, base_image = base_image_for(client, spec.base_image, settings, progress)
        python = base.python_version(client, base_image)
    host_python = f"{sys.version_info.major}.{sys.version_info.minor}"
    if python != host_python:
        raise BadInput(
            f"base image {requested} runs Python {python}, but locks are made with "
            f"Python {host_python}; choose a Python {host_python} base image"
        )
    with step("lock requirements (pip-compile)"):
        lock_text = _locked(spec.root / spec.requirements, settings, relock)
    platforms = image_platforms(engine["architecture"])
    with step("download wheels") as progress:
        wheels = _wheels(lock_text, python, platforms, settings, progress)
    store = manifest_store(settings)
    with tempfile.TemporaryDirectory() as scratch, step("record manifest in MLflow"):
        archive = Path(scratch) / SOURCE_FILE
        write_source_archive(spec.root, archive)
        runner = Path(scratch) / RUNNER_FILE
        runner.write_bytes(resources.files("replay.images").joinpath(RUNNER_FILE).read_bytes())
        manifest = assemble_manifest(
            spec=spec,
            source=source,
            archive=archive,
            model_files=model_file_facts(spec, default_remote(spec.root)),
            lock_text=lock_text,
            python=python,
            platforms=platforms,
            wheels=wheels,
            base_image=base_image,
            requested_base=requested,
            runner=runner,
            engine=engine,
        )
        reference = Path(scratch) / REFERENCE_FILE
        reference.write_bytes((spec.root / spec.reference_sample).read_bytes())
        store.save(manifest, [archive, reference, runner])
    return manifest


@dataclass(frozen=True)
class BuildResult:
    manifest_id: str
    image_id: str
    tag: str
    fingerprint_id: str
    reused: bool


def _artifact_checked(
    store: ManifestStore, manifest_id: str, name: str, expected: str, folder: Path
) -> Path:
    path = store.artifact(manifest_id, name, folder)
    found = sha256_file(path)
    if found != expected:
        raise IntegrityError(
            f"stored {name}: sha256 {found} differs from the manifest's {expected}"
        )
    return path


def _stored_files(manifest: Manifest) -> dict[str, str]:
    """The files stored with a manifest in MLflow and the sha256 each must have."""
    return {
        LOCK_FILE: manifest.environment.lock_sha256,
        SOURCE_FILE: manifest.code.archive_sha256,
        REFERENCE_FILE: manifest.reference.sha256,
        RUNNER_FILE: manifest.image.runner_sha256,
    }


def _build_context(
    manifest: Manifest, store: ManifestStore, settings: Settings, context: Path, progress: Progress
) -> None:
    """Lay out everything the Dockerfile copies, each piece checked against the manifest."""
    environment = manifest.environment
    (context / LOCK_FILE).write_text(environment.lock)
    blobs = open_blob_store(settings.blobs)
    if not all(blobs.has(wheel.sha256) for wheel in environment.wheels):
        progress("fetching wheels missing from the blob store")
        _wheels(
            environment.lock, environment.python, list(environment.platforms), settings, progress
        )
    for wheel in environment.wheels:
        blobs.get(wheel.sha256, context / "wheels" / wheel.filename)
    downloads = context.parent / "downloads"
    for name, expected in _stored_files(manifest).items():
        if name != LOCK_FILE:  # written from the manifest itself, above
            _artifact_checked(store, manifest.manifest_id, name, expected, downloads).rename(
                context / name
            )
    fetch_model_files(manifest, context / "model")


def build(manifest_id: str, *, settings: Settings | None = None) -> BuildResult:
    """The manifest's image: reused if present, else built hermetically; always proven."""
    settings = settings or load_settings()
    store = manifest_store(settings)
    manifest = store.load(manifest_id)
    client = docker_client(settings.docker_host)
    existing = image_build.find_image(client, manifest.manifest_id)
    if existing is not None:
        image_id, reused = existing.id, True
    else:
        with (
            tempfile.TemporaryDirectory() as scratch,
            step(f"build {image_build.image_tag(manifest)}") as progress,
        ):
            context = Path(scratch) / "context"
            context.mkdir()
            _build_context(manifest, store, settings, context, progress)
            image_id, reused = image_build.build_image(client, manifest, context, progress), False
    fingerprint = image_build.image_fingerprint(client, image_id)
    fingerprint_id = image_build.fingerprint_id(fingerprint)
    try:
        image_build.check_fingerprint(manifest, fingerprint)
        recorded = store.build_record(manifest.manifest_id)
        if recorded is not None and recorded.fingerprint_id != fingerprint_id:
            raise IntegrityError(
                f"image {image_id[:19]} differs from the fingerprint recorded for manifest "
                f"{manifest.short_id} ({_first_difference(recorded.fingerprint, fingerprint)})"
            )
    except IntegrityError:
        if not reused:
            client.images.remove(image_id, force=True)  # never leave an unproven image behind
        raise
    if recorded is None or recorded.image_id != image_id:
        store.attach_build(manifest.manifest_id, image_id, fingerprint, fingerprint_id)
    return BuildResult(
        manifest.manifest_id, image_id, image_build.image_tag(manifest), fingerprint_id, reused
    )


def _first_difference(expected: dict[str, Any], found: dict[str, Any], prefix: str = "") -> str:
    for key in sorted(set(expected) | set(found)):
        left, right = expected.get(key), found.get(key)
        if isinstance(left, dict) and isinstance(right, dict):
            if left != right:
                return _first_difference(left, right, f"{prefix}{key}.")
        elif left != right:
            return f"{prefix}{key}: recorded {left!r}, found {right!r}"
    return "no difference"


def list_deployments(
    name: str | None = None, *, settings: Settings | None = None
) -> list[DeploymentRecord]:
    """Every captured manifest (of one deployment, if named), newest first."""
    return manifest_store(settings or load_settings()).history(name)


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
            if not check.ok:
                raise IntegrityError(
                    f"{check.what}: sha256 {check.found} differs from the manifest's "
                    f"{check.expected}"
                )


def verify_manifest(manifest_id: str, *, settings: Settings | None = None) -> ManifestVerification:
    """Recompute every hash the manifest records: lock, source archive, reference, models."""
    settings = settings or load_settings()
    store = manifest_store(settings)
    manifest = store.load(manifest_id)
    checks = [Check("manifest.json", manifest.manifest_id, manifest.manifest_id)]
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        for name, expected in _stored_files(manifest).items():
            path = store.artifact(manifest.manifest_id, name, folder)
            checks.append(Check(f"stored {name}", expected, sha256_file(path)))
    for item in manifest.model_files:
        copies = 0
        for where, path in stored_copies(manifest, item):  # a path lives only until next()
            copies += 1
            checks.append(
                Check(f"model file {item.path} ({where})", item.sha256, sha256_file(path))
            )
        if not copies:
            checks.append(Check(f"model file {item.path}", item.sha256, "(no stored copy)"))
    blobs = open_blob_store(settings.blobs)
    for wheel in manifest.environment.wheels:
        found = (
            blobs.stored_sha256(wheel.sha256) if blobs.has(wheel.sha256) else f"(not in {blobs})"
        )
        checks.append(Check(f"wheel {wheel.filename}", wheel.sha256, found))
    return ManifestVerification(manifest.manifest_id, checks)
