"""An image read from outside, with nothing in it started.

A container is created (never started) and its files are copied out through the engine
as a tar stream, hashed as they pass and never written to disk. This is how an image is
checked before anything in it runs: its entrypoint, its runner file and, when it must be
refused, the files that say why (the deployment's source and model, the installed files
that no longer match their distribution's RECORD).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from replay.images.build import (
    CONTAINER_ENV,
    ENTRYPOINT,
    ENVIRONMENT_PATH,
    RUNNER_PATH,
    fingerprint_difference,
)
from replay.images.runner import is_record, modified_files, recorded_files
from replay.manifests.manifest import Manifest

if TYPE_CHECKING:
    import docker

MAX_RECORD = 16 << 20  # bytes of one RECORD file read (the largest known are about 1 MB)


@dataclass(frozen=True)
class OutsideView:
    """What an image holds where replay put it, read without running it."""

    entrypoint: list[str] | None
    runner_sha256: str | None  # None: no runner file at its place


class _Chunks(io.RawIOBase):
    """The engine's archive stream (an iterator of byte chunks) as a readable file."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._left = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._left:
            self._left = next(self._chunks, b"")
            if not self._left:
                return 0
        size = min(len(buffer), len(self._left))
        buffer[:size] = self._left[:size]
        self._left = self._left[size:]
        return size


@contextlib.contextmanager
def _created(client: docker.DockerClient, image_id: str) -> Iterator[Any]:
    """A container of the image that never starts (no network, removed afterwards)."""
    import docker

    container = client.containers.create(
        image_id, network_mode="none", labels={"replay.role": "inspection"}
    )
    try:
        yield container
    finally:
        with contextlib.suppress(docker.errors.DockerException):
            container.remove(force=True)


def _members(container: Any, path: str) -> Iterator[tuple[str, tarfile.TarInfo, Any]]:
    """Each file under `path` in the container: its path relative to `path`, its entry,
    and its bytes as a stream (regular files only; None for the rest)."""
    chunks, _ = container.get_archive(path)
    with tarfile.open(fileobj=io.BufferedReader(_Chunks(iter(chunks))), mode="r|") as archive:
        for member in archive:
            # the archive's first part is `path`'s own name
            relative = os.path.normpath(member.name).partition("/")[2]
            yield relative, member, archive.extractfile(member) if member.isfile() else None


def _sha256(stream: Any) -> str:
    digest = hashlib.sha256()
    for chunk in iter(lambda: stream.read(1 << 20), b""):
        digest.update(chunk)
    return digest.hexdigest()


def read_files(
    client: docker.DockerClient, image_id: str, paths: list[str], limit: int = MAX_RECORD
) -> dict[str, bytes | None]:
    """The bytes of each absolute path in the image (at most `limit` of each), None where
    there is no regular file; a symbolic link is followed inside the image (a few hops:
    Debian's `/etc/os-release` points to `../usr/lib/os-release`)."""
    import docker

    found: dict[str, bytes | None] = {}
    with _created(client, image_id) as container:
        for path in paths:
            found[path], target = None, path
            for _ in range(8):
                try:
                    kind, value = _read_first(container, target, limit)
                except docker.errors.NotFound:
                    break
                if kind == "file":
                    found[path] = value
                    break
                if kind != "link":
                    break
                target = os.path.normpath(os.path.join(os.path.dirname(target), value.decode()))
    return found


def _read_first(container: Any, path: str, limit: int) -> tuple[str, bytes]:
    """The archive's first entry (the path itself): ("file", its bytes), ("link", where
    it points) or ("other", b""); the stream is read to its end either way."""
    first: tuple[str, bytes] | None = None
    for _, member, stream in _members(container, path):
        if first is None and stream is not None:
            first = ("file", stream.read(limit))
        elif first is None:
            first = ("link", member.linkname.encode()) if member.issym() else ("other", b"")
    return first or ("other", b"")


def outside_view(client: docker.DockerClient, image_id: str) -> OutsideView:
    """The image's entrypoint and runner file, read without starting it."""
    import docker

    entrypoint = client.images.get(image_id).attrs["Config"].get("Entrypoint")
    with _created(client, image_id) as container:
        try:
            found = [_sha256(stream) for _, _, stream in _members(container, RUNNER_PATH) if stream]
        except docker.errors.NotFound:
            found = []
    return OutsideView(entrypoint, found[0] if len(found) == 1 else None)


def outside_fingerprint(client: docker.DockerClient, image_id: str) -> dict[str, Any]:
    """The parts of the runner's fingerprint that name a changed file, read without
    starting the image: the deployment's source and model files and the installed files
    that differ from their RECORD. Slow (every installed file passes through): only
    for saying why an image is refused."""
    import docker

    deployment = CONTAINER_ENV["REPLAY_DEPLOYMENT_DIR"]
    source: dict[str, str] = {}
    model: dict[str, str] = {}
    installed: dict[str, str] = {}
    records: dict[str, str] = {}
    with _created(client, image_id) as container:
        with contextlib.suppress(docker.errors.NotFound):
            for relative, member, stream in _members(container, deployment):
                if member.isfile():
                    folder = model if relative.split("/")[0] == "model" else source
                    name = relative.partition("/")[2] if folder is model else relative
                    folder[name] = _sha256(stream)
                elif member.issym():
                    source[relative] = "link:" + member.linkname
        with contextlib.suppress(docker.errors.NotFound):
            for relative, member, stream in _members(container, ENVIRONMENT_PATH):
                if member.issym():
                    installed[relative] = "link:" + member.linkname
                elif stream is not None and is_record(relative):
                    data = stream.read(MAX_RECORD)
                    installed[relative] = hashlib.sha256(data).hexdigest()
                    records[relative] = data.decode("utf-8", errors="replace")
                elif stream is not None:
                    installed[relative] = _sha256(stream)
    return {
        "source_files": dict(sorted(source.items())),
        "model_files": dict(sorted(model.items())),
        "environment": {"modified": modified_files(installed, recorded_files(records))},
    }


def unstarted_refusal(
    client: docker.DockerClient,
    image_id: str,
    *,
    manifest: Manifest,
    proven: bool,
    fingerprint: dict[str, Any] | None,
) -> str | None:
    """Why the image must not start for `manifest`, read from outside it, or None.

    `proven` says whether its id is one the manifest's signed build record lists: then
    only its entrypoint and runner are read. Otherwise it is refused, and the recorded
    `fingerprint` (if any) is compared with the image's files to name what changed."""
    view = outside_view(client, image_id)
    if view.entrypoint != ENTRYPOINT:
        return f"has the entrypoint {view.entrypoint}, not replay's runner {ENTRYPOINT}"
    runner = manifest.image.runner_sha256
    if view.runner_sha256 != runner:
        found = view.runner_sha256[:12] if view.runner_sha256 else "nothing"
        return f"has a runner {RUNNER_PATH} of sha256 {found}, not the manifest's {runner[:12]}"
    if proven:
        return None
    if fingerprint is not None:
        outside = outside_fingerprint(client, image_id)
        recorded = {
            "source_files": fingerprint.get("source_files"),
            "model_files": fingerprint.get("model_files"),
            "environment": {"modified": fingerprint.get("environment", {}).get("modified")},
        }
        difference = fingerprint_difference(recorded, outside)
        if difference != "no difference":
            return f"differs from the image built for manifest {manifest.short_id} ({difference})"
    return f"is not an image built for manifest {manifest.short_id}: it was changed or replaced"
