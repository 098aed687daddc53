"""Capturing a deployment: `replay.yaml`, git, the lock, wheels, base digest and model
hashes frozen as a manifest in MLflow."""

from __future__ import annotations

import sys
import tempfile
import warnings
from importlib import resources
from pathlib import Path
from typing import Any

from replay.deployments.building import store_debs, store_wheels
from replay.errors import BadInput, ReplayWarning
from replay.images import base
from replay.images.engine import docker_client, engine_facts
from replay.manifests.canonical import sha256_bytes
from replay.manifests.capture import assemble_manifest, image_platforms, model_file_facts
from replay.manifests.lock import compile_lock
from replay.manifests.manifest import DvcCopy, Manifest
from replay.manifests.source import SourceState, source_state, write_source_archive
from replay.manifests.spec import load_spec
from replay.progress import Progress, step
from replay.settings import Settings, load_settings
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


def capture(
    path: str | Path,
    *,
    allow_dirty: bool = False,
    relock: bool = False,
    push: bool = False,
    settings: Settings | None = None,
) -> Manifest:
    """Freeze the deployment described by `path/replay.yaml` as a manifest in MLflow.

    Every model file DVC tracks must already be in its DVC remote (`push` pushes it
    first): a manifest must never name a model no store can give back."""
    settings = settings or load_settings()
    spec = load_spec(path)
    source = source_state(spec.root)
    if source.dirty and not allow_dirty:
        raise BadInput(
            f"{spec.root} has uncommitted changes (see `git status`); commit them, "
            "or capture with allow_dirty (recorded as dirty: true)"
        )
    model_files = model_file_facts(spec, default_remote(spec.root))
    _check_models_stored(source, spec.root, model_files, push)
    client = docker_client(settings.docker_host, connect_timeout=settings.connect_timeout)
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
        wheels = store_wheels(lock_text, python, platforms, settings, progress)
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
        write_source_archive(spec.root, archive)
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
