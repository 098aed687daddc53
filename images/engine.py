"""Low-level access to the Docker engine: one client, engine errors as EngineUnavailable."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from replay.errors import EngineUnavailable

if TYPE_CHECKING:
    import docker


def engine_address() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def docker_client(timeout: int = 600) -> docker.DockerClient:
    """A client for the engine at DOCKER_HOST (or the local socket), checked to answer."""
    import docker

    try:
        client = docker.DockerClient(base_url=engine_address(), version="auto", timeout=timeout)
        client.ping()
    except docker.errors.DockerException as error:
        raise EngineUnavailable(
            f"no Docker engine answers at {engine_address()} ({_short(error)}); "
            "start one with `replay up` or point DOCKER_HOST at a running engine"
        ) from None
    return client


def engine_facts(client: docker.DockerClient) -> dict[str, Any]:
    """What the manifest records about the engine a deployment was captured on."""
    version = client.version()
    return {
        "version": version.get("Version", ""),
        "api_version": version.get("ApiVersion", ""),
        "os": version.get("Os", ""),
        "architecture": version.get("Arch", ""),
        "kernel": version.get("KernelVersion", ""),
    }


def _short(error: Exception) -> str:
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text if len(text) < 160 else text[:157] + "..."
