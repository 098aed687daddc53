"""Debian packages for an image: `.deb` files fetched on the host, with apt, for the base
image's own release and architecture.

apt is the resolver. It is pointed at the base image's dpkg status (read from outside
the image: nothing in it is started), a sources list for the image's release on the
mirror this machine's apt already uses, and the host's Debian archive keyring; it then
downloads the packages named and whatever they need that the base does not already
have, each checked against the signed index. The build installs those files with
`dpkg -i`, the network off. Nothing here touches the host's own package state.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from replay.images.base import apt_mirror
from replay.images.host import run_streamed
from replay.images.inspection import read_files
from replay.manifests.canonical import sha256_file

from replay.errors import BadInput, EnvironmentProblem

if TYPE_CHECKING:
    import docker

STATUS = "/var/lib/dpkg/status"
OS_RELEASE = "/etc/os-release"
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
MAX_STATUS = 64 << 20  # bytes of a dpkg status read (a large image's is a few MB)
# `Inst NAME [OLD VERSION] (VERSION RELEASE [ARCH])`: one package apt would unpack
_INSTALL = re.compile(
    r"^Inst (?P<name>\S+) (?:\[[^\]]*\] )?\((?P<version>\S+) .*\[(?P<arch>[^\]]+)\]\)"
)
_REMOVE = re.compile(r"^Remv (?P<name>\S+)")
_UNKNOWN = re.compile(r"^E: Unable to locate package (?P<name>\S+)")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class BaseRelease:
    """What apt needs to know of a base image: its Debian release, its architecture and
    the packages dpkg has installed in it."""

    codename: str
    architecture: str
    status: bytes


def parse_os_release(text: str) -> dict[str, str]:
    """`/etc/os-release` as a dict (`KEY=value`, values optionally quoted)."""
    fields = {}
    for line in text.splitlines():
        key, equals, value = line.strip().partition("=")
        if equals and not key.startswith("#"):
            fields[key] = value.strip().strip("\"'")
    return fields


def native_architecture(status: str) -> str | None:
    """The architecture of dpkg itself in a dpkg status file: the image's own."""
    for stanza in status.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in stanza.splitlines() if ": " in line and line[0] != " "
        )
        if fields.get("Package") == "dpkg":
            return fields.get("Architecture")
    return None


def base_release(client: docker.DockerClient, image: str) -> BaseRelease:
    """The base image's Debian release, architecture and dpkg status, read from outside."""
    files = read_files(client, image, [OS_RELEASE, STATUS], limit=MAX_STATUS)
    release, status = files[OS_RELEASE], files[STATUS]
    if status is None:
        raise BadInput(
            f"base image {image} has no {STATUS}: system_packages need a Debian base image"
        )
    if len(status) >= MAX_STATUS:
        raise BadInput(f"base image {image}: {STATUS} is larger than {MAX_STATUS >> 20} MB")
    fields = parse_os_release((release or b"").decode("utf-8", errors="replace"))
    codename = fields.get("VERSION_CODENAME", "")
    if fields.get("ID") != "debian" or not codename:
        found = fields.get("PRETTY_NAME") or fields.get("ID") or "no /etc/os-release"
        raise BadInput(
            f"base image {image} is {found}, not a Debian release apt can name: "
            "system_packages need a Debian base image (bookworm or later)"
        )
    architecture = native_architecture(status.decode("utf-8", errors="replace"))
    if architecture is None:
        raise BadInput(f"base image {image}: its {STATUS} does not list dpkg")
    return BaseRelease(codename, architecture, status)


