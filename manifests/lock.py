"""Hashed dependency locks: made with pip-tools, parsed for the build.

A lock pins every distribution (`name==version`) with the sha256 of each file that
may be installed for it. `pip install --require-hashes` refuses anything else.

Resolving takes tens of seconds, so a lock is reused whenever what it is made from is
unchanged: the requirements text, the Python and platform it is resolved for and the
wheels' platforms, and pip's index settings. `LockInputs.key` names that combination.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from replay.manifests.canonical import canonical_json, sha256_bytes

from replay.errors import BadInput, EnvironmentProblem

_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==(?P<version>[^\s;]+)")
_HASH = re.compile(r"--hash=sha256:(?P<hash>[0-9a-f]{64})")

# Index settings are one machine's: a manifest must not carry them. These options shape
# the lock's text, so they are part of a lock's key (verbosity is not: see compile_lock).
PIP_COMPILE_ARGS = [
    "--generate-hashes",
    "--allow-unsafe",  # pins pip/setuptools too, or --require-hashes installs can fail
    "--strip-extras",
    "--no-emit-index-url",
    "--no-emit-find-links",
    "--no-emit-trusted-host",
]
# Bumped when the recipe of the key changes, so that no lock keyed the old way is taken.
KEY_FORMAT = "replay lock key 1"

# pip options (as `pip config list` names them) that decide which distributions the
# resolver sees. Their values may hold credentials (`https://user:token@index/`): they
# are only ever hashed.
RESOLVER_OPTIONS = frozenset(
    {
        "index-url",
        "extra-index-url",
        "find-links",
        "no-index",
        "constraint",
        "build-constraint",  # may change the metadata a source distribution gives
        "pre",
        "all-releases",
        "only-final",
        "ignore-requires-python",
        "use-feature",
        "use-deprecated",
        "only-binary",
        "no-binary",
        "prefer-binary",
        "uploaded-prior-to",
    }
)


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


def unmet_requirement(lock_text: str, requirements_text: str) -> str | None:
    """The first requirement of `requirements_text` the lock does not pin as asked, or
    None. Only plain lines are checked (`name`, `name==version`, with extras): a line
    with an environment marker may rightly be absent, and other specifiers need a
    resolver to judge."""
    locked = {item.key: item.version for item in parse_lock(lock_text)}
    for line in _logical_lines(requirements_text):
        match = _PLAIN.match(line)
        if line.startswith("-") or match is None:
            continue
        name, version = normalise(match.group("name")), match.group("version")
        if name not in locked:
            return f"{match.group('name')} is not pinned"
        if version is not None and locked[name] != version:
            return f"{match.group('name')} is pinned at {locked[name]}, not {version}"
    return None


_PLAIN = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*"
    r"(?:(==\s*(?P<version>[^\s,;=<>!~*]+))|(?:[<>!~=][^;]*))?$"
)


def marker_environment() -> dict[str, str]:
    """The environment markers pip-compile resolves against on this host. The kernel's
    release and build string (`platform_release`, `platform_version`) are left out: no
    requirement names them in practice, and they would keep every machine from reusing
    another's lock."""
    return {
        "implementation_name": sys.implementation.name,
        "os_name": os.name,
        "platform_machine": platform.machine(),
        "platform_python_implementation": platform.python_implementation(),
        "platform_system": platform.system(),
        "python_full_version": platform.python_version(),
        "python_version": ".".join(platform.python_version_tuple()[:2]),
        "sys_platform": sys.platform,
    }


def index_settings() -> dict[str, str]:
    """pip's settings that decide what the resolver sees, as pip-compile (run with this
    Python) reads them from pip's configuration files and PIP_* variables; a constraint
    file's contents are added as their sha256. Secret-bearing: hash, never store."""
    result = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True
    )
    if result.returncode != 0:
        raise EnvironmentProblem(
            "`pip config list` failed in replay's environment: "
            + (result.stderr.strip().splitlines() or ["no message"])[-1]
        )
    return resolver_settings(result.stdout)


