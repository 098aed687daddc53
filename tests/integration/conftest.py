"""Integration fixtures: a real Docker engine, MLflow on SQLite, DVC with a local remote,
S3 as moto's server over HTTP, and a throw-away PostgreSQL server.

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
sys.path.insert(0, str(ROOT / "examples"))

from workspace import committed_copy, make_workspace, read_new_cases  # noqa: E402

IN_CI = os.environ.get("CI", "").lower() == "true"


def unavailable(message: str) -> None:
    """Fail under CI (an integration test there must run); skip locally with the fix."""
    if IN_CI:
        pytest.fail(f"{message} (CI=true: integration components must be reachable)")
    pytest.skip(f"{message}; bring it up with `make up`")  # never under CI: failed above


@pytest.fixture(scope="session")
def engine():
    from replay.images.engine import docker_client

    from replay.errors import EngineUnavailable
    from replay.settings import load_settings

    try:
        return docker_client(load_settings().docker_host)
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
    return make_workspace("credit", folder / "credit-approval", folder / "dvc-remote")


@pytest.fixture(scope="session")
def captured(registry, workspace):
    import replay

    return replay.capture(workspace)


@pytest.fixture(scope="session")
def built(captured):
    import replay

    return replay.build(captured.manifest_id)


REPLAY = str(Path(sys.executable).parent / "replay")  # the installed command


def run_cli(
    *args: str,
    env: dict[str, str | None] | None = None,
    cwd: Path | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess:
    """The installed `replay` command, as a user runs it (`env` values of None unset),
    killed after `timeout` seconds (subprocess.TimeoutExpired)."""
    command = [REPLAY, *args]
    merged = {**os.environ, **(env or {})}
    environment = {name: value for name, value in merged.items() if value is not None}
    return subprocess.run(
        command, capture_output=True, text=True, env=environment, cwd=cwd, timeout=timeout
    )


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def s3(tmp_path_factory):
    """moto's S3 server on a free loopback port, started for the session; boto3 (and
    DVC) reach it through the standard AWS_* variables. Yields a function making a bucket."""
    import time

    import boto3
    import httpx

    port = free_port()
    log = tmp_path_factory.mktemp("s3") / "moto.log"
    command = [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]
    with open(log, "w") as output:
        try:
            process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
        except OSError as error:
            unavailable(f"cannot start moto_server: {error}")
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(url, timeout=2)
            break
        except httpx.HTTPError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                unavailable(f"moto_server did not answer at {url}: {log.read_text()[-300:]}")
            time.sleep(0.2)
    variables = {
        "AWS_ENDPOINT_URL_S3": url,
        "AWS_ACCESS_KEY_ID": "replay-tests",
        "AWS_SECRET_ACCESS_KEY": "replay-tests",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in variables.items():
            patch.setenv(key, value)

        def bucket(name: str) -> str:
            boto3.client("s3").create_bucket(Bucket=name)
            return name

        yield bucket
    process.terminate()
    process.wait(30)


@pytest.fixture(scope="session")
def postgres_server():
    """Debian's PostgreSQL (installed when missing), a new cluster on a free loopback
    port, trust authentication; yields a function making a database and its URL."""
    import glob
    import pwd
    import shutil
    import tempfile

    import psycopg
    from replay.images.host import apt_install

    from replay.errors import EnvironmentProblem

    if not glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        try:
            apt_install("postgresql")
        except EnvironmentProblem as error:
            unavailable(str(error))
    binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    if not binaries:
        unavailable("no PostgreSQL server binaries under /usr/lib/postgresql")
    initdb, pg_ctl = (str(Path(binaries[-1]) / name) for name in ("initdb", "pg_ctl"))
    folder = Path(tempfile.mkdtemp(prefix="replay-postgres-"))
    as_owner: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root
        account = pwd.getpwnam("postgres")
        os.chown(folder, account.pw_uid, account.pw_gid)
        as_owner = ["runuser", "-u", "postgres", "--"]

    def run(*command: str) -> subprocess.CompletedProcess:
        return subprocess.run([*as_owner, *command], capture_output=True, text=True)

    port = free_port()
    data = str(folder / "data")
    options = f"-p {port} -c listen_addresses=127.0.0.1 -k {folder} -c fsync=off"
    for command in (
        [initdb, "-D", data, "-A", "trust", "-U", "replay", "--no-sync"],
        [pg_ctl, "-D", data, "-l", str(folder / "server.log"), "-w", "-o", options, "start"],
    ):
        result = run(*command)
        if result.returncode != 0:
            unavailable(f"{Path(command[0]).name} failed: {result.stderr.strip()[-300:]}")
    names = iter(range(1_000_000))

    def database() -> str:
        name = f"ledger_{next(names)}"
        with psycopg.connect(f"postgresql://replay@127.0.0.1:{port}/postgres") as admin:
            admin.autocommit = True
            admin.execute(f"CREATE DATABASE {name}")
        return f"postgresql://replay@127.0.0.1:{port}/{name}"

    yield database
    run(pg_ctl, "-D", data, "-m", "immediate", "stop")
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postgres(postgres_server) -> str:
    """The URL of a new, empty database on the session's PostgreSQL server."""
    return postgres_server()


