"""`replay up`: the engine, builder, registry and base image every build and replay
needs."""

from __future__ import annotations

from dataclasses import dataclass

from replay.deployments.building import builder_of
from replay.deployments.capturing import base_image_for
from replay.images import host
from replay.images.engine import docker_client
from replay.progress import step
from replay.settings import Settings, load_settings, without_password


@dataclass(frozen=True)
class HostEnvironment:
    """What `replay up` found or started on this host."""

    engine_version: str
    builder: str
    registry: str
    base_image: str
    home: str  # replay's state folder, as found from here


def up(settings: Settings | None = None) -> HostEnvironment:
    """Start (or reuse) the Docker engine and local registry, install the builder; make
    the default base image."""
    settings = settings or load_settings()
    with step("Docker engine"):
        version = host.ensure_engine(settings.docker_host, settings.connect_timeout)
    with step("builder"):
        host.ensure_builder()
        builder = builder_of(settings).version()
    registry = without_password(settings.registry)
    with step(f"registry {registry}"):
        host.ensure_registry(
            settings.registry, settings.cache / "registry", settings.connect_timeout
        )
    with step("base image") as progress:
        client = docker_client(settings.docker_host, connect_timeout=settings.connect_timeout)
        _, reference = base_image_for(client, None, settings, progress)
    return HostEnvironment(
        engine_version=version,
        builder=builder,
        registry=registry,
        base_image=reference,
        home=str(settings.home),
    )