def resolver_settings(config_list: str) -> dict[str, str]:
    """The resolver's settings among `pip config list` lines (`section.option='value'`)."""
    settings: dict[str, str] = {}
    for line in config_list.splitlines():
        name, equals, raw = line.partition("=")
        option = name.rpartition(".")[2]
        if not equals or option not in RESOLVER_OPTIONS:
            continue
        try:
            value = str(ast.literal_eval(raw))
        except (ValueError, SyntaxError):
            value = raw
        settings[name] = value
        if option in {"constraint", "build-constraint"}:  # a file may come to hold other pins
            for index, item in enumerate(value.split()):
                if "://" in item and not item.startswith("file://"):
                    continue  # a remote file: its address is what can be known here
                path = Path(item.removeprefix("file://"))
                if path.is_file():
                    settings[f"{name}#{index}.sha256"] = sha256_bytes(path.read_bytes())
    return settings


@dataclass(frozen=True)
class LockInputs:
    """What a lock is made from, each part as a hash or a public fact (no index URL,
    no credential): stored beside a lock so a reader can check the key it is kept under."""

    requirements_sha256: str
    markers: Mapping[str, str]
    platforms: tuple[str, ...]
    index_sha256: str

    def document(self) -> dict[str, Any]:
        return {
            "format": KEY_FORMAT,
            "compile_args": PIP_COMPILE_ARGS,
            "requirements_sha256": self.requirements_sha256,
            "markers": dict(self.markers),
            "platforms": list(self.platforms),
            "index_sha256": self.index_sha256,
        }

    @property
    def key(self) -> str:
        return sha256_bytes(canonical_json(self.document()))


def lock_inputs(
    requirements: bytes,
    platforms: list[str] | tuple[str, ...],
    index: Mapping[str, str],
    markers: Mapping[str, str] | None = None,
) -> LockInputs:
    """The inputs of a lock of `requirements` resolved on this host (or for `markers`)
    whose wheels are for `platforms`, with pip's `index` settings (see index_settings)."""
    return LockInputs(
        requirements_sha256=sha256_bytes(requirements),
        markers=dict(marker_environment() if markers is None else markers),
        platforms=tuple(platforms),
        index_sha256=sha256_bytes(canonical_json(dict(index))),
    )


def compile_lock(requirements_in: Path, progress: Callable[[str], None] = lambda _: None) -> str:
    """Run pip-compile on a requirements file and return the hashed lock text, telling
    `progress` which distribution it is resolving or hashing as it goes.

    Runs in a scratch folder holding only a copy of the file, so the lock's header and
    `# via` notes name no path of this machine.
    """
    if shutil.which("pip-compile") is None and not _piptools_importable():
        raise EnvironmentProblem("pip-tools is not installed in replay's environment")
    with tempfile.TemporaryDirectory() as scratch:
        shutil.copy(requirements_in, Path(scratch) / "requirements.in")
        command = [
            sys.executable,
            "-m",
            "piptools",
            "compile",
            *PIP_COMPILE_ARGS,
            "--verbose",  # names each distribution as it is resolved and hashed
            "-o",
            "requirements.lock",
            "requirements.in",
        ]
        process = subprocess.Popen(
            command, cwd=scratch, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        output: list[str] = []
        assert process.stdout is not None  # stdout=PIPE
        for line in process.stdout:
            output.append(line.rstrip())
            shown = compile_progress(line)
            if shown:
                progress(shown)
        if process.wait() != 0:
            lines = [line for line in output if line.strip()]
            errors = [line for line in lines if "error" in line.lower()]
            raise BadInput(
                f"pip-compile could not lock {requirements_in.name}: "
                + ((errors or lines)[-1].strip() if lines else "no message")
            )
        return (Path(scratch) / "requirements.lock").read_text()


def compile_progress(line: str) -> str | None:
    """What a user is shown of one line of pip-compile's verbose output: the round, the
    distribution collected and the file downloaded or hashed, by name only (never a
    URL or a path, which may name an index and its credentials), or None."""
    words = line.split()
    if not words:
        return None
    if words[0] == "ROUND" and len(words) == 2:
        return f"resolving, round {words[1]}"
    if words[0] in {"Collecting", "Downloading", "Processing", "Hashing"} and len(words) > 1:
        # a URL's last path segment only: its host part may carry user:password@
        path = urlsplit(words[1]).path if "://" in words[1] else words[1]
        target = path.rstrip("/").rsplit("/", 1)[-1] or "a URL"
        return f"{words[0].lower()} {target}"[:90]
    if line.strip() == "Generating hashes:":
        return "generating hashes"
    return None


def _piptools_importable() -> bool:
    return importlib.util.find_spec("piptools") is not None
