"""Low-level access to the Docker engine: one client, engine errors as EngineUnavailable."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from replay.errors import EngineUnavailable, EnvironmentProblem, one_line

if TYPE_CHECKING:
    import docker


LOCAL_ENGINE = "unix:///var/run/docker.sock"
# Seconds an engine has to answer the first calls when the caller names no budget
# (replay's callers pass REPLAY_CONNECT_TIMEOUT, whose default this is).
ANSWER_WITHIN = 5.0


def docker_client(
    address: str | None = None, timeout: int = 600, connect_timeout: float = ANSWER_WITHIN
) -> docker.DockerClient:
    """A client for the engine at `address` (default: the local socket), checked to answer
    within `connect_timeout` seconds; later calls (builds, pulls) may take `timeout`."""
    import docker  # about 0.3 s; only commands that reach the engine pay it
    import requests  # docker's own HTTP client: a ping cut short by the budget is its error

    address = address or LOCAL_ENGINE
    try:
        # the version asked for by "auto" and the ping are held to the short budget
        client = docker.DockerClient(base_url=address, version="auto", timeout=connect_timeout)
        client.ping()
        client.api.timeout = timeout
    except (docker.errors.DockerException, requests.RequestException) as error:
        raise EngineUnavailable(
            f"no Docker engine answers at {address} ({one_line(error)}); "
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


def in_engine(client: docker.DockerClient, image: str) -> bool:
    """Whether the engine holds the image (an id or a reference)."""
    import docker

    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        return False
    return True


def lost_by_registry(client: docker.DockerClient, repo_digest: str) -> bool:
    """Whether the registry (asked by the engine, with its credentials) says it no longer
    has the manifest at `repo_digest` (wiped since the push). A registry that cannot be
    asked (down, refusing the credentials) has not said so."""
    import docker

    try:
        client.images.get_registry_data(repo_digest)
    except docker.errors.NotFound:
        return True
    except docker.errors.APIError:
        return False
    return False


def push_image(
    client: docker.DockerClient,
    repository: str,
    tag: str,
    progress: Callable[[str], None] = lambda _: None,
) -> str:
    """Push `repository:tag`; return `repository@sha256:…`, the digest the registry gave."""
    digest = None
    for event in client.images.push(repository, tag=tag, stream=True, decode=True):
        if "error" in event:
            raise EnvironmentProblem(f"push of {repository}:{tag} failed: {event['error']}")
        if event.get("status") and event.get("id"):
            progress(f"{event['id']}: {event['status']}")
        digest = (event.get("aux") or {}).get("Digest", digest)
    if not digest:
        raise EnvironmentProblem(f"push of {repository}:{tag} reported no digest")
    return f"{repository}@{digest}"
