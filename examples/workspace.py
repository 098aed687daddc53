"""Materialise an example (`credit`, `claims`, `fraud`) as a real deployment repository.

A deployment lives in its own git repository with its model tracked by DVC. This
copies `<example>/deployment/` to a fresh folder, trains the model there
(deterministically), puts the model files under DVC with a remote (a local folder, or
`s3://bucket/prefix` reached through the usual AWS_* variables), commits, and pushes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
MODEL = "model/model.joblib"  # where every example keeps its model
# The new cases each example's train.py writes beside its reference sample.
NEW_CASES = {"credit": "applicants.csv", "claims": "claims.csv", "fraud": "payments.csv"}


def read_new_cases(workspace: Path, example: str) -> list[dict]:
    """The new applicants (or claims) `train.py` wrote, typed as the schema says."""
    from replay.manifests.spec import load_spec

    return load_spec(workspace).schema.read_rows(workspace / "data" / NEW_CASES[example])


def _run(folder: Path, *command: str) -> None:
    env = {
        **os.environ,
        "DVC_NO_ANALYTICS": "1",
        "PYTHONPATH": str(folder),
        "GIT_AUTHOR_NAME": "Model Team",
        "GIT_AUTHOR_EMAIL": "models@example.com",
        "GIT_COMMITTER_NAME": "Model Team",
        "GIT_COMMITTER_EMAIL": "models@example.com",
    }
    result = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")


def make_workspace(
    example: str, destination: Path, dvc_remote: Path | str, threads: int = 1
) -> Path:
    """A committed repo of `example` at `destination`, its model pushed to `dvc_remote`;
    `threads` replaces the example's `threads: 1` in replay.yaml."""
    destination = destination.absolute()
    if destination.exists():
        shutil.rmtree(destination)
    shutil.copytree(
        HERE / example / "deployment",
        destination,
        ignore=shutil.ignore_patterns("__pycache__", "model", "data"),
    )
    spec = destination / "replay.yaml"
    spec.write_text(spec.read_text().replace("threads: 1 ", f"threads: {threads} "))
    dvc = [sys.executable, "-m", "dvc"]
    _run(destination, "git", "init", "-q", "-b", "main")
    _run(destination, sys.executable, "train.py")
    _run(destination, *dvc, "init", "-q")
    remote = str(dvc_remote)
    if "://" not in remote:
        remote = str(Path(remote).absolute())
    _run(destination, *dvc, "remote", "add", "-d", "storage", remote)
    _run(destination, *dvc, "add", "-q", MODEL)
    _run(destination, "git", "add", "-A")
    _run(destination, "git", "commit", "-q", "-m", f"{example} model v1")
    _run(destination, *dvc, "push", "-q")
    return destination


def retrain(workspace: Path, seed: int) -> Path:
    """The credit workspace's model trained again on other applicants (`seed`),
    committed and pushed: a challenger of the same deployment."""
    dvc = [sys.executable, "-m", "dvc"]
    env = {**os.environ, "CREDIT_TRAINING_SEED": str(seed)}
    result = subprocess.run(
        [sys.executable, "train.py"], cwd=workspace, env=env, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise RuntimeError(f"retraining failed:\n{result.stderr}")
    _run(workspace, *dvc, "add", "-q", MODEL)
    _run(workspace, "git", "add", "-A")
    _run(workspace, "git", "commit", "-q", "-m", f"credit model retrained (seed {seed})")
    _run(workspace, *dvc, "push", "-q")
    return workspace


def committed_copy(source: Path, destination: Path, edits=()) -> Path:
    """The deployment folder `source` copied to `destination` (no DVC: its model files
    are committed with it), `edits` ((file, old, new) text replacements) applied, its
    model trained by its `train.py` where it has one, committed in its own repository."""
    shutil.copytree(source, destination, ignore=shutil.ignore_patterns("__pycache__"))
    for file, old, new in edits:
        text = (destination / file).read_text()
        if old not in text:
            raise ValueError(f"{old!r} is not in {file}")
        (destination / file).write_text(text.replace(old, new))
    _run(destination, "git", "init", "-q", "-b", "main")
    if (destination / "train.py").is_file():
        # no bytecode caches committed
        _run(destination, sys.executable, "-B", "train.py")
    _run(destination, "git", "add", "-A")
    _run(destination, "git", "commit", "-q", "-m", destination.name)
    return destination