def _security_mirror() -> str | None:
    """The Debian security archive this machine's apt uses, if it uses one."""
    for source in [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*")]:
        try:
            text = source.read_text()
        except OSError:
            continue
        found = re.search(r"(https?://\S+/debian-security)\s", text)
        if found:
            return found.group(1)
    return None


def sources_list(codename: str, mirror: str, security: str | None, keyring: Path) -> str:
    """A one-line-style sources list for `codename` (main, its updates and, where this
    machine has one, its security archive), every index checked with `keyring`."""
    lines = [
        f"deb [signed-by={keyring}] {mirror} {codename} main",
        f"deb [signed-by={keyring}] {mirror} {codename}-updates main",
    ]
    if security:
        lines.append(f"deb [signed-by={keyring}] {security} {codename}-security main")
    return "\n".join(lines) + "\n"


def apt_options(
    scratch: Path, lists: Path, archives: Path, architecture: str, keyring: Path
) -> list[str]:
    """apt's options that make it resolve against the image, not the host: the image's
    status, a sources list and keyring of ours (none of the host's sources, preferences
    or trusted keys), the image's architecture alone, and our own caches. The host's
    apt.conf still applies (its proxy, say)."""
    empty = scratch / "empty"
    options = {
        "Dir::State::status": scratch / "status",
        "Dir::State::extended_states": scratch / "extended_states",
        "Dir::State::Lists": lists,
        "Dir::Cache": scratch / "cache",
        "Dir::Cache::archives": archives,
        "Dir::Etc::SourceList": scratch / "sources.list",
        "Dir::Etc::SourceParts": empty,
        "Dir::Etc::Preferences": empty / "preferences",
        "Dir::Etc::PreferencesParts": empty,
        "Dir::Etc::Trusted": keyring,
        "Dir::Etc::TrustedParts": empty,
        "APT::Architecture": architecture,
        "APT::Architectures": architecture,
        "APT::Get::Assume-Yes": "true",
        "APT::Install-Recommends": "false",
        "APT::Install-Suggests": "false",
    }
    return [argument for key, value in options.items() for argument in ("-o", f"{key}={value}")]


def planned_installs(lines: list[str]) -> list[tuple[str, str, str]]:
    """(name, version, architecture) of each package a simulated install would unpack."""
    return [
        (match["name"], match["version"], match["arch"])
        for match in map(_INSTALL.match, lines)
        if match
    ]


def _quoted(text: str, bad: str) -> str:
    """apt's QuoteString: the characters in `bad`, `%` and anything unprintable as %xx."""
    return "".join(
        f"%{ord(c):02x}" if c in bad or c == "%" or not " " < c < "\x7f" else c for c in text
    )


def deb_filename(name: str, version: str, architecture: str) -> str:
    """The name apt gives a downloaded package (an epoch's `:` becomes `%3a`)."""
    return f"{_quoted(name, '_:')}_{_quoted(version, '_:')}_{_quoted(architecture, '_:.')}.deb"


def _deb_fields(path: Path) -> tuple[str, str, str]:
    """(Package, Version, Architecture) as the .deb's own control file says."""
    result = subprocess.run(
        ["dpkg-deb", "--field", str(path), "Package", "Version", "Architecture"],
        capture_output=True,
        text=True,
    )
    fields = parse_os_release(result.stdout.replace(": ", "="))
    return fields.get("Package", ""), fields.get("Version", ""), fields.get("Architecture", "")


def _apt_error(output: list[str]) -> str:
    errors = [line for line in output if line.startswith(("E:", "Err:"))]
    return (errors[0] if errors else (output[-1] if output else "no output")).strip()


def fetch_debs(
    client: docker.DockerClient,
    image: str,
    packages: tuple[str, ...],
    cache: Path,
    progress: Progress = lambda _: None,
) -> list[dict[str, str]]:
    """Download `packages` and what they need that `image` lacks, for its release and
    architecture, into `cache/archives` (reused when already there); describe each."""
    if not packages:
        return []
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise EnvironmentProblem(
            "system_packages need apt-get on this machine to fetch .deb files for the "
            "base image (a Debian or Ubuntu host); none was found"
        )
    if not KEYRING.is_file():
        raise EnvironmentProblem(
            f"no Debian archive keyring at {KEYRING}: install it "
            "(`apt-get install debian-archive-keyring`) to check the packages' signatures"
        )
    release = base_release(client, image)
    progress(f"base image is Debian {release.codename} ({release.architecture})")
    lists = cache / "lists" / f"{release.codename}-{release.architecture}"
    archives = cache / "archives"
    for folder in (lists / "partial", archives / "partial"):
        folder.mkdir(parents=True, exist_ok=True)
    mirror = apt_mirror()
    with tempfile.TemporaryDirectory(prefix="replay-apt-") as work:
        scratch = Path(work)
        (scratch / "empty").mkdir()
        (scratch / "cache").mkdir()
        (scratch / "status").write_bytes(release.status)
        (scratch / "extended_states").touch()
        (scratch / "sources.list").write_text(
            sources_list(release.codename, mirror, _security_mirror(), KEYRING)
        )
        apt = [
            "apt-get",
            "-q",
            *apt_options(scratch, lists, archives, release.architecture, KEYRING),
        ]
        code, output = run_streamed([*apt, "update"], lambda line: progress(f"apt: {line[:80]}"))
        if code != 0 or any(line.startswith(("E:", "Err:")) for line in output):
            raise EnvironmentProblem(
                f"apt-get update for Debian {release.codename} at {mirror} failed: "
                f"{_apt_error(output)}"
            )
        plan = _run_apt([*apt, "install", "--simulate", *packages], release, mirror, progress)
        removed = [match["name"] for match in map(_REMOVE.match, plan) if match]
        if removed:
            raise BadInput(
                f"installing system packages {' '.join(packages)} would remove {removed[0]} "
                "from the base image"
            )
        installs = planned_installs(plan)
        if installs:
            _run_apt([*apt, "install", "--download-only", *packages], release, mirror, progress)
    debs = []
    for name, version, architecture in installs:
        path = archives / deb_filename(name, version, architecture)
        if not path.is_file():
            raise EnvironmentProblem(
                f"apt-get reported {path.name} downloaded, but it is not there"
            )
        if _deb_fields(path) != (name, version, architecture):
            path.unlink()  # a file that is not what its name says: fetched again next time
            raise EnvironmentProblem(f"{path.name} is not {name} {version} ({architecture})")
        debs.append(
            {
                "name": name,
                "version": version,
                "architecture": architecture,
                "filename": path.name,
                "sha256": sha256_file(path),
            }
        )
    return debs


def _run_apt(
    command: list[str], release: BaseRelease, mirror: str, progress: Progress
) -> list[str]:
    """Run an apt-get install (simulated or download-only); its output lines. A package
    apt cannot find is the user's mistake (exit 2), anything else the machine's."""
    code, output = run_streamed(command, lambda line: progress(f"apt: {line[:80]}"))
    if code == 0:
        return output
    for match in map(_UNKNOWN.match, output):
        if match:
            raise BadInput(
                f"system package {match['name']} is not in Debian {release.codename} "
                f"({release.architecture}) at {mirror}: check its name (apt-cache search)"
            )
    problem = _apt_error(output)
    if "no installation candidate" in problem or "held broken packages" in problem:
        raise BadInput(f"system packages for Debian {release.codename}: {problem}")
    raise EnvironmentProblem(f"apt-get for Debian {release.codename} failed: {problem}")
