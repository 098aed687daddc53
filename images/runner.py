"""The runner that lives inside every replay image.

It runs in the deployment's own Python with only the standard library and the
deployment's locked packages: it must import nothing from the replay project.

    python runner.py --fingerprint   print the image's fingerprint as one JSON line
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
from importlib import metadata

RUNNER_VERSION = "1"
DEPLOYMENT = os.environ.get("REPLAY_DEPLOYMENT_DIR", "/opt/deployment")


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fingerprint() -> dict:
    """What this image really contains: Python, installed distributions, model bytes."""
    model_dir = os.path.join(DEPLOYMENT, "model")
    model_files = {}
    for folder, _, names in os.walk(model_dir):
        for name in names:
            path = os.path.join(folder, name)
            model_files[os.path.relpath(path, model_dir)] = _sha256(path)
    distributions = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            distributions[name.lower().replace("_", "-").replace(".", "-")] = dist.version
    return {
        "runner": RUNNER_VERSION,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "machine": platform.machine(),
        "distributions": dict(sorted(distributions.items())),
        "model_files": dict(sorted(model_files.items())),
    }


def main(argv: list[str]) -> int:
    if argv[1:] == ["--fingerprint"]:
        sys.stdout.write(json.dumps(fingerprint(), sort_keys=True) + "\n")
        return 0
    sys.stderr.write("usage: runner.py --fingerprint\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
