"""Bring up what images need on this host: a Docker engine, the builder and a local
registry.

Both are reused when something already answers. Starting them is only attempted
where it can work (root, Debian's apt); elsewhere one line says what to install.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from replay.images.engine import ANSWER_WITHIN, docker_client

from replay.errors import EngineUnavailable, EnvironmentProblem

LOG_DIR = Path("/var/log/replay")


def _can_install() -> bool:
    return os.geteuid() == 0 and shutil.which("apt-get") is not None


def apt_install(*packages: str) -> None:
    """Install Debian packages, or say which to install when we cannot."""
    if not _can_install():
        raise EnvironmentProblem(
            f"missing {', '.join(packages)}: install it (Debian: `apt-get install "
            f"{' '.join(packages)}`) or run as root on Debian so replay can"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    log = _log_path("apt")
    with open(log, "ab") as out:
        for command in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", *packages]):
            if subprocess.run(command, stdout=out, stderr=out, env=env).returncode != 0:
                raise EnvironmentProblem(f"`{' '.join(command)}` failed; see {log}")


def _log_path(name: str) -> Path:
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    return LOG_DIR / f"{name}.log"


def run_streamed(command: list[str], on_line: Callable[[str], None]) -> tuple[int, list[str]]:
    """Run `command`, telling `on_line` each stripped line of its output as it comes;
    return its exit code and every line."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output: list[str] = []
    assert process.stdout is not None  # stdout=PIPE
    for line in process.stdout:
        output.append(line.rstrip())
        on_line(line.strip())
    return process.wait(), output


def _start_background(command: list[str], name: str) -> None:
    """Start a daemon detached from this process (no systemd here)."""
    with open(_log_path(name), "ab") as out:
        subprocess.Popen(
            command, stdout=out, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True
        )


def _wait_until(check: Callable[[], bool], seconds: float, what: str, log: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise EnvironmentProblem(f"{what} did not come up within {seconds:.0f} s; see {log}")


def ensure_engine(address: str | None = None, connect_timeout: float = ANSWER_WITHIN) -> str:
    """Return the engine version; with no `address` given, start a local dockerd if none
    answers on the local socket within `connect_timeout` seconds."""
    try:
        client = docker_client(address, connect_timeout=connect_timeout)
    except EngineUnavailable:
        if address:
            raise  # the user chose an engine; starting another would hide the problem
    else:
        return str(client.version()["Version"])
    if shutil.which("dockerd") is None:
        apt_install("docker.io")
    if os.geteuid() != 0:
        raise EnvironmentProblem("no Docker engine runs and starting dockerd needs root")
    _start_background(["dockerd"], "dockerd")

    def answers() -> bool:
        try:
            docker_client(connect_timeout=connect_timeout)
        except EngineUnavailable:
            return False
        return True

    _wait_until(answers, 60, "dockerd", str(_log_path("dockerd")))
    return str(docker_client().version()["Version"])


def ensure_builder() -> None:
    """buildah (reproducible images: see `replay.images.buildah`), installed if missing."""
    if shutil.which("buildah") is None:
        apt_install("buildah")


def registry_answers(address: str, connect_timeout: float = ANSWER_WITHIN) -> bool:
    """Whether a registry at `address` (HOST:PORT) answers within `connect_timeout` s."""
    # urllib.request brings http.client and email (20 ms): only bring-up pays for it
    import http.client
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://{address}/v2/", timeout=connect_timeout) as response:
            return bool(response.status == 200)
    # http.client.InvalidURL: an address no registry can have (`host:abc`, say)
    except (urllib.error.URLError, http.client.HTTPException, OSError):
        return False


def ensure_registry(address: str, storage: Path, connect_timeout: float = ANSWER_WITHIN) -> None:
    """A Docker registry at `address` (Debian's docker-registry, storing under `storage`)."""
    if registry_answers(address, connect_timeout):
        return
    host = address.split(":")[0]
    if host not in {"127.0.0.1", "localhost"}:
        raise EnvironmentProblem(f"registry {address} does not answer at http://{address}/v2/")
    if shutil.which("docker-registry") is None:
        apt_install("docker-registry")
    storage.mkdir(parents=True, exist_ok=True)
    config = storage / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n"
        "storage:\n"
        f"  filesystem:\n    rootdirectory: {storage / 'data'}\n"
        "  delete:\n    enabled: true\n"
        f"http:\n  addr: {address}\n"
    )
    _start_background(["docker-registry", "serve", str(config)], "registry")
    _wait_until(
        lambda: registry_answers(address, connect_timeout),
        30,
        "registry",
        str(_log_path("registry")),
    )
