"""A server that degrades, never hangs: each misbehaviour is an answer with a reason,
the pool comes back, nothing refused is logged, and SIGTERM ends it in bounded time."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import free_port, run_cli

pytestmark = pytest.mark.integration

TIMEOUT = 8  # REPLAY_REQUEST_TIMEOUT of the hostile server


@pytest.fixture(scope="module")
def hostile_server(hostile, tokens, tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("hostile-server") / "serve.log"
    env = {**os.environ, "REPLAY_REQUEST_TIMEOUT": str(TIMEOUT)}
    command = [str(Path(sys.executable).parent / "replay"), "serve", hostile.manifest_id]
    with open(log, "w") as output:
        process = subprocess.Popen(
            [*command, "--port", str(port), "--containers", "2"],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while not answers(url):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"replay serve did not start: {log.read_text()[-500:]}")
        time.sleep(0.3)
    yield url, process
    process.kill()
    process.wait(30)


def answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def ask(url: str, tokens, action: str, **extra) -> httpx.Response:
    body = {"inputs": {"action": action}, **extra}
    return httpx.post(f"{url}/decisions", json=body, headers=tokens["decide"], timeout=60)


def whole_again(url: str, within: float = 90) -> dict:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        health = httpx.get(f"{url}/health", timeout=5).json()
        if health["containers"]["running"] == health["containers"]["of"]:
            return health
        time.sleep(0.5)
    pytest.fail(f"the pool did not come back: {health}")


@pytest.mark.parametrize(
    ("action", "reason"),
    [
        ("garbage", "not the protocol's"),
        ("deep", "not the protocol's"),
        ("die", "the runner exited"),
    ],
)
def test_a_broken_runner_is_a_503_and_the_pool_comes_back(hostile_server, tokens, action, reason):
    url, _ = hostile_server
    for _ in range(2):  # twice: both containers of the pool
        broken = ask(url, tokens, action)
        assert broken.status_code == 503 and reason in broken.json()["detail"]
    whole_again(url)
    started = time.monotonic()
    assert ask(url, tokens, "ok").status_code == 200
    assert time.monotonic() - started < TIMEOUT


def test_bad_outputs_are_refused_and_not_logged(hostile_server, tokens):
    import replay

    url, _ = hostile_server
    before = replay.verify_ledger().entries
    nan = ask(url, tokens, "nan")
    assert nan.status_code == 502 and "non-finite" in nan.json()["detail"]
    huge = ask(url, tokens, "huge")
    assert huge.status_code == 502 and "REPLAY_MAX_OUTPUT" in huge.json()["detail"]
    assert replay.verify_ledger().entries == before


def test_a_busy_pool_answers_503_within_the_timeout(hostile_server, tokens):
    url, _ = hostile_server
    # Two sleepers hold both containers until their requests time out, and a replacement
    # takes over 2 s to load: the request below finds no container within its timeout.
    sleepers = [threading.Thread(target=ask, args=(url, tokens, "sleep")) for _ in range(2)]
    for sleeper in sleepers:
        sleeper.start()
    time.sleep(1)
    started = time.monotonic()
    waited = ask(url, tokens, "ok")
    assert waited.status_code == 503 and "was free within" in waited.json()["detail"]
    assert time.monotonic() - started < TIMEOUT + 1  # the wait counts in the timeout
    assert answers(url)  # /health answers meanwhile
    for sleeper in sleepers:
        sleeper.join(TIMEOUT * 3)
    whole_again(url)


APPLICANT = {
    "income": 52_000.0,
    "debt": 9_000.0,
    "loan_amount": 15_000.0,
    "age": 41,
    "years_employed": 6.0,
    "credit_history_years": 9.0,
    "late_payments": 1,
}


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"inputs": {**APPLICANT, "income": 10**400}}, 422, "income is too large a number"),
        ({"inputs": APPLICANT, "subject": "\ud800"}, 422, "subject must be UTF-8"),
        ({"inputs": {**APPLICANT, "debt": "x" * 2_000_000}}, 413, "over 1,048,576 bytes"),
    ],
)
def test_each_bad_body_gets_its_4xx_and_nothing_is_logged(server, tokens, body, status, message):
    import json

    import replay

    before = replay.verify_ledger().entries
    content = json.dumps(body).encode()  # \ud800 stays an escape: the server decodes it
    response = httpx.post(
        f"{server}/decisions",
        content=content,
        headers={**tokens["decide"], "Content-Type": "application/json"},
        timeout=60,
    )
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]
    assert replay.verify_ledger().entries == before


def test_sigterm_ends_a_busy_server_within_its_bound(hostile, tokens, tmp_path):
    port = free_port()
    command = [str(Path(sys.executable).parent / "replay"), "serve", hostile.manifest_id]
    process = subprocess.Popen(
        [*command, "--port", str(port), "--containers", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while not answers(url):
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.3)
    threading.Thread(target=lambda: ask(url, tokens, "sleep"), daemon=True).start()
    time.sleep(1)
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    process.wait(40)
    assert time.monotonic() - started < 25  # STOP_WITHIN, and a margin


def test_sigterm_answers_requests_waiting_on_paused_runners_503_with_a_reason(
    hostile, tokens, engine
):
    """Both runners paused (`docker pause`), a request waiting on each: SIGTERM answers
    both 503 with the reason, as JSON, once they had their DRAIN seconds and before
    uvicorn's own graceful wait would cancel them (a bare 500); nothing is logged, and
    the process ends within its bound with its paused containers removed."""
    import replay
    from replay.web.running import DRAIN, GRACEFUL_WAIT, STOP_WITHIN

    label = f"replay.manifest_id={hostile.manifest_id}"
    others = {c.id for c in engine.containers.list(all=True, filters={"label": label})}
    port = free_port()
    command = [str(Path(sys.executable).parent / "replay"), "serve", hostile.manifest_id]
    process = subprocess.Popen(
        [*command, "--port", str(port), "--containers", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    mine = []
    answered: list[tuple[float, httpx.Response]] = []

    def waiting_client() -> None:
        response = ask(url, tokens, "ok")
        answered.append((time.monotonic(), response))

    try:
        deadline = time.monotonic() + 120
        while not answers(url):
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.3)
        mine = [c for c in engine.containers.list(filters={"label": label}) if c.id not in others]
        assert len(mine) == 2  # this server's own runners
        for container in mine:
            container.pause()
        before = replay.verify_ledger().entries
        clients = [threading.Thread(target=waiting_client) for _ in range(2)]
        for client in clients:
            client.start()
        time.sleep(1)  # each request holds a paused runner
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(GRACEFUL_WAIT + STOP_WITHIN + 10)
        ended = time.monotonic() - signalled
        for client in clients:
            client.join(10)
    finally:
        process.kill()
        for container in mine:
            with contextlib.suppress(Exception):  # removed by the server, as it should be
                container.unpause()
    assert len(answered) == 2
    for at, refused in answered:
        assert refused.status_code == 503, refused.text
        assert refused.headers["content-type"] == "application/json"
        assert refused.json()["detail"].startswith("the server is stopping: this request did not")
        assert DRAIN - 0.5 < at - signalled < GRACEFUL_WAIT  # given its time, then answered
    assert ended < GRACEFUL_WAIT + STOP_WITHIN, ended
    assert replay.verify_ledger().entries == before
    left = {c.id for c in engine.containers.list(all=True, filters={"label": label})}
    assert not left & {c.id for c in mine}


@pytest.fixture
def tiny_disk(tmp_path):
    """A 1 MB tmpfs, unmounted afterwards."""
    from tests.integration.conftest import unavailable

    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)])
    if done.returncode != 0:
        unavailable("cannot mount a tmpfs (the disk-full test needs root)")
    yield mount
    subprocess.run(["umount", "--lazy", str(mount)], check=True)  # the ledger may be open


def test_a_full_disk_is_one_line_exit_3_and_nothing_half_written(served, tiny_disk):
    import replay
    from replay.ledger import SQLiteLedger
    from replay.ledger.chain import NewEntry

    logged = replay.show_transaction(served[0]["transaction_id"])
    ledger = SQLiteLedger(tiny_disk / "ledger.db")
    entry = ledger.record(
        NewEntry(
            manifest_id=logged.manifest_id,
            deployment=logged.deployment,
            inputs=logged.inputs,
            outputs=logged.outputs,
            seed=logged.seed,
            fingerprint=logged.fingerprint,
        )
    )
    filler = tiny_disk / "filler"
    with contextlib.suppress(OSError), open(filler, "wb") as handle:
        while True:
            handle.write(b"\0" * 4096)
            handle.flush()
    result = run_cli("replay", entry.txn_id, env={"REPLAY_LEDGER": str(ledger.path)})
    assert result.returncode == 3, result.stdout + result.stderr
    (error,) = [line for line in result.stderr.splitlines() if line.strip()]
    assert error.startswith("error: ") and "full" in error
    filler.unlink()
    assert [e.txn_id for e in ledger.list(kind=None)] == [entry.txn_id]  # nothing half-written
    assert ledger.verify().ok


def test_a_batch_replay_records_the_entry_that_broke_and_goes_on(served, tmp_path):
    import replay
    from replay.ledger import SQLiteLedger
    from replay.ledger.chain import NewEntry
    from replay.settings import load_settings

    settings = load_settings({**os.environ, "REPLAY_LEDGER": str(tmp_path / "ledger.db")})
    ledger = SQLiteLedger(settings.ledger)
    good = replay.show_transaction(served[0]["transaction_id"])
    copy = dict(
        manifest_id=good.manifest_id,
        deployment=good.deployment,
        inputs=good.inputs,
        seed=good.seed,
        fingerprint=good.fingerprint,
    )
    first, broken, last = ledger.append(
        [
            NewEntry(outputs=good.outputs, **copy),
            NewEntry(outputs=["not", "an", "object"], **copy),  # written by some other tool
            NewEntry(outputs=good.outputs, **copy),
        ]
    )
    summary = replay.replay_many(
        txn_ids=[first.txn_id, broken.txn_id, last.txn_id], settings=settings
    )
    assert [r.verdict for r in summary.results] == ["reproduced", "failed", "reproduced"]
    assert "AttributeError" in summary.results[1].error
    recorded = ledger.list(kind="replay")
    assert [entry.refers_to for entry in recorded] == [first.txn_id, broken.txn_id, last.txn_id]


def test_a_kill_loop_never_leaves_a_request_waiting_and_the_pool_recovers(
    hostile_server, hostile, tokens, engine
):
    """Runner containers killed every second for 12 s, replacements included, while
    requests keep coming: each is answered within its timeout (200 or 503)."""
    url, process = hostile_server
    label = f"replay.manifest_id={hostile.manifest_id}"
    stop = threading.Event()

    def kill_loop() -> None:
        while not stop.wait(1.0):
            for container in engine.containers.list(filters={"label": label}):
                with contextlib.suppress(Exception):
                    container.kill()

    killer = threading.Thread(target=kill_loop, daemon=True)
    killer.start()
    statuses, slowest = [], 0.0
    ends = time.monotonic() + 12
    while time.monotonic() < ends:
        started = time.monotonic()
        statuses.append(ask(url, tokens, "ok").status_code)
        slowest = max(slowest, time.monotonic() - started)
    stop.set()
    killer.join()
    assert set(statuses) <= {200, 503} and slowest < TIMEOUT + 1
    assert answers(url) and process.poll() is None
    whole_again(url)
    assert ask(url, tokens, "ok").status_code == 200


def test_a_chunked_body_is_refused_before_it_is_read(server, tokens):
    """A body of no stated length (or one that contradicts its Content-Length with
    chunks) is never read into memory, even a token holder's (without a token it is 401
    before anything: test_access)."""

    def chunks():
        yield b'{"inputs": {"debt": "'
        yield b"x" * 1_000_000
        yield b'"}}'

    refused = httpx.post(
        f"{server}/decisions", content=chunks(), headers=tokens["decide"], timeout=60
    )
    assert refused.status_code == 411 and "Content-Length" in refused.json()["detail"]