@pytest.fixture(scope="session")
def tokens(replay_env) -> dict[str, dict[str, str]]:
    """Authorization headers of one token per scope, by scope."""
    import replay

    return {
        scope: {"Authorization": f"Bearer {replay.add_token(f'tests-{scope}', scope).token}"}
        for scope in ("decide", "read")
    }


@pytest.fixture(scope="session")
def server(built, captured, tokens, tmp_path_factory):
    """`replay serve` on a free loopback port, as a user starts it."""
    import time

    import httpx

    port = free_port()
    log = tmp_path_factory.mktemp("server") / "serve.log"
    with open(log, "w") as output:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "replay"),
                "serve",
                # by id: other tests of the session capture newer manifests of the
                # same name, which the name would serve when they run first
                captured.manifest_id,
                "--port",
                str(port),
                "--containers",
                "2",
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"replay serve exited: {log.read_text()}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.5)
    else:
        process.kill()
        pytest.fail("replay serve did not answer within 180 s")
    banner = f"serving {captured.name} (manifest {captured.short_id}, image: local) on {url}"
    if banner not in log.read_text():  # it says what it serves where, before answering
        process.kill()
        pytest.fail(f"replay serve did not say {banner!r}: {log.read_text()[-300:]}")
    yield url
    process.terminate()
    process.wait(30)


