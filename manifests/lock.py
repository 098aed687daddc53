"""Hashed dependency locks: made with pip-tools, parsed for the build.

A lock pins every distribution (`name==version`) with the sha256 of each file that
may be installed for it. `pip install --require-hashes` refuses anything else.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from replay.errors import BadInput, EnvironmentProblem

_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==(?P<version>[^\s;]+)")
_HASH = re.compile(r"--hash=sha256:(?P<hash>[0-9a-f]{64})")

# Index settings are one machine's: a manifest must not carry them.
PIP_COMPILE_ARGS = [
    "--generate-hashes",
    "--allow-unsafe",  # pins pip/setuptools too, or --require-hashes installs can fail
    "--strip-extras",
    "--no-emit-index-url",
    "--no-emit-find-links",
    "--no-emit-trusted-host",
    "--quiet",
]


@dataclass(frozen=True)
class LockedRequirement:
    name: str
    version: str
    hashes: frozenset[str]

    @property
    def key(self) -> str:
        """The normalised project name (PEP 503)."""
        return normalise(self.name)


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _logical_lines(text: str) -> list[str]:
    joined = re.sub(r"\\\n", " ", text)
    lines = []
    for raw in joined.splitlines():
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if line:
            lines.append(line)
    return lines


def parse_lock(text: str) -> list[LockedRequirement]:
    """Every pinned requirement with its hashes; refuse anything unpinned or unhashed."""
    requirements = []
    for line in _logical_lines(text):
        if line.startswith("-"):
            raise BadInput(f"lock line {line.split()[0]!r} is not allowed in a manifest lock")
        match = _PIN.match(line)
        if not match:
            raise BadInput(f"lock requirement {line.split()[0]!r} is not pinned with ==")
        hashes = frozenset(_HASH.findall(line))
        if not hashes:
            raise BadInput(f"lock requirement {match.group('name')} has no --hash")
        requirements.append(LockedRequirement(match.group("name"), match.group("version"), hashes))
    if not requirements:
        raise BadInput("the lock pins nothing")
    return requirements


def compile_lock(requirements_in: Path) -> str:
    """Run pip-compile on a requirements file and return the hashed lock text.

    Runs in a scratch folder holding only a copy of the file, so the lock's header and
    `# via` notes name no path of this machine.
    """
    if shutil.which("pip-compile") is None and not _piptools_importable():
        raise EnvironmentProblem("pip-tools is not installed in replay's environment")
    with tempfile.TemporaryDirectory() as scratch:
        shutil.copy(requirements_in, Path(scratch) / "requirements.in")
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "piptools",
                "compile",
                *PIP_COMPILE_ARGS,
                "-o",
                "requirements.lock",
                "requirements.in",
            ],
            cwd=scratch,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            lines = [line for line in result.stderr.splitlines() if line.strip()]
            raise BadInput(
                f"pip-compile could not lock {requirements_in.name}: "
                + (lines[-1] if lines else "no message")
            )
        return (Path(scratch) / "requirements.lock").read_text()


def _piptools_importable() -> bool:
    return importlib.util.find_spec("piptools") is not None
