"""Building a manifest's image: its build context laid out from the stores, each piece
checked against the manifest, a reproducible build with the network off, and the proof
(fingerprint, image id) recorded."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from replay.errors import BadInput, IntegrityError, ReplayError, one_line
from replay.execution.predictor import batch_difference
from replay.images import build as image_build
from replay.images.buildah import Buildah
from replay.images.container import DeploymentFailed, RunnerContainer, Sandbox
from replay.images.debian import fetch_debs
from replay.images.engine import docker_client
from replay.images.inspection import unstarted_refusal
from replay.images.wheelhouse import download_wheels
from replay.manifests.canonical import sha256_file
from replay.manifests.manifest import Manifest, SystemPackage
from replay.progress import Progress, step
from replay.settings import Settings, load_settings, without_password
from replay.stores.blobs import BlobStore, open_blob_store
from replay.stores.manifests import (
    LOCK_FILE,
    REFERENCE_FILE,
    RUNNER_FILE,
    SOURCE_FILE,
    BuildRecord,
    ManifestStore,
    manifest_store,
)
from replay.stores.models import fetch_model_files

BATCH_CHECK_TIMEOUT = 300.0  # seconds for the whole reference sample, alone or batched


def store_wheels(
    manifest_lock: str, python: str, platforms: list[str], settings: Settings, progress: Progress
) -> list[dict[str, str]]:
    """Download (or reuse) the locked wheels and keep them in the blob store."""
    folder = settings.cache / "wheels" / f"cp{python.replace('.', '')}"
    wheels = download_wheels(manifest_lock, python, platforms, folder, progress)
    blobs = open_blob_store(settings.blobs)
    for wheel in wheels:
        blobs.put(folder / wheel["filename"])
    return wheels


def debs_cache(settings: Settings) -> Path:
    """Where downloaded .deb files (and apt's indexes) are kept on this machine."""
    return settings.cache / "debs"


def store_debs(
    client: Any,
    base_image: str,
    packages: tuple[str, ...],
    settings: Settings,
    progress: Progress,
) -> list[dict[str, str]]:
    """Download (or reuse) the Debian packages for the base image's release and keep
    them in the blob store, as wheels are kept."""
    debs = fetch_debs(client, base_image, packages, debs_cache(settings), progress)
    blobs = open_blob_store(settings.blobs)
    for deb in debs:
        blobs.put(debs_cache(settings) / "archives" / deb["filename"])
    return debs


def _deb_checked(
    package: SystemPackage, blobs: BlobStore, settings: Settings, destination: Path
) -> None:
    """A system package's .deb from the blob store (else this machine's cache, which
    then refills the store), refused unless it has the manifest's sha256."""
    if not blobs.has(package.sha256):
        cached = debs_cache(settings) / "archives" / package.filename
        if not cached.is_file() or sha256_file(cached) != package.sha256:
            raise IntegrityError(
                f"system package {package.filename} (sha256 {package.sha256[:12]}) is not "
                f"in the blob store {blobs}; capture the deployment again to fetch it"
            )
        blobs.put(cached)
    try:
        blobs.get(package.sha256, destination)
    except IntegrityError as problem:
        raise IntegrityError(
            f"system package {package.filename} in the blob store differs from the "
            f"manifest's sha256 {package.sha256[:12]} ({problem})"
        ) from None


@dataclass(frozen=True)
class BuildResult:
    manifest_id: str
    image_id: str
    tag: str
    fingerprint_id: str
    reused: bool
    repo_digest: str | None = None  # where the registry keeps the image
    # a build's image id equals the one recorded before (None: nothing was recorded,
    # or the image was reused rather than built)
    identical: bool | None = None


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


def stored_files(manifest: Manifest) -> dict[str, str]:
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
    """Lay out everything the Containerfiles copy, each piece checked against the manifest."""
    environment = manifest.environment
    (context / LOCK_FILE).write_text(environment.lock)
    blobs = open_blob_store(settings.blobs)
    if not all(blobs.has(wheel.sha256) for wheel in environment.wheels):
        progress("fetching wheels missing from the blob store")
        store_wheels(
            environment.lock, environment.python, list(environment.platforms), settings, progress
        )
    for wheel in environment.wheels:
        blobs.get(wheel.sha256, context / "wheels" / wheel.filename)
    for package in environment.system_packages:
        _deb_checked(package, blobs, settings, context / image_build.DEBS_FOLDER / package.filename)
    downloads = context.parent / "downloads"
    for name, expected in stored_files(manifest).items():
        if name != LOCK_FILE:  # written from the manifest itself, above
            _artifact_checked(store, manifest.manifest_id, name, expected, downloads).rename(
                context / name
            )
    fetch_model_files(manifest, context / "model", blobs)


def build(
    manifest_id: str, *, settings: Settings | None = None, rebuild: bool = False
) -> BuildResult:
    """The manifest's image: reused if present (unless `rebuild`), else built from the
    manifest, its environment image too with `rebuild`; always proven. An image built
    again must have the id recorded for the manifest (where its builder is recorded)."""
    settings = settings or load_settings()
    store = manifest_store(settings)
    manifest = store.load(manifest_id)
    client = docker_client(settings.docker_host, connect_timeout=settings.connect_timeout)
    with _alone(settings, manifest):
        return _found_or_built(client, manifest, store, settings, rebuild)


@contextlib.contextmanager
def _alone(settings: Settings, manifest: Manifest) -> Iterator[None]:
    """This machine's builds of one manifest, one at a time (Dask's workers may recover
    the same image at once): they share the builder's tag for it, and a build that
    waited finds the image the other one made."""
    from filelock import FileLock, Timeout

    folder = settings.cache / "builds"
    folder.mkdir(parents=True, exist_ok=True)
    # one lock object a path in a process: a thread already holding it takes it again
    lock = FileLock(folder / f"{manifest.manifest_id}.lock", is_singleton=True)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        with step(f"waiting for another build of {image_build.image_tag(manifest)}"):
            lock.acquire()
    try:
        yield
    finally:
        lock.release()


def _found_or_built(
    client: Any, manifest: Manifest, store: ManifestStore, settings: Settings, rebuild: bool
) -> BuildResult:
    existing = None if rebuild else image_build.find_image(client, manifest.manifest_id)
    recorded = store.build_record(manifest.manifest_id)
    if existing is not None:
        image_id = existing.id
        # an image found under the manifest's label is trusted only if it was proven,
        # and is refused before anything in it runs (its fingerprint too)
        why = unstarted_refusal(
            client,
            image_id,
            manifest=manifest,
            proven=recorded is not None and recorded.proves(image_id),
            fingerprint=recorded.fingerprint if recorded else None,
        )
        if why is not None:
            raise IntegrityError(
                f"local image {image_id[:19]} carries manifest {manifest.short_id}'s label "
                f"but {why}; refused before anything in it ran (remove it with docker "
                "rmi to build or recover the recorded one)"
            )
        fingerprint_id = _prove(client, manifest, image_id, recorded, store)
        return BuildResult(
            manifest.manifest_id,
            image_id,
            image_build.image_tag(manifest),
            fingerprint_id,
            True,
            recorded.repo_digest if recorded else None,
        )
    built, fingerprint_id = _build_and_prove(
        client, manifest, recorded, store, settings, fresh=rebuild
    )
    return BuildResult(
        manifest.manifest_id,
        built.image_id,
        image_build.image_tag(manifest),
        fingerprint_id,
        False,
        built.repo_digest,
        None if recorded is None else recorded.image_id == built.image_id,
    )


def _identical(recorded: BuildRecord | None) -> Callable[[str, str], None]:
    """What refuses, before it leaves the builder, an image whose id is not the one
    recorded for a reproducible build."""

    def check(image_id: str, builder: str) -> None:
        if recorded is None or recorded.builder is None or recorded.image_id == image_id:
            return
        same = "the same builder" if recorded.builder == builder else builder
        raise IntegrityError(
            f"the rebuilt image {image_id[:19]} is not the image {recorded.image_id[:19]} "
            f"recorded for the manifest (built by {recorded.builder}; this build by {same}); "
            "refused and removed"
        )

    return check


def builder_of(settings: Settings) -> Buildah:
    """buildah, with its storage in this machine's cache (shared by every state folder,
    like the wheels: environment images are reused across deployments)."""
    return Buildah(settings.cache / "buildah")


def _build_and_prove(
    client: Any,
    manifest: Manifest,
    recorded: BuildRecord | None,
    store: ManifestStore,
    settings: Settings,
    *,
    fresh: bool = False,
) -> tuple[image_build.BuiltImage, str]:
    """A new image of the manifest, built reproducibly and proven: the image and its
    fingerprint id. Whatever fails (the build, its id, the fingerprint, the first
    answer), the image does not stay in the engine (unless the engine held the very
    same image before: a failed `--rebuild` leaves the proven copy) and the reason is
    recorded beside the manifest; a later successful build clears it."""
    built = None
    try:
        with (
            tempfile.TemporaryDirectory() as scratch,
            step(f"build {image_build.image_tag(manifest)}") as progress,
        ):
            context = Path(scratch) / "context"
            context.mkdir()
            _build_context(manifest, store, settings, context, progress)
            built = image_build.build_image(
                client,
                builder_of(settings),
                manifest,
                context,
                settings.registry,
                progress,
                fresh=fresh,
                check=_identical(recorded),
            )
        fingerprint_id = _prove(client, manifest, built, recorded, store)
    except BaseException as error:  # Ctrl-C too: an unproven image is never left behind
        if built is not None and built.arrived:
            with contextlib.suppress(Exception):  # the build's own error is the one to show
                image_build.remove_image(client, built.image_id)
        if isinstance(error, Exception):
            _record_failure(store, manifest, error)
        raise
    return built, fingerprint_id


def _prove(
    client: Any,
    manifest: Manifest,
    image: str | image_build.BuiltImage,
    recorded: BuildRecord | None,
    store: ManifestStore,
) -> str:
    """The image's fingerprint checked against the manifest (and the recorded one), an
    image just built made to answer, and the proof recorded; its fingerprint id."""
    built = image if isinstance(image, image_build.BuiltImage) else None
    image_id = image.image_id if isinstance(image, image_build.BuiltImage) else image
    fingerprint = image_build.image_fingerprint(client, image_id)
    fingerprint_id = image_build.fingerprint_id(fingerprint)
    image_build.check_fingerprint(manifest, fingerprint)
    if recorded is not None and recorded.fingerprint_id != fingerprint_id:
        difference = image_build.fingerprint_difference(recorded.fingerprint, fingerprint)
        raise IntegrityError(
            f"image {image_id[:19]} differs from the fingerprint recorded for manifest "
            f"{manifest.short_id} ({difference})"
        )
    if built is not None:
        _prove_it_answers(client, manifest, image_id, store)
    if recorded is not None and recorded.image_id == image_id:
        store.clear_build_failure(manifest.manifest_id)  # proven again: built
    else:
        store.attach_build(
            manifest.manifest_id,
            image_id,
            fingerprint,
            fingerprint_id,
            repo_digest=built.repo_digest if built else None,
            builder=built.builder if built else None,
        )
    return fingerprint_id


def _record_failure(store: ManifestStore, manifest: Manifest, error: Exception) -> None:
    """Say beside the manifest why its build failed (`deployments list` shows it); a
    store that cannot be reached must not hide the build's own error."""
    reason = str(error) if isinstance(error, ReplayError) else f"{type(error).__name__}: {error}"
    with contextlib.suppress(Exception):
        store.record_build_failure(manifest.manifest_id, without_password(one_line(reason, 300)))


def _prove_it_answers(client: Any, manifest: Manifest, image_id: str, store: ManifestStore) -> None:
    """Load the deployment in its new image and decide the first reference row with the
    manifest's seed: a broken entrypoint, a failing `load()` or outputs that break the
    declared fields are found now, as the user's error (exit 2), not at serve time."""
    rows = manifest.schema.read_rows(store.reference_sample(manifest))
    seed = manifest.runtime.seed
    sandbox = Sandbox(cpus=float(manifest.runtime.threads))
    with RunnerContainer(client, image_id, manifest.entrypoint, sandbox) as runner:
        runner.load(seed)
        answer = _answered(runner.request({"inputs": rows[0], "seed": seed}))
        try:
            manifest.schema.output.check(answer["outputs"])
        except BadInput as problem:
            raise DeploymentFailed(
                f"the deployment's outputs break its schema: {problem}"
            ) from None
        if manifest.runtime.batch_exact:
            difference = batch_difference(
                lambda request: _answered(runner.request(request, BATCH_CHECK_TIMEOUT)),
                rows,
                seed,
            )
            if difference is not None:
                raise DeploymentFailed(
                    f"the deployment declares batch_exact, but {difference}: its batches "
                    "are not its single answers; remove batch_exact from replay.yaml"
                )


def _answered(answer: dict[str, Any]) -> dict[str, Any]:
    """A runner's answer, or the deployment's error as the user's (exit 2)."""
    if "error" in answer:
        error = answer["error"]
        raise DeploymentFailed(
            f"the deployment failed on a reference row: {error['type']}: {error['message']}"
        )
    return answer
