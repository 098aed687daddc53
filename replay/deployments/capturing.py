"""Capturing a deployment: `replay.yaml`, git, the lock, wheels, base digest and model
hashes frozen as a manifest in MLflow."""

from __future__ import annotations

import re
import sys
import tempfile
import warnings
from importlib import resources
from pathlib import Path
from typing import Any

from replay.deployments.building import store_debs, store_wheels
from replay.deployments.model_capture import prepared_model
from replay.errors import BadInput, ReplayWarning
from replay.images import base
from replay.images.engine import docker_client, engine_facts
from replay.manifests.capture import assemble_manifest, image_platforms, model_file_facts
from replay.manifests.lock import compile_lock, index_settings, lock_inputs
from replay.manifests.manifest import DvcCopy, Manifest
from replay.manifests.model_uri import looks_like_model
from replay.manifests.source import SourceState, source_state, write_source_archive
from replay.manifests.spec import DeploymentSpec, load_spec
from replay.progress import Progress, step
from replay.settings import Settings, load_settings
from replay.stores.blobs import LocalBlobStore, open_blob_store
from replay.stores.locks import Locks
from replay.stores.manifests import REFERENCE_FILE, RUNNER_FILE, SOURCE_FILE, manifest_store
from replay.stores.models import default_remote, in_remote, push_models


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


def _base_python(client: Any, base_image: str, settings: Settings) -> str:
    """The base image's `major.minor` Python, asked in a container once per base digest:
    a digest names the same bytes for ever, so the answer is kept on this machine."""
    digest = base_image.rpartition("@")[2]
    cached = settings.cache / "base-python" / digest.replace(":", "-")
    try:
        known = cached.read_text().strip()
    except OSError:
        known = ""
    if re.fullmatch(r"\d+\.\d+", known):
        return known
    python = base.python_version(client, base_image)
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_name(f".{cached.name}.partial")
    partial.write_text(python)
    partial.replace(cached)
    return python


def _wheels_stored(wheels: list[dict[str, str]], settings: Settings) -> bool:
    """Whether the blob store holds every wheel, each still hashing to its sha256 where
    that is cheap (a folder); an S3 copy is checked when a build reads it."""
    blobs = open_blob_store(settings.blobs)
    if isinstance(blobs, LocalBlobStore):
        return all(
            blobs.has(wheel["sha256"]) and blobs.stored_sha256(wheel["sha256"]) == wheel["sha256"]
            for wheel in wheels
        )
    return all(blobs.has(wheel["sha256"]) for wheel in wheels)


def _locked(
    requirements_in: Path, python: str, platforms: list[str], settings: Settings, relock: bool
) -> tuple[str, list[dict[str, str]]]:
    """The hashed lock and its wheels (in the blob store).

    Resolving takes tens of seconds: a lock stored for the same inputs (requirements
    text, Python and platforms, pip's index settings) is reused unless `relock` asks
    for a new one, and pip is not run at all when the blob store holds its wheels. A
    stored lock that does not hold is not reused: a new one replaces it, with a warning.
    """
    requirements = requirements_in.read_bytes()
    inputs = lock_inputs(requirements, platforms, index_settings())
    locks = Locks(settings)
    found, problem = None, ""
    if not relock:
        found, problem = locks.find(inputs, requirements.decode(errors="replace"))
    if problem:
        warnings.warn(f"{problem}; locking again", ReplayWarning, stacklevel=3)
    if found is None:
        with step("lock requirements (pip-compile)") as progress:
            lock_text = compile_lock(requirements_in, progress)
    else:
        with step(f"lock requirements (stored lock {inputs.key[:12]} reused)"):
            lock_text = found.lock
    if found is not None and found.wheels is not None and _wheels_stored(found.wheels, settings):
        with step(f"wheels ({len(found.wheels)} already in the blob store)"):
            wheels = found.wheels
    else:
        with step("download wheels") as progress:
            wheels = store_wheels(lock_text, python, platforms, settings, progress)
    if found is None or found.wheels != wheels:
        locks.save(inputs, lock_text, wheels)
    return lock_text, wheels


