"""Manifests and deployment history in MLflow tracking.

One experiment per deployment name, one run per manifest, tagged with the manifest
id, the git commit and the image; artifacts hold the manifest JSON, the lock, the
source archive, the reference sample and the runner, and later the image fingerprint.

MLflow stays the record. A local read-through copy (`cache_dir/<id>/`) lets replays
start without importing MLflow: a manifest is content-addressed, so a cached copy is
checked against its id on every read.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from replay.errors import BadInput, EnvironmentProblem, IntegrityError, one_line
from replay.manifests.canonical import canonical_json, document_id, sha256_file
from replay.manifests.manifest import MIN_ID_PREFIX, Manifest, is_id_prefix
from replay.settings import Settings, without_password
from replay.stores.keys import private_folder, signing_key, verifying_key

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from mlflow.tracking import MlflowClient

TAG_ID = "replay.manifest_id"
TAG_BASE = "replay.base_image"
TAG_IMAGE = "replay.image_id"  # the latest proven image
TAG_IMAGES = "replay.image_ids"  # every proven image (space-separated): builds on any engine
TAG_FINGERPRINT = "replay.fingerprint"
TAG_REPO_DIGEST = "replay.repo_digest"
TAG_ARCHIVE = "replay.archive_sha256"
TAG_BUILDER = "replay.builder"  # the builder of a reproducible image
TAG_SIGNATURE = "replay.build_signature"  # Ed25519 over BuildRecord.statement, hex
TAG_FAILURE = "replay.build_failure"  # why the latest build failed; cleared by a success
TAG_COMMIT = "mlflow.source.git.commit"
TAG_DIRTY = "replay.dirty"

MANIFEST_FILE = "manifest.json"
LOCK_FILE = "requirements.lock"
SOURCE_FILE = "source.tar"
REFERENCE_FILE = "reference.csv"
RUNNER_FILE = "runner.py"
FINGERPRINT_FILE = "fingerprint.json"
BUILD_FILE = "build.json"  # this machine's copy of the signed build record


@dataclass(frozen=True)
class DeploymentRecord:
    """One captured manifest as MLflow remembers it."""

    manifest_id: str
    name: str
    version: str
    created_at: str
    commit: str
    dirty: bool
    base_image: str
    image_id: str | None
    run_id: str
    build_failure: str | None = None  # why the latest build failed, until one succeeds

    @property
    def status(self) -> str:
        """`failed` (the latest build did), `built` or `not built`."""
        if self.build_failure is not None:
            return "failed"
        return "built" if self.image_id else "not built"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status}


# What a build record's signature vouches for, named and versioned so that no other
# signed document (a ledger checkpoint) can pass for one.
BUILD_STATEMENT = "replay build record 1"


@dataclass(frozen=True)
class BuildRecord:
    """What is known of a manifest's image: its fingerprint, every image proven for it
    and where copies are kept, signed with the ledger's key when it was recorded."""

    image_id: str
    fingerprint: dict[str, Any]
    fingerprint_id: str
    repo_digest: str | None = None
    archive_sha256: str | None = None
    image_ids: list[str] = field(default_factory=list)  # every image proven for it
    manifest_id: str = ""
    signature: str | None = None
    # the builder of a reproducible image (`buildah 1.28.2`): every rebuild must then
    # have `image_id`; None for images built before (their fingerprint is what holds)
    builder: str | None = None

    def proves(self, image_id: str) -> bool:
        """Whether `image_id` is an image built and proven for this manifest."""
        return image_id == self.image_id or image_id in self.image_ids

    def statement(self) -> bytes:
        """The bytes signed: everything that says which images may run for the manifest
        (the fingerprint through its id)."""
        return canonical_json(
            {
                "statement": BUILD_STATEMENT,
                "manifest_id": self.manifest_id,
                "image_id": self.image_id,
                "image_ids": self.image_ids,
                "fingerprint_id": self.fingerprint_id,
                "repo_digest": self.repo_digest,
                "archive_sha256": self.archive_sha256,
                # absent from older records, whose signatures must keep holding
                **({"builder": self.builder} if self.builder is not None else {}),
            }
        )

    def holds(self, key: Ed25519PublicKey | None, manifest_id: str) -> str | None:
        """Why this record cannot be trusted for `manifest_id` with `key`, or None."""
        from cryptography.exceptions import InvalidSignature

        if self.manifest_id != manifest_id:
            return f"it is the record of {str(self.manifest_id)[:12] or 'no manifest'}"
        if key is None:
            return "there is no ledger key in the key folder to check its signature"
        try:  # any field may hold anything: a file can be edited by hand
            if document_id(self.fingerprint) != self.fingerprint_id:
                return "its fingerprint does not hash to its fingerprint id"
            key.verify(bytes.fromhex(str(self.signature)), self.statement())
        except (InvalidSignature, ValueError, TypeError):
            return "its signature does not hold (it was changed, or signed with another key)"
        return None


