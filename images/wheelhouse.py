"""Wheels for the image's platform, downloaded on the host and checked against the lock.

Containers here cannot verify TLS to a package index (and a build should not depend
on the network anyway), so the host downloads exactly the locked files and the build
installs them with `--no-index --require-hashes`.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from replay.images.host import run_streamed
from replay.manifests.canonical import sha256_file
from replay.manifests.lock import normalise, parse_lock

from replay.errors import BadInput, IntegrityError


def _wheel_name_version(filename: str) -> tuple[str, str]:
    name, version = filename.split("-")[:2]
    return normalise(name), version


def download_wheels(
    lock_text: str,
    python: str,
    platforms: list[str],
    destination: Path,
    progress: Callable[[str], None] = lambda _: None,
) -> list[dict[str, str]]:
    """Download one wheel per locked requirement into `destination`; describe each."""
    locked = {item.key: item for item in parse_lock(lock_text)}
    destination.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".lock") as lock_file:
        lock_file.write(lock_text)
        lock_file.flush()
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--disable-pip-version-check",
            "--require-hashes",
            "--no-deps",
            "--only-binary=:all:",
            "--python-version",
            python,
            "--implementation",
            "cp",
            *[argument for tag in platforms for argument in ("--platform", tag)],
            "-r",
            lock_file.name,
            "-d",
            str(destination),
        ]

        def report(line: str) -> None:
            if line.startswith(("Collecting", "Saved", "File was already")):
                progress(line[:90])

        code, output = run_streamed(command, report)
        if code != 0:
            errors = [line for line in output if "ERROR" in line] or output[-1:]
            raise BadInput(f"could not download wheels for the lock: {errors[0].strip()}")

    wheels = []
    for path in sorted(destination.glob("*.whl")):
        name, version = _wheel_name_version(path.name)
        requirement = locked.get(name)
        if requirement is None or requirement.version != version:
            continue  # the folder is a shared cache: other locks' wheels live here too
        digest = sha256_file(path)
        if digest not in requirement.hashes:
            raise IntegrityError(f"{path.name} does not match any hash in the lock")
        wheels.append(
            {
                "name": requirement.key,
                "version": requirement.version,
                "filename": path.name,
                "sha256": digest,
            }
        )
    missing = set(locked) - {wheel["name"] for wheel in wheels}
    if missing:
        raise BadInput(f"no wheel for {sorted(missing)[0]} on {platforms[0]} (source-only?)")
    return wheels
