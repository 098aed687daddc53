"""`make demo`: the credit-approval deployment frozen, built and verified end to end.

Runs on the embedded defaults: local Docker engine, MLflow on SQLite and DVC with a
local remote, all under .replay/ in the working directory.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from workspace import make_workspace

import replay
from replay.errors import ReplayError


def main() -> int:
    home = Path(".replay")
    print("1. the credit-approval deployment: train, track the model with DVC, commit")
    workspace = make_workspace(home / "demo" / "credit-approval", home / "dvc-remote")
    print(f"   {workspace}")
    print("2. capture its manifest (lock, hashes, base digest) into MLflow")
    manifest = replay.capture(workspace)
    print(f"   manifest {manifest.manifest_id}")
    print("3. build its image hermetically (network off) and check its fingerprint")
    built = replay.build(manifest.manifest_id)
    print(f"   image {built.tag} ({built.image_id[:19]}, {'reused' if built.reused else 'built'})")
    print("4. verify every stored hash")
    verification = replay.verify_manifest(manifest.manifest_id)
    verification.raise_for_mismatch()
    print(f"   {len(verification.checks)} hashes match")
    print()
    print(f"manifest id: {manifest.manifest_id}")
    print(f"image:       {built.tag}")
    print(f"try:         .venv/bin/replay manifest show {manifest.short_id}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ReplayError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(error.exit_code)
