"""Recover a manifest's image: local → registry by digest → archive → rebuild.

Whichever path is taken, the image is only used once the runner inside it reports
the fingerprint recorded for the manifest (see `replay.execution.warm`).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from replay.deployments.building import build
from replay.images.build import find_image
from replay.manifests.manifest import Manifest
from replay.settings import Settings
from replay.stores.blobs import BlobStore, open_blob_store
from replay.stores.manifests import ManifestStore

if TYPE_CHECKING:
    import docker

PATHS = ("local", "registry", "archive", "rebuild")


@dataclass(frozen=True)
class RecoveredImage:
    image_id: str
    path: str  # one of PATHS


def _pull(client: docker.DockerClient, manifest: Manifest, repo_digest: str) -> Any | None:
    import docker

    try:
        client.images.pull(repo_digest)
    except docker.errors.DockerException:
        return None  # registry wiped or unreachable: try the next path
    return find_image(client, manifest.manifest_id)


def _load_archive(
    client: docker.DockerClient, manifest: Manifest, blobs: BlobStore, digest: str
) -> Any | None:
    if not blobs.has(digest):
        return None
    with tempfile.TemporaryDirectory() as scratch:
        archive = blobs.get(digest, Path(scratch) / "image.tar")
        with open(archive, "rb") as handle:
            client.images.load(handle)
    return find_image(client, manifest.manifest_id)


def recover_image(
    client: docker.DockerClient, manifest: Manifest, store: ManifestStore, settings: Settings
) -> RecoveredImage:
    """The manifest's image on this engine, and which path brought it here."""
    local = find_image(client, manifest.manifest_id)
    if local is not None:
        return RecoveredImage(local.id, "local")
    record = store.build_record(manifest.manifest_id)
    if record is not None and record.repo_digest:
        pulled = _pull(client, manifest, record.repo_digest)
        if pulled is not None:
            return RecoveredImage(pulled.id, "registry")
    if record is not None and record.archive_sha256:
        loaded = _load_archive(
            client, manifest, open_blob_store(settings.blobs), record.archive_sha256
        )
        if loaded is not None:
            return RecoveredImage(loaded.id, "archive")
    return RecoveredImage(build(manifest.manifest_id, settings=settings).image_id, "rebuild")
