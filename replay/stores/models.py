"""Model files through DVC: find where they are stored, fetch them back by hash.

The manifest names each model file by sha256 (and DVC md5). A copy is only ever used
after its sha256 has been checked against the manifest.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from replay.errors import IntegrityError
from replay.manifests.canonical import sha256_file
from replay.manifests.manifest import Manifest, ModelFile


def default_remote(root: Path) -> tuple[str | None, str | None]:
    """The DVC repository's default remote (name, url), or (None, None)."""
    if not _dvc_root(root):
        return None, None
    from dvc.repo import Repo

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
    code = manifest.document["code"]
    root = Path(code["repository"]) / code["subdirectory"]
    return root if root.is_dir() else None


def _repo_path(manifest: Manifest, item: ModelFile) -> str:
    subdirectory = manifest.document["code"]["subdirectory"]
    return f"{subdirectory}/{item.path}" if subdirectory else item.path


def _rev(manifest: Manifest) -> str | None:
    # A dirty capture may track the file in the work tree only.
    code = manifest.document["code"]
    return None if code["dirty"] else code["commit"]


def stored_copies(manifest: Manifest, item: ModelFile) -> Iterator[tuple[str, Path]]:
    """(where, local path) for every stored copy of a model file: work tree, DVC remote."""
    workspace = _workspace(manifest)
    if workspace is not None and (workspace / item.path).is_file():
        yield "work tree", workspace / item.path
    if item.dvc and item.dvc.get("remote"):
        import dvc.api

        url = dvc.api.get_url(
            _repo_path(manifest, item),
            repo=manifest.document["code"]["repository"],
            rev=_rev(manifest),
            remote=item.dvc["remote"],
        )
        if "://" not in url or url.startswith("file://"):
            path = Path(url.removeprefix("file://"))
            if path.is_file():
                yield f"DVC remote {item.dvc['remote']}", path
        else:
            with tempfile.TemporaryDirectory() as scratch:
                import fsspec

                local = Path(scratch) / Path(item.path).name
                with fsspec.open(url, "rb") as source, open(local, "wb") as target:
                    shutil.copyfileobj(source, target)
                yield f"DVC remote {item.dvc['remote']}", local


def fetch_model_files(manifest: Manifest, destination: Path) -> None:
    """Copy every model file to `destination/<path>`, from the first copy whose hash holds."""
    for item in manifest.model_files:
        target = destination / item.path
        target.parent.mkdir(parents=True, exist_ok=True)
        seen = []
        for where, path in stored_copies(manifest, item):
            if sha256_file(path) == item.sha256:
                shutil.copyfile(path, target)
                break
            seen.append(where)
        else:
            detail = f"copies in {', '.join(seen)} differ" if seen else "no stored copy found"
            raise IntegrityError(f"model file {item.path}: {detail} from sha256 {item.sha256}")
