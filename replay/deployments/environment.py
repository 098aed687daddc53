"""`replay up`: the engine, registry and base image every build and replay needs."""

from __future__ import annotations

from dataclasses import dataclass

from replay.settings import Settings, load_settings


@dataclass(frozen=True)
class Environment:
    engine_version: str
    registry: str
    base_image: str


def up(settings: Settings | None = None) -> Environment:
    """Start (or reuse) the Docker engine and local registry; make the default base image."""
    from replay.images import base, host
    from replay.images.engine import docker_client
    from replay.progress import step

    settings = settings or load_settings()
    with step("Docker engine"):
        version = host.ensure_engine()
    with step(f"registry {settings.registry}"):
        host.ensure_registry(settings.registry, settings.cache / "registry")
    with step("base image") as progress:
        client = docker_client()
        if settings.base_image:
            reference = base.resolve_digest(client, settings.base_image)
        else:
            reference = base.default_base(
                client, settings.default_base_repository, settings.cache, progress
            )
    return Environment(engine_version=version, registry=settings.registry, base_image=reference)