@pytest.fixture(scope="session")
def served(server, workspace, tokens):
    """60 applicants decided through the server, 8 at a time; their answers."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    people = read_new_cases(workspace, "credit")[:60]

    def post(item: tuple[int, dict]) -> dict:
        index, inputs = item
        response = httpx.post(
            f"{server}/decisions",
            headers=tokens["decide"],
            timeout=60,
            json={"inputs": inputs, "subject": f"applicant-{index}"},
        )
        assert response.status_code == 200, response.text
        return response.json()

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(post, enumerate(people)))


def committed_fixture(name: str, tmp_path_factory, edits=()) -> Path:
    """The deployment under tests/fixtures/NAME, with `edits` ((file, old, new) text
    replacements) applied, its model trained, committed in its own repository."""
    folder = tmp_path_factory.mktemp(name) / name
    return committed_copy(ROOT / "tests" / "fixtures" / name, folder, edits)


def fixture_deployment(name: str, tmp_path_factory):
    """The deployment under tests/fixtures/NAME, committed, captured and built."""
    import replay

    manifest = replay.capture(committed_fixture(name, tmp_path_factory))
    replay.build(manifest.manifest_id)
    return manifest


@pytest.fixture(scope="session")
def hostile(registry, tmp_path_factory):
    """A deployment that misbehaves on request (sandbox tests)."""
    return fixture_deployment("hostile", tmp_path_factory)


@pytest.fixture(scope="session")
def seeded(registry, tmp_path_factory):
    """A deployment whose `load()` and `predict()` draw random numbers."""
    return fixture_deployment("seeded", tmp_path_factory)


@pytest.fixture(scope="session")
def spare(captured, workspace):
    """A second manifest of the same deployment, for tests that delete or forge its image
    (the session's server keeps containers of the first one running)."""
    import replay

    manifest = replay.capture(workspace)
    return manifest, replay.build(manifest.manifest_id)


@pytest.fixture(scope="session")
def window(served):
    """The served decisions' time window (the session logs other credit decisions too)."""
    from datetime import datetime, timedelta

    from replay.ledger import open_ledger
    from replay.settings import load_settings

    ledger = open_ledger(load_settings())
    times = [ledger.get(a["transaction_id"]).time for a in served]
    since = datetime.fromisoformat(min(times))
    return since, datetime.fromisoformat(max(times)) + timedelta(microseconds=1)


@pytest.fixture(scope="session")
def rejected(served):
    """A rejected applicant's transaction id."""
    return next(a for a in served if a["decision"] == "rejected")["transaction_id"]


@pytest.fixture(scope="session")
def warm(built, captured):
    """One warm container of the session's manifest, shared by the question tests."""
    from replay.execution.warm import WarmDeployment

    with WarmDeployment(captured.manifest_id) as deployment:
        yield deployment


@pytest.fixture(scope="session")
def claims_workspace(replay_env, tmp_path_factory):
    folder = tmp_path_factory.mktemp("claims")
    return make_workspace("claims", folder / "claims-triage", folder / "dvc-remote")


@pytest.fixture(scope="session")
def claims_warm(registry, claims_workspace):
    """The claims example captured, built and running."""
    import replay
    from replay.execution.warm import WarmDeployment

    manifest = replay.capture(claims_workspace)
    replay.build(manifest.manifest_id)
    with WarmDeployment(manifest.manifest_id) as warm:
        yield warm


@pytest.fixture(scope="session")
def claims_decided(claims_warm, claims_workspace):
    """The example's 200 new claims decided in the container (claim i with seed i) and
    logged; the ledger entries by decision."""
    from collections import defaultdict

    from replay.ledger.decisions import record_decision

    by_decision = defaultdict(list)
    for seed, claim in enumerate(read_new_cases(claims_workspace, "claims")):
        outputs = claims_warm.predict(claim, seed)
        entry = record_decision(claims_warm.manifest.manifest_id, claim, outputs, seed=seed)
        by_decision[outputs["decision"]].append(entry)
    return by_decision


@pytest.fixture(scope="session")
def fraud_workspace(replay_env, tmp_path_factory):
    folder = tmp_path_factory.mktemp("fraud")
    return make_workspace("fraud", folder / "fraud-screen", folder / "dvc-remote")


@pytest.fixture(scope="session")
def fraud_warm(registry, fraud_workspace):
    """The fraud example (free text, a category, a protected age, three decisions)
    captured, built and running."""
    import replay
    from replay.execution.warm import WarmDeployment

    manifest = replay.capture(fraud_workspace)
    replay.build(manifest.manifest_id)
    with WarmDeployment(manifest.manifest_id) as warm:
        yield warm


@pytest.fixture(scope="session")
def fraud_decided(fraud_warm, fraud_workspace):
    """The example's 200 new payments decided in the container (payment i with seed i,
    cardholder `cardholder-i` as its subject) and logged; the ledger entries by decision."""
    from collections import defaultdict

    from replay.ledger.decisions import record_decision

    by_decision = defaultdict(list)
    for seed, payment in enumerate(read_new_cases(fraud_workspace, "fraud")):
        outputs = fraud_warm.predict(payment, seed)
        entry = record_decision(
            fraud_warm.manifest.manifest_id,
            payment,
            outputs,
            seed=seed,
            subject=f"cardholder-{seed}",
        )
        by_decision[outputs["decision"]].append(entry)
    return by_decision