def capture(
    target: str | Path,
    *,
    allow_dirty: bool = False,
    relock: bool = False,
    push: bool = False,
    spec: str | Path | None = None,
    reference: str | Path | None = None,
    settings: Settings | None = None,
) -> Manifest:
    """Freeze a deployment as a manifest in MLflow: a folder described by its
    `replay.yaml`, or an MLflow model (`models:/NAME/VERSION`, `models:/NAME@ALIAS`,
    `runs:/RUN_ID/PATH`, a model folder) with an optional `spec` file and `reference`
    sample (see `replay.deployments.model_capture.prepared_model`).

    Every model file DVC tracks must already be in its DVC remote (`push` pushes it
    first): a manifest must never name a model no store can give back."""
    settings = settings or load_settings()
    if looks_like_model(target):
        with prepared_model(target, spec=spec, reference=reference, settings=settings) as model:
            return freeze(
                model.spec,
                model.source,
                model.model_files,
                settings=settings,
                relock=relock,
                source_files=model.source_files,
                model_source=model.model_source,
            )
    if spec is not None or reference is not None:
        raise BadInput(f"{target}: --spec and --reference are for MLflow models only")
    deployment = load_spec(target)
    source = source_state(deployment.root)
    if source.dirty and not allow_dirty:
        raise BadInput(
            f"{deployment.root} has uncommitted changes (see `git status`); commit them, "
            "or capture with allow_dirty (recorded as dirty: true)"
        )
    model_files = model_file_facts(deployment, default_remote(deployment.root))
    _check_models_stored(source, deployment.root, model_files, push)
    return freeze(deployment, source, model_files, settings=settings, relock=relock)


def freeze(
    spec: DeploymentSpec,
    source: SourceState,
    model_files: list[dict[str, Any]],
    *,
    settings: Settings,
    relock: bool = False,
    source_files: list[str] | None = None,
    model_source: dict[str, Any] | None = None,
) -> Manifest:
    """The manifest of a checked deployment: base digest, lock, wheels, source archive
    (`source_files`, else what git knows), recorded in MLflow with its files."""
    client = docker_client(settings.docker_host, connect_timeout=settings.connect_timeout)
    engine = engine_facts(client)
    with step("base image") as progress:
        requested, base_image = base_image_for(client, spec.base_image, settings, progress)
        python = _base_python(client, base_image, settings)
    host_python = f"{sys.version_info.major}.{sys.version_info.minor}"
    if python != host_python:
        raise BadInput(
            f"base image {requested} runs Python {python}, but locks are made with "
            f"Python {host_python}; choose a Python {host_python} base image"
        )
    platforms = image_platforms(engine["architecture"])
    lock_text, wheels = _locked(spec.root / spec.requirements, python, platforms, settings, relock)
    system_packages: list[dict[str, str]] = []
    if spec.system_packages:
        with step(f"system packages ({', '.join(spec.system_packages)})") as progress:
            system_packages = store_debs(
                client, base_image, spec.system_packages, settings, progress
            )
    store = manifest_store(settings)
    earlier = [r for r in store.history(spec.name) if r.version == spec.version]
    if earlier:
        warnings.warn(
            f"{spec.name} version {spec.version} was captured before (manifest "
            f"{earlier[0].manifest_id[:12]}); raise `version` in replay.yaml to tell them apart",
            ReplayWarning,
            stacklevel=2,
        )
    with tempfile.TemporaryDirectory() as scratch, step("record manifest in MLflow"):
        archive = Path(scratch) / SOURCE_FILE
        write_source_archive(spec.root, archive, source_files)
        runner = Path(scratch) / RUNNER_FILE
        runner.write_bytes(resources.files("replay.images").joinpath(RUNNER_FILE).read_bytes())
        manifest = assemble_manifest(
            spec=spec,
            source=source,
            archive=archive,
            model_files=model_files,
            lock_text=lock_text,
            python=python,
            platforms=platforms,
            wheels=wheels,
            base_image=base_image,
            requested_base=requested,
            runner=runner,
            engine=engine,
            model_source=model_source,
            system_packages=system_packages,
        )
        reference = Path(scratch) / REFERENCE_FILE
        reference.write_bytes((spec.root / spec.reference_sample).read_bytes())
        store.save(manifest, [archive, reference, runner])
    return manifest


def _check_models_stored(
    source: SourceState, root: Path, model_files: list[dict[str, Any]], push: bool
) -> None:
    """Refuse (or, with `push`, first push) DVC-tracked model files not in the remote."""
    rev = None if source.dirty else source.commit
    tracked = {item["path"]: DvcCopy(**item["dvc"]) for item in model_files if item["dvc"]}
    for path, dvc in tracked.items():
        if dvc.remote is None:
            raise BadInput(
                f"model file {path} is tracked by DVC but the repository has no default "
                "remote; add one (`dvc remote add -d NAME URL`) and push the model"
            )
    missing = [path for path, dvc in tracked.items() if not in_remote(source.toplevel, rev, dvc)]
    if missing and push:
        push_models(root, missing)
        missing = [path for path in missing if not in_remote(source.toplevel, rev, tracked[path])]
    if missing:
        dvc = tracked[missing[0]]
        raise BadInput(
            f"model file {missing[0]} is not in the DVC remote {dvc.remote} ({dvc.remote_url}): "
            "run `dvc push`, or capture with push to push it first"
        )
