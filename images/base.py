"""Base images: resolve any reference to `name@sha256:…`, or bootstrap one offline.

A manifest must name its base by digest, so a rebuild years later starts from the very
same bytes. Users with a registry name any image (`python:3.11-slim`); machines with
no registry access get a Debian bookworm + Python 3.11 root filesystem made by
debootstrap, imported, and pushed to the local registry to obtain a real digest.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from replay.images.engine import in_engine, push_image
from replay.images.host import apt_install, run_streamed

from replay.errors import BadInput, EnvironmentProblem

if TYPE_CHECKING:
    import docker

DEFAULT_TAG = "3.11-bookworm"
DEBIAN_SUITE = "bookworm"
BOOTSTRAP_PACKAGES = "python3,python3-venv,python3-pip,ca-certificates"
_DIGEST = re.compile(r"^(?P<name>[^@\s]+)@(?P<digest>sha256:[0-9a-f]{64})$")

Progress = Callable[[str], None]


def repository_of(reference: str) -> str:
    """`host:5000/a/b:tag` → `host:5000/a/b` (a port's colon is not a tag's)."""
    name = reference.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name = name[: len(name) - len(last)] + last.split(":", 1)[0]
    return name


def qualified(reference: str) -> str:
    """`reference` with its registry named, as builders other than Docker's need it:
    `python@sha256:…` is `docker.io/library/python@sha256:…`."""
    first, _, rest = reference.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return reference
    return f"docker.io/{reference}" if rest else f"docker.io/library/{reference}"


def resolve_digest(client: docker.DockerClient, reference: str) -> str:
    """Resolve an image reference to `repository@sha256:…`, preferring the registry's word."""
    import docker

    match = _DIGEST.match(reference)
    if match:
        return reference
    repository = repository_of(reference)
    try:
        return f"{repository}@{client.images.get_registry_data(reference).id}"
    except docker.errors.APIError:
        pass  # offline or private: a local copy that came from a registry still has its digest
    try:
        image = client.images.get(reference)
    except docker.errors.ImageNotFound:
        raise BadInput(
            f"base image {reference} is neither in a reachable registry nor local"
        ) from None
    for repo_digest in image.attrs.get("RepoDigests") or []:
        if repository_of(repo_digest) == repository:
            return str(repo_digest)
    raise BadInput(
        f"base image {reference} has no registry digest (it was never pushed or pulled); "
        "push it to a registry first so a rebuild can find the same bytes"
    )


def default_base(
    client: docker.DockerClient, repository: str, cache: Path, progress: Progress
) -> str:
    """The bootstrapped Python 3.11 base in the local registry, made once and reused."""
    reference = f"{repository}:{DEFAULT_TAG}"
    try:
        return resolve_digest(client, reference)
    except BadInput:
        pass
    if not in_engine(client, reference):
        _import_rootfs(client, repository, _bootstrap_rootfs(cache, progress), progress)
    progress(f"pushing {reference}")
    return push_image(client, repository, DEFAULT_TAG)


def _bootstrap_rootfs(cache: Path, progress: Progress) -> Path:
    """A cached tarball of a minimal Debian root filesystem with Python 3.11."""
    tarball = cache / "base" / f"debian-{DEBIAN_SUITE}-python3.tar"
    if tarball.exists():
        return tarball
    if shutil.which("debootstrap") is None:
        apt_install("debootstrap")
    tarball.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=tarball.parent) as work:
        root = Path(work) / "rootfs"
        command = [
            "debootstrap",
            "--variant=minbase",
            f"--include={BOOTSTRAP_PACKAGES}",
            DEBIAN_SUITE,
            str(root),
            apt_mirror(),
        ]
        code, output = run_streamed(command, lambda line: progress(f"debootstrap: {line[:80]}"))
        if code != 0:
            raise EnvironmentProblem("debootstrap failed: " + " | ".join(output[-3:]))
        # Package caches are not part of the image's behaviour; drop them to save space.
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for item in (root / leftover).glob("*"):
                if item.is_file():
                    item.unlink()
        partial = tarball.with_suffix(".partial")
        subprocess.run(["tar", "-C", str(root), "-cf", str(partial), "."], check=True)
        partial.rename(tarball)
    return tarball


def apt_mirror() -> str:
    """The Debian mirror this machine's apt already uses (debootstrap's default otherwise)."""
    for source in [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*")]:
        try:
            text = source.read_text()
        except OSError:
            continue
        found = re.search(r"(?:URIs:\s*|deb\s+(?:\[[^\]]*\]\s+)?)(https?://\S+/debian)\s", text)
        if found:
            return found.group(1)
    return "http://deb.debian.org/debian"


def _import_rootfs(
    client: docker.DockerClient, repository: str, tarball: Path, progress: Progress
) -> None:
    progress(f"importing {tarball.name} as {repository}:{DEFAULT_TAG}")
    client.api.import_image_from_file(
        str(tarball),
        repository=repository,
        tag=DEFAULT_TAG,
        changes=["ENV LANG=C.UTF-8", 'CMD ["python3"]'],
    )


def python_version(client: docker.DockerClient, image: str) -> str:
    """`major.minor` of the `python3` in an image (asked inside it, network off)."""
    import docker

    try:
        output = client.containers.run(
            image,
            ["python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            remove=True,
            network_mode="none",
            entrypoint=[],
        )
    except docker.errors.DockerException as error:
        raise BadInput(f"base image {image} has no working python3: {error}") from None
    return str(output.decode().strip())
