"""An unreachable store is one line and exit 3 within the connect budget, never a wait
of minutes, and no store's password reaches what a command prints (issue 20, 6 and 7).

Each store is reached by the command a user would run, in a subprocess killed when its
time is up: first on a closed port (refused at once: the time the command takes to
start and fail), then on a port that accepts connections and never answers (a
listening socket nobody reads), which may cost the budget on top and no more."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.factories import write_decisions
from tests.integration.conftest import run_cli

BUDGET = 2  # REPLAY_CONNECT_TIMEOUT in these tests (PostgreSQL's least is 2 s)
# A refused command's own time: starting Python and importing what it needs (MLflow
# alone takes about 3 s), and for Dask the budget (it retries a refused port until then).
STARTING = 8 + BUDGET
# What a silent store may cost beyond the budget: botocore waits up to 1 s for an S3
# PUT's `100 Continue`, and two runs of a command never start equally fast.
SLACK = 3
PASSWORD = "s3cretpw"
CLOSED = 1  # a port nothing listens on

# store: (command, variables), with {address} HOST:PORT and {password}
STORES: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "tracking store": (
        ("deployments", "list"),
        {"REPLAY_TRACKING_URI": "http://alice:{password}@{address}"},
    ),
    "ledger": (
        ("ledger", "list"),
        {"REPLAY_LEDGER": "postgresql://alice:{password}@{address}/replay"},
    ),
    "subject key store": (
        ("ledger", "list"),
        {"REPLAY_SUBJECT_KEYS": "postgresql://alice:{password}@{address}/keys"},
    ),
    "S3 checkpoint store": (
        ("ledger", "checkpoint"),
        {
            "REPLAY_CHECKPOINTS": "s3://checkpoints/replay",
            "AWS_ENDPOINT_URL_S3": "http://alice:{password}@{address}",
        },
    ),
    # neither a scheduler's address, an engine's nor a registry's can hold a password
    # (see test_a_password_in_an_address_is_never_shown)
    "Dask scheduler": (("replay", "--all", "--scheduler", "tcp://{address}"), {}),
    "Docker engine": (("up",), {"DOCKER_HOST": "tcp://{address}"}),
    # not on 127.0.0.1: `replay up` would start a registry of its own there
    "registry": (("up",), {"REPLAY_REGISTRY": "{address}"}),
}
HOSTS = {"registry": "127.0.0.2"}


@pytest.fixture
def silent() -> Iterator[Callable[[str], int]]:
    """Opens a port on a host whose connections the kernel completes and nobody reads."""
    opened: list[socket.socket] = []

    def listen(host: str) -> int:
        listener = socket.socket()
        listener.bind((host, 0))
        listener.listen(64)
        opened.append(listener)
        return int(listener.getsockname()[1])

    yield listen
    for listener in opened:
        listener.close()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A state folder whose ledger holds one decision (to checkpoint, to replay)."""
    folder = tmp_path / "state"
    folder.mkdir()
    write_decisions(str(folder / "ledger.db"), 0, 1)
    return folder


def run_timed(
    args: tuple[str, ...], variables: dict[str, str | None], limit: float
) -> tuple[subprocess.CompletedProcess, float]:
    """The command's result and how long it took; a run past `limit` seconds failed."""
    environment: dict[str, str | None] = {
        "REPLAY_CONNECT_TIMEOUT": str(BUDGET),
        # set in this process by stores opened in it: a user's shell holds none of them
        "MLFLOW_HTTP_REQUEST_TIMEOUT": None,
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": None,
        "DASK_SCHEDULER_ADDRESS": None,
        # credentials of no account, so that boto3 never asks an instance's metadata
        "AWS_ACCESS_KEY_ID": "replay-tests",
        "AWS_SECRET_ACCESS_KEY": "replay-tests",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        **variables,
    }
    started = time.monotonic()
    try:
        result = run_cli(*args, env=environment, timeout=limit)
    except subprocess.TimeoutExpired:
        pytest.fail(f"`replay {' '.join(args)}` said nothing within {limit:.1f} s")
    return result, time.monotonic() - started


def one_error(result: subprocess.CompletedProcess) -> str:
    """The one error line, which names the store without its password."""
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert PASSWORD not in result.stdout + result.stderr
    return errors[0]


