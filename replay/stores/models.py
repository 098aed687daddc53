"""Model files through DVC: find where they are stored, fetch them back by hash.

The manifest names each model file by sha256 (and DVC md5). A copy is only ever used
after its sha256 has been checked against the manifest.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from replay.errors import BadInput, EnvironmentProblem, IntegrityError, one_line
from replay.manifests.canonical import sha256_file
from replay.manifests.manifest import DvcCopy, Manifest, ModelFile
from replay.stores.blobs import BlobStore

BLOB_STORE = "replay's blob store"


def default_remote(root: Path) -> tuple[str | None, str | None]:
    """The DVC repository's default remote (name, url), or (None, None)."""
    if not _dvc_root(root):
        return None, None
    from dvc.repo import Repo  # about 1 s: only capture, build and verify read models

    with Repo(str(_dvc_root(root))) as repo:
        name = repo.config["core"].get("remote")
        if not name:
            return None, None
        return name, str(repo.config["remote"][name]["url"])


def _dvc_root(path: Path) -> Path | None:
    for folder in [path, *path.parents]:
        if (folder / ".dvc").is_dir():
            return folder
    return None


def _workspace(manifest: Manifest) -> Path | None:
    """The deployment folder on this machine, if the repository is a local path."""
    root = Path(manifest.code.repository) / manifest.code.subdirectory
    return root if root.is_dir() else None


def _rev(manifest: Manifest) -> str | None:
    # A dirty capture may track the file in the work tree only.
    return None if manifest.code.dirty else manifest.code.commit


def stored_copies(
    manifest: Manifest, item: ModelFile, blobs: BlobStore | None = None
) -> Iterator[tuple[str, Path]]:
    """(where, local path) for every stored copy of a model file: work tree, replay's
    blob store (where a model captured from MLflow is kept), DVC remote.

    The remote is read through DVC's own filesystem for it, so its configuration
    (S3 endpoint, credentials, profile) applies as it does to `dvc pull`."""
    workspace = _workspace(manifest)
    if workspace is not None and (workspace / item.path).is_file():
        yield "work tree", workspace / item.path
    if blobs is not None and blobs.has(item.sha256):
        with tempfile.TemporaryDirectory() as scratch:
            yield BLOB_STORE, blobs.copy(item.sha256, Path(scratch) / Path(item.path).name)
    if item.dvc is None:
        return
    with _remote_object(manifest.code.repository, _rev(manifest), item.dvc) as (
        where,
        odb,
        stored,
    ):
        if stored is None:
            return
        if odb.fs.protocol == "local":
            yield where, Path(stored)
            return
        with tempfile.TemporaryDirectory() as scratch:
            local = Path(scratch) / Path(item.path).name
            with _reaching(where, odb.path):
                odb.fs.get_file(stored, str(local))
            yield where, local


@contextmanager
def _remote_object(
    repository: str, rev: str | None, dvc: DvcCopy | None
) -> Iterator[tuple[str, Any, str | None]]:
    """(where, the remote's object store, the object's path there, or None when the
    remote does not hold it) for a model file DVC tracks with a remote."""
    if dvc is None or dvc.remote is None:
        yield "no DVC remote", None, None
        return
    from dvc.repo import Repo  # about 1 s: only capture, build and verify read models

    where = f"DVC remote {dvc.remote}"
    with Repo.open(repository, rev=rev) as repo:
        odb = repo.cloud.get_remote_odb(dvc.remote)
        stored = odb.oid_to_path(dvc.md5)
        with _reaching(where, odb.path):
            present = odb.fs.exists(stored)
        yield where, odb, stored if present else None


def in_remote(repository: str | Path, rev: str | None, dvc: DvcCopy) -> bool:
    """Whether the DVC remote named by `dvc` (as the repository at `rev` configures it)
    holds the model file's object."""
    with _remote_object(str(repository), rev, dvc) as (_, _, stored):
        return stored is not None


def push_models(root: Path, paths: list[str]) -> None:
    """`dvc push` the given model files of the deployment at `root` to its remote."""
    from dvc.repo import Repo

    dvc_root = _dvc_root(root)
    if dvc_root is None:
        raise BadInput(f"{root} is not inside a DVC repository; `dvc init` and `dvc add` it")
    try:
        with Repo(str(dvc_root)) as repo:
            repo.push(targets=[str(root / path) for path in paths])
    except Exception as error:  # each remote's filesystem raises its own types
        raise EnvironmentProblem(f"dvc push from {dvc_root} failed: {one_line(error)}") from None


@contextmanager
def _reaching(where: str, url: str) -> Iterator[None]:
    try:
        yield
    except Exception as error:  # each filesystem backend raises its own types
        raise EnvironmentProblem(f"{where} ({url}) cannot be read: {error}") from None


def store_model_files(root: Path, model_files: list[dict[str, Any]], blobs: BlobStore) -> None:
    """Keep model files that no DVC remote holds in replay's blob store, by sha256."""
    for item in model_files:
        if item["dvc"] is None:
            blobs.put(root / item["path"])


def fetch_model_files(
    manifest: Manifest, destination: Path, blobs: BlobStore | None = None
) -> None:
    """Copy every model file to `destination/<path>`, from the first copy whose hash holds."""
    for item in manifest.model_files:
        target = destination / item.path
        target.parent.mkdir(parents=True, exist_ok=True)
        seen = []
        for where, path in stored_copies(manifest, item, blobs):
            if sha256_file(path) == item.sha256:
                shutil.copyfile(path, target)
                break
            seen.append(where)
        else:
            detail = f"copies in {', '.join(seen)} differ" if seen else "no stored copy found"
            raise IntegrityError(f"model file {item.path}: {detail} from sha256 {item.sha256}")
