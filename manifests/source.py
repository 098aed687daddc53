"""The deployment's code: which commit, whether the tree is dirty, and a source archive.

The archive is built from the files git knows under the deployment folder (tracked,
plus untracked-but-not-ignored when a dirty tree is allowed), with fixed metadata, so
the same tree always gives the same bytes and the same sha256.
"""

from __future__ import annotations

import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

from replay.errors import BadInput

STATE_FOLDER = ".replay"  # replay's own state, never part of a deployment's source
# git pathspecs: the deployment folder, without any replay state folder inside it
_SOURCE = [".", f":(exclude,glob)**/{STATE_FOLDER}/**"]


@dataclass(frozen=True)
class SourceState:
    repository: str  # the git top level (a path on this machine) or its `origin` URL
    subdirectory: str  # the deployment folder inside the repository ("" at the top)
    commit: str | None  # None for code replay wrote itself (a model from a registry)
    dirty: bool
    toplevel: Path


def _git(root: Path, *args: str) -> str:
    result = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
    if result.returncode != 0:
        message = (result.stderr.strip().splitlines() or ["git failed"])[-1]
        raise BadInput(f"{root}: {message}")
    return result.stdout


def source_state(root: Path) -> SourceState:
    """Where the deployment's code lives in git, and whether it has changes."""
    root = root.resolve()
    try:
        toplevel = Path(_git(root, "rev-parse", "--show-toplevel").strip())
    except BadInput:
        raise BadInput(
            f"{root} is not inside a git repository; commit the deployment first"
        ) from None
    try:
        commit = _git(root, "rev-parse", "HEAD").strip()
    except BadInput:
        raise BadInput(f"{root}: the repository has no commit yet") from None
    dirty = bool(_git(root, "status", "--porcelain", "--", *_SOURCE).strip())
    origin = subprocess.run(
        ["git", "-C", str(root), "remote", "get-url", "origin"], capture_output=True, text=True
    ).stdout.strip()
    subdirectory = root.relative_to(toplevel).as_posix()
    return SourceState(
        repository=origin or str(toplevel),
        subdirectory="" if subdirectory == "." else subdirectory,
        commit=commit,
        dirty=dirty,
        toplevel=toplevel,
    )


def source_files(root: Path) -> list[str]:
    """Paths (relative to `root`) of tracked and untracked-but-not-ignored files that exist."""
    listed = _git(
        root, "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", *_SOURCE
    )
    files = {name for name in listed.split("\0") if name}
    return sorted(name for name in files if (root / name).is_file())


def write_source_archive(root: Path, destination: Path, files: list[str] | None = None) -> None:
    """A tar of the deployment's source (`files` under `root`, else what git knows) with
    fixed owners, times and order."""
    with tarfile.open(destination, "w", format=tarfile.PAX_FORMAT) as archive:
        for name in sorted(files) if files is not None else source_files(root):
            path = root / name
            info = tarfile.TarInfo(name)
            info.size = path.stat().st_size
            info.mode = 0o755 if path.stat().st_mode & 0o111 else 0o644
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with open(path, "rb") as handle:
                archive.addfile(info, handle)