def _check_id(manifest_id: str) -> None:
    if not is_id_prefix(manifest_id):
        raise BadInput(
            f"{manifest_id!r} is not a manifest id (at least {MIN_ID_PREFIX} hex digits)"
        )


class ManifestStore:
    def __init__(
        self, tracking_uri: str, artifact_root: str, cache_dir: Path, *, key_folder: Path
    ) -> None:
        self.tracking_uri = tracking_uri
        self.artifact_root = artifact_root.rstrip("/")
        self.cache_dir = cache_dir
        self.key_folder = key_folder  # the ledger's signing key signs build records too
        self._client: MlflowClient | None = None

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            # Artifact downloads here are small and many: per-download bars are noise.
            os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
            from mlflow.tracking import MlflowClient  # about 3 s: replays read the cache instead

            # MLflow narrates database migrations at INFO on first use: not the user's concern.
            logging.getLogger("mlflow").setLevel(logging.WARNING)
            logging.getLogger("alembic").setLevel(logging.WARNING)
            if self.tracking_uri.startswith("sqlite:///"):
                Path(self.tracking_uri.removeprefix("sqlite:///")).parent.mkdir(
                    parents=True, exist_ok=True
                )
            try:
                self._client = MlflowClient(tracking_uri=self.tracking_uri)
                self._client.search_experiments(max_results=1)
            except Exception as error:
                # MLflow's message names the URL, password and all: masked before it is cut
                raise EnvironmentProblem(
                    f"MLflow tracking at {without_password(self.tracking_uri)} is unreachable: "
                    f"{one_line(without_password(str(error)) or type(error).__name__)}"
                ) from None
        return self._client

    def _experiment_id(self, name: str) -> str:
        experiment = self.client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        return self.client.create_experiment(
            name, artifact_location=f"{self.artifact_root}/{name}", tags={"replay.deployment": name}
        )

    def save(self, manifest: Manifest, files: list[Path]) -> str:
        """Record a manifest and its files (source, reference, runner) as a finished run."""
        run = self.client.create_run(
            self._experiment_id(manifest.name),
            run_name=f"{manifest.version}-{manifest.short_id}",
            tags={
                TAG_ID: manifest.manifest_id,
                TAG_COMMIT: manifest.code.commit or "",
                TAG_DIRTY: str(manifest.code.dirty).lower(),
                TAG_BASE: manifest.image.base,
                "replay.version": manifest.version,
                "replay.created_at": manifest.created_at,
            },
        )
        run_id = run.info.run_id
        try:
            with tempfile.TemporaryDirectory() as scratch:
                folder = Path(scratch)
                (folder / MANIFEST_FILE).write_bytes(manifest.to_json())
                (folder / LOCK_FILE).write_text(manifest.environment.lock)
                for path in (folder / MANIFEST_FILE, folder / LOCK_FILE):
                    self.client.log_artifact(run_id, str(path))
            for path in files:
                self.client.log_artifact(run_id, str(path))
        except Exception:
            # A manifest without its artifacts would fail every later verify: leave none.
            self.client.delete_run(run_id)
            raise
        self.client.set_terminated(run_id, "FINISHED")
        return run_id

    def log_run(
        self,
        deployment: str,
        run_name: str,
        *,
        metrics: dict[str, float],
        params: dict[str, str],
        tags: dict[str, str],
        files: list[Path],
    ) -> str:
        """A finished run beside the deployment's manifests (a backtest, say), so ML teams
        see it where they already look; it carries no manifest tag, so it is never taken
        for one."""
        run_id: str = self.client.create_run(
            self._experiment_id(deployment), run_name=run_name, tags=tags
        ).info.run_id
        for key, value in metrics.items():
            self.client.log_metric(run_id, key, value)
        for key, text in params.items():
            self.client.log_param(run_id, key, text)
        for path in files:
            self.client.log_artifact(run_id, str(path))
        self.client.set_terminated(run_id, "FINISHED")
        return run_id

    def _runs(self, filter_string: str = "", names: list[str] | None = None) -> list[Any]:
        experiments = self.client.search_experiments()
        ids = [e.experiment_id for e in experiments if names is None or e.name in names]
        if not ids:
            return []
        return self.client.search_runs(
            ids,
            filter_string=filter_string,
            order_by=["attributes.start_time DESC"],
            max_results=10_000,
        )

    def _run_for(self, manifest_id: str) -> Any:
        _check_id(manifest_id)
        runs = self._runs(f"tags.`{TAG_ID}` LIKE '{manifest_id}%'")
        if not runs:
            raise BadInput(f"no manifest {manifest_id} in {without_password(self.tracking_uri)}")
        found = {run.data.tags[TAG_ID] for run in runs}
        if len(found) > 1:
            raise BadInput(f"manifest prefix {manifest_id} is ambiguous ({len(found)} matches)")
        return runs[0]

    def resolve(self, manifest_id: str) -> str:
        """The full id of a manifest given a unique prefix. A full id cached on this
        machine is taken as it is, without MLflow (whose import alone takes seconds); a
        prefix is always asked of the tracking store, where it may be ambiguous."""
        if len(manifest_id) == 64 and self._cached(manifest_id) is not None:
            return manifest_id
        return self._run_for(manifest_id).data.tags[TAG_ID]

    def artifact(self, manifest_id: str, name: str, destination: Path) -> Path:
        """Download one artifact of a manifest's run into `destination` (a folder)."""
        import mlflow.artifacts

        run = self._run_for(manifest_id)
        destination.mkdir(parents=True, exist_ok=True)
        try:
            return Path(
                mlflow.artifacts.download_artifacts(
                    run_id=run.info.run_id,
                    artifact_path=name,
                    dst_path=str(destination),
                    tracking_uri=self.tracking_uri,
                )
            )
        except Exception as error:
            raise EnvironmentProblem(
                f"artifact {name} of manifest {manifest_id[:12]} cannot be read: {one_line(error)}"
            ) from None

    def _cached(self, manifest_id: str) -> Path | None:
        """The cache folder of the one cached manifest whose id starts so, if any."""
        _check_id(manifest_id)
        if not self.cache_dir.is_dir():
            return None
        found = [
            folder
            for folder in self.cache_dir.glob(f"{manifest_id}*")
            if (folder / MANIFEST_FILE).is_file()
        ]
        return found[0] if len(found) == 1 else None

    def load(self, manifest_id: str, *, fresh: bool = False) -> Manifest:
        """The manifest, checked to hash to its id: from this machine's cache, or with
        `fresh` (as verification needs) from the tracking store itself."""
        cached = None if fresh else self._cached(manifest_id)
        if cached is not None:
            data = (cached / MANIFEST_FILE).read_bytes()
            return Manifest.from_json(data, expected_id=cached.name)
        full_id = self.resolve(manifest_id)
        with tempfile.TemporaryDirectory() as scratch:
            path = self.artifact(full_id, MANIFEST_FILE, Path(scratch))
            manifest = Manifest.from_json(path.read_bytes(), expected_id=full_id)
        self._cache(manifest.manifest_id, MANIFEST_FILE, manifest.to_json())
        return manifest

    def reference_sample(self, manifest: Manifest) -> Path:
        """The manifest's reference sample on disk, checked against its recorded sha256."""
        expected = manifest.reference.sha256
        path = self.cache_dir / manifest.manifest_id / REFERENCE_FILE
        if not path.is_file():
            with tempfile.TemporaryDirectory() as scratch:
                data = self.artifact(manifest.manifest_id, REFERENCE_FILE, Path(scratch))
                self._cache(manifest.manifest_id, REFERENCE_FILE, data.read_bytes())
        if sha256_file(path) != expected:
            path.unlink()
            raise IntegrityError(
                f"reference sample of {manifest.short_id} does not match its sha256 {expected}"
            )
        return path

    def _cache(self, manifest_id: str, name: str, data: bytes) -> None:
        folder = self.cache_dir / manifest_id
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f".{name}.partial"
        partial.write_bytes(data)
        partial.replace(folder / name)

    def history(self, name: str | None = None) -> list[DeploymentRecord]:
        runs = self._runs(names=[name] if name else None)
        records = []
        for run in runs:
            tags = run.data.tags
            if TAG_ID not in tags:
                continue
            records.append(
                DeploymentRecord(
                    manifest_id=tags[TAG_ID],
                    name=self.client.get_experiment(run.info.experiment_id).name,
                    version=tags.get("replay.version", ""),
                    created_at=tags.get("replay.created_at", ""),
                    commit=tags.get(TAG_COMMIT, ""),
                    dirty=tags.get(TAG_DIRTY) == "true",
                    base_image=tags.get(TAG_BASE, ""),
                    image_id=tags.get(TAG_IMAGE),
                    run_id=run.info.run_id,
                    build_failure=tags.get(TAG_FAILURE),
                )
            )
        return records

    def attach_build(
        self,
        manifest_id: str,
        image_id: str,
        fingerprint: dict[str, Any],
        fingerprint_id: str,
        *,
        repo_digest: str | None = None,
        builder: str | None = None,
    ) -> BuildRecord:
        """Record the built image and its fingerprint next to the manifest, signed (with
        where the registry keeps it and the builder that made it, for a reproducible
        image)."""
        run_id = self._run_for(manifest_id).info.run_id
        earlier = self.build_record(manifest_id)  # checked: a forged id is never re-signed
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / FINGERPRINT_FILE
            path.write_text(json.dumps(fingerprint, indent=2, sort_keys=True))
            self.client.log_artifact(run_id, str(path))
        record = BuildRecord(
            image_id=image_id,
            fingerprint=fingerprint,
            fingerprint_id=fingerprint_id,
            repo_digest=repo_digest or (earlier.repo_digest if earlier else None),
            archive_sha256=earlier.archive_sha256 if earlier else None,
            image_ids=list(dict.fromkeys([*(earlier.image_ids if earlier else []), image_id])),
            manifest_id=self.resolve(manifest_id),
            builder=builder,  # None for an image this replay did not build itself
        )
        return self._record_build(run_id, record)

    def record_build_failure(self, manifest_id: str, reason: str) -> None:
        """Record beside the manifest why its latest build failed (one line)."""
        self.client.set_tag(self._run_for(manifest_id).info.run_id, TAG_FAILURE, reason)

    def clear_build_failure(self, manifest_id: str) -> None:
        """Forget why an earlier build failed: a build has proven the image since."""
        run_id = self._run_for(manifest_id).info.run_id
        if TAG_FAILURE in self.client.get_run(run_id).data.tags:
            self.client.delete_tag(run_id, TAG_FAILURE)

    def attach_publication(
        self, manifest_id: str, repo_digest: str, archive_sha256: str
    ) -> BuildRecord:
        """Record where the image was published: registry digest and archive blob."""
        earlier = self.build_record(manifest_id)
        if earlier is None:
            raise BadInput(f"manifest {manifest_id[:12]} has no image to publish")
        run_id = self._run_for(manifest_id).info.run_id
        record = replace(earlier, repo_digest=repo_digest, archive_sha256=archive_sha256)
        return self._record_build(run_id, record)

    def _record_build(self, run_id: str, record: BuildRecord) -> BuildRecord:
        """Sign `record` and write it to the tracking store, then read it back checked."""
        signature = signing_key(self.key_folder).sign(record.statement()).hex()
        tags = {
            TAG_IMAGES: " ".join(record.image_ids),
            TAG_IMAGE: record.image_id,
            TAG_FINGERPRINT: record.fingerprint_id,
            TAG_REPO_DIGEST: record.repo_digest,
            TAG_ARCHIVE: record.archive_sha256,
            TAG_BUILDER: record.builder,
            TAG_SIGNATURE: signature,
        }
        for name, value in tags.items():
            if value is not None:
                self.client.set_tag(run_id, name, value)
        self.clear_build_failure(record.manifest_id)  # a proven image: built
        stored = self._checked(self.stored_build(record.manifest_id))
        if stored is None:  # tags were just set; MLflow lost them
            raise EnvironmentProblem(f"MLflow did not keep the build of {record.manifest_id[:12]}")
        return stored

    def build_record(self, manifest_id: str) -> BuildRecord | None:
        """What is recorded of the manifest's image, or None if it was never built: this
        machine's copy when its signature holds, else the tracking store's, which must."""
        cached = self.cached_build(manifest_id)
        if cached is not None and self.build_problem(cached) is None:
            return cached
        return self._checked(self.stored_build(manifest_id))

    def cached_build(self, manifest_id: str) -> BuildRecord | None:
        """This machine's copy of the build record, as it is (not checked)."""
        cached = self._cached(manifest_id)
        if cached is None or not (cached / BUILD_FILE).is_file():
            return None
        try:
            record = BuildRecord(**json.loads((cached / BUILD_FILE).read_text()))
        except (ValueError, TypeError):  # not a record at all: the store's is read instead
            return None
        return record if record.manifest_id == cached.name else None

    def build_problem(self, record: BuildRecord) -> str | None:
        """Why `record` cannot be trusted (checked with the ledger's public key), or None."""
        return record.holds(verifying_key(self.key_folder), record.manifest_id)

    def stored_build(self, manifest_id: str) -> BuildRecord | None:
        """The build record as the tracking store holds it (not checked), None if the
        manifest was never built."""
        tags = self._run_for(manifest_id).data.tags
        if TAG_FINGERPRINT not in tags:
            return None
        with tempfile.TemporaryDirectory() as scratch:
            path = self.artifact(tags[TAG_ID], FINGERPRINT_FILE, Path(scratch))
            fingerprint = json.loads(path.read_text())
        return BuildRecord(
            image_id=tags[TAG_IMAGE],
            fingerprint=fingerprint,
            fingerprint_id=tags[TAG_FINGERPRINT],
            repo_digest=tags.get(TAG_REPO_DIGEST),
            archive_sha256=tags.get(TAG_ARCHIVE),
            image_ids=tags.get(TAG_IMAGES, tags[TAG_IMAGE]).split(),
            manifest_id=tags[TAG_ID],
            signature=tags.get(TAG_SIGNATURE),
            builder=tags.get(TAG_BUILDER),
        )

    def _checked(self, record: BuildRecord | None) -> BuildRecord | None:
        """The tracking store's record once its signature holds (then cached here);
        a record that does not hold is refused, never used to prove an image."""
        if record is None:
            return None
        problem = self.build_problem(record)
        if problem is not None:
            raise IntegrityError(
                f"the build record of manifest {record.manifest_id[:12]} in "
                f"{without_password(self.tracking_uri)} cannot be trusted: {problem}"
            )
        self._cache(record.manifest_id, BUILD_FILE, json.dumps(record.__dict__).encode())
        return record


def manifest_store(settings: Settings) -> ManifestStore:
    """The manifest store the settings name (MLflow tracking, and the cache in home)."""
    if not settings.home.exists():
        private_folder(settings.home)  # the state folder holds personal data and keys
    # MLflow's HTTP client waits 120 s a try and retries for minutes: replay's calls get
    # one try within the connect budget, unless the user set MLflow's own variables.
    # (MLflow reads only whole seconds.)
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(max(1, int(settings.connect_timeout))))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    return ManifestStore(
        settings.tracking_uri,
        settings.artifact_root,
        settings.home / "manifests",
        key_folder=settings.key_folder,
    )
