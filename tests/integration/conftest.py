"""Integration fixtures: a real Docker engine, MLflow on SQLite, DVC with a local remote.

One deployment is captured and built per session and shared by the tests. Under
CI=true a component that cannot be reached fails the test; locally it skips with how
to bring it up.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
sys.path.insert(0, str(ROOT / "examples" / "credit"))

from workspace import make_workspace  # noqa: E402

IN_CI = os.environ.get("CI", "").lower() == "true"


def unavailable(message: str) -> None:
    """Fail under CI (an integration test there must run); skip locally with the fix."""
    if IN_CI:
        pytest.fail(f"{message} (CI=true: integration components must be reachable)")
    pytest.skip(f"{message}; bring it up with `make up`")


@pytest.fixture(scope="session")
def engine():
    from replay.images.engine import docker_client

    from replay.errors import EngineUnavailable

    try:
        return docker_client()
    except EngineUnavailable as error:
        unavailable(str(error))


@pytest.fixture(scope="session")
def replay_env(tmp_path_factory):
    """REPLAY_* variables for a throw-away home; the machine-wide cache is shared."""
    home = tmp_path_factory.mktemp("replay-home")
    values = {"REPLAY_HOME": str(home)}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in values.items():
            patch.setenv(key, value)
        yield home


@pytest.fixture(scope="session")
def registry(engine, replay_env):
    from replay.images.host import registry_answers

    from replay.settings import load_settings

    address = load_settings().registry
    if not registry_answers(address):
        unavailable(f"no registry answers at {address}")
    return address


@pytest.fixture(scope="session")
def workspace(replay_env, tmp_path_factory):
    folder = tmp_path_factory.mktemp("deployments")
    return make_workspace(folder / "credit-approval", folder / "dvc-remote")


@pytest.fixture(scope="session")
def captured(registry, workspace):
    import replay

    return replay.capture(workspace)


@pytest.fixture(scope="session")
def built(captured):
    import replay

    return replay.build(captured.manifest_id)


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The installed `replay` command, as a user runs it."""
    command = [str(Path(sys.executable).parent / "replay"), *args]
    return subprocess.run(command, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=600)
