"""`replay publish`: keep a manifest's image for the years ahead.

The image is in the registry (a build pushes it there, and records its repo digest;
one built before, or lost by the registry since, is pushed now) and is saved with
`docker save` into the content-addressed blob store (its sha256 recorded), so a replay
can recover it after `docker rmi`, and again after the registry is wiped.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from replay.deployments.building import build
from replay.images.engine import docker_client, lost_by_registry, push_image
from replay.progress import step
from replay.settings import Settings, load_settings
from replay.stores.blobs import open_blob_store
from replay.stores.manifests import manifest_store


@dataclass(frozen=True)
class Publication:
    manifest_id: str
    repo_digest: str
    archive_sha256: str
    archive_bytes: int


def publish(manifest_id: str, *, settings: Settings | None = None) -> Publication:
    settings = settings or load_settings()
    built = build(manifest_id, settings=settings)
    store = manifest_store(settings)
    manifest = store.load(built.manifest_id)
    client = docker_client(settings.docker_host, connect_timeout=settings.connect_timeout)
    image = client.images.get(built.image_id)
    recorded = store.build_record(manifest.manifest_id)
    pushed = recorded.repo_digest if recorded is not None and recorded.builder else None
    if pushed is not None and not lost_by_registry(client, pushed):
        repo_digest = pushed  # pushed by the build itself (and not lost since)
    else:  # built before builds went through the registry, or the registry lost it since
        repository = f"{settings.registry}/replay/{manifest.name}"
        with step(f"push {repository}:{manifest.short_id}") as progress:
            image.tag(repository, tag=manifest.short_id)
            repo_digest = push_image(client, repository, manifest.short_id, progress)
    with tempfile.TemporaryDirectory() as scratch, step("save image archive") as progress:
        archive = Path(scratch) / "image.tar"
        with open(archive, "wb") as handle:
            for chunk in image.save(named=True):
                handle.write(chunk)
                progress(f"{handle.tell() / 1e6:.0f} MB")
        archive_sha256 = open_blob_store(settings.blobs).put(archive)
        size = archive.stat().st_size
    store.attach_publication(manifest.manifest_id, repo_digest, archive_sha256)
    return Publication(manifest.manifest_id, repo_digest, archive_sha256, size)