def refused_then_unanswered(
    reach: Callable[[int], tuple[tuple[str, ...], dict[str, str | None]]],
    host: str,
    silent_port: int,
) -> None:
    """`reach(port)` (a command and its variables) on a closed port, then on a silent one:
    each one line naming the store and exit 3, the silent one within the refused one's
    time and the budget."""
    args, variables = reach(CLOSED)
    refused, took = run_timed(args, variables, STARTING)
    assert refused.returncode == 3, refused.stderr
    assert f"{host}:{CLOSED}" in one_error(refused)
    args, variables = reach(silent_port)
    unanswered, _ = run_timed(args, variables, took + BUDGET + SLACK)
    assert unanswered.returncode == 3, unanswered.stderr
    assert f"{host}:{silent_port}" in one_error(unanswered)


@pytest.mark.parametrize("store", list(STORES))
def test_an_unreachable_store_is_one_line_within_the_budget(store, silent, home, request):
    if store == "registry":
        request.getfixturevalue("engine")  # `replay up` asks the engine first
    host = HOSTS.get(store, "127.0.0.1")
    command, variables = STORES[store]

    def reach(port: int) -> tuple[tuple[str, ...], dict[str, str | None]]:
        address = f"{host}:{port}"
        filled = {
            name: value.format(address=address, password=PASSWORD)
            for name, value in variables.items()
        }
        return tuple(part.format(address=address) for part in command), {
            "REPLAY_HOME": str(home),
            **filled,
        }

    refused_then_unanswered(reach, host, silent(host))


def test_an_unreachable_s3_blob_store_is_one_line_within_the_budget(silent, captured):
    def reach(port: int) -> tuple[tuple[str, ...], dict[str, str | None]]:
        endpoint = f"http://alice:{PASSWORD}@127.0.0.1:{port}"
        variables = {"REPLAY_BLOBS": "s3://blobs/replay", "AWS_ENDPOINT_URL_S3": endpoint}
        return ("manifest", "verify", captured.manifest_id), variables

    refused_then_unanswered(reach, "127.0.0.1", silent("127.0.0.1"))


@pytest.mark.parametrize(
    ("args", "variables", "code", "shown"),
    [
        # the issue's own case: the S3 endpoint's netloc was shown as it was given
        (
            ("ledger", "checkpoint"),
            {
                "REPLAY_CHECKPOINTS": "s3://checkpoints/replay",
                "AWS_ENDPOINT_URL_S3": f"http://alice:{PASSWORD}@127.0.0.1:{CLOSED}",
            },
            3,
            "S3 endpoint alice@127.0.0.1:1",
        ),
        # libpq also takes the password as a parameter
        (
            ("ledger", "list"),
            {"REPLAY_LEDGER": f"postgresql://alice@127.0.0.1:{CLOSED}/r?password={PASSWORD}"},
            3,
            "ledger postgresql://alice@127.0.0.1:1/r?password=***",
        ),
        # a scheduler's address takes no password: malformed input (exit 2), named masked
        (
            ("replay", "--all"),
            {"DASK_SCHEDULER_ADDRESS": f"tcp://alice:{PASSWORD}@127.0.0.1:{CLOSED}"},
            2,
            "'tcp://alice@127.0.0.1:1' is not a Dask scheduler address",
        ),
        # an engine's address takes none either; docker-py's own message repeats it
        (
            ("up",),
            {"DOCKER_HOST": f"tcp://alice:{PASSWORD}@127.0.0.1:{CLOSED}"},
            3,
            "no Docker engine answers at tcp://alice@127.0.0.1:1",
        ),
        (
            ("up",),
            {"REPLAY_REGISTRY": f"alice:{PASSWORD}@127.0.0.1:{CLOSED}"},
            3,
            "registry alice@127.0.0.1:1 does not answer",
        ),
    ],
    ids=["S3 endpoint", "libpq parameter", "Dask scheduler", "DOCKER_HOST", "registry"],
)
def test_a_password_in_an_address_is_never_shown(args, variables, code, shown, home, request):
    if "REPLAY_REGISTRY" in variables:
        request.getfixturevalue("engine")  # `replay up` asks the engine first
    result, _ = run_timed(args, {"REPLAY_HOME": str(home), **variables}, STARTING)
    assert result.returncode == code, result.stderr
    assert shown in one_error(result)


def test_the_engine_answers_within_the_budget_and_builds_may_take_longer(engine):
    from replay.images.engine import docker_client

    from replay.settings import load_settings

    client = docker_client(load_settings().docker_host, timeout=600, connect_timeout=1)
    assert client.api.timeout == 600  # the budget held for the first calls only
