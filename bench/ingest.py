"""`make bench`, ingestion: decisions made elsewhere logged into the ledger.

1. `replay ingest` of 100,000 decisions from a JSON lines file, as a user runs it,
   each durable and sealed under its person's key, against a naive chained SQLite
   append loop measured in the same run (8 threads, one transaction per entry, each
   reading the head and linking to it, `synchronous=FULL`); goal: at least twice it.
2. KServe's CloudEvents posted over HTTP by 16 concurrent callers (aiohttp coroutines in
   one uvloop event loop) to `replay ingest --listen`, each decision a request and its
   response; goal: at least 1,000 decisions/s. Twice: each caller waiting for its
   request's answer before posting its response (every request is then held in the
   ledger until its response comes), and as KServe's logger posts them (its workers
   take the next event of one queue, where a response follows its request by
   `LOGGER_LAG` requests). Each against the same posts to a listener doing no work
   (`bare_listener.py`) in the same run: the most a listener on the same server reaches.
3. `replay audit` of the 100,000 ingested decisions (re-executed on Dask in the frozen
   deployment's container, compared field by field) against `replay replay --all` of
   the same decisions in the same run.

The file's outputs are what the deployment decides for each applicant (no seed logged:
the manifest's), so the audit finds every decision reproduced.

    python bench/ingest.py        # alone; `bench/run.py` runs it with the rest
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path

from measure import REPLAY, callers_timed, free_port, machine, run_timed, write_results

# KServe's logger queues a response's event once the model has answered: here once four
# more requests have arrived (a model answering in 4 ms at 1,000 decisions/s)
LOGGER_LAG = 4

# the baseline's server: uvicorn as `replay ingest --listen` runs it (see bare_listener.py)
BARE_LISTENER = ["-m", "uvicorn", "bare_listener:app", "--http", "httptools", "--loop", "uvloop"]
BARE_LISTENER += ["--lifespan", "off", "--log-level", "warning", "--no-access-log"]

# the file's decisions are a second apart from this time on: a window no other decision
# of the bench's ledger falls in (they are logged now)
FIRST = datetime(2026, 1, 1, tzinfo=UTC)

ROOT = Path(__file__).parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "examples")]


def naive_loop_per_second(path: Path, threads: int = 8, total: int = 16_000) -> float:
    """Entries/s of the obvious way to keep a hash chain in SQLite: each of `threads`
    appends one entry per transaction (head read, hash, insert), `synchronous=FULL`."""
    setup = sqlite3.connect(path)
    setup.execute("PRAGMA journal_mode=WAL")
    setup.execute("CREATE TABLE chain (seq INTEGER PRIMARY KEY, body TEXT, hash TEXT)")
    setup.close()
    connections = []
    for _ in range(threads):
        connection = sqlite3.connect(
            path, timeout=60, isolation_level=None, check_same_thread=False
        )
        connection.execute("PRAGMA synchronous=FULL")
        connections.append(connection)

    def work(thread: int) -> None:
        connection = connections[thread]
        for i in range(total // threads):
            body = json.dumps({"thread": thread, "i": i, "income": 40000.0 + i})
            connection.execute("BEGIN IMMEDIATE")
            head = connection.execute("SELECT hash FROM chain ORDER BY seq DESC LIMIT 1")
            previous = (head.fetchone() or ("0" * 64,))[0]
            digest = hashlib.sha256((previous + body).encode()).hexdigest()
            connection.execute("INSERT INTO chain (body, hash) VALUES (?, ?)", [body, digest])
            connection.execute("COMMIT")

    seconds = callers_timed(work, threads)
    for connection in connections:
        connection.close()
    return (total // threads) * threads / seconds


def decisions_file(path: Path, people: list[dict], answers: list[dict], count: int) -> None:
    """`count` decisions of the credit example's applicants with the deployment's
    `answers`, each of its own person."""
    with open(path, "w") as out:
        for i in range(count):
            record = {
                "id": f"order-{i}",
                "time": (FIRST + timedelta(seconds=i)).isoformat(),
                "inputs": people[i % len(people)],
                "outputs": answers[i % len(people)],
                "subject": f"applicant-{i}",
            }
            out.write(json.dumps(record) + "\n")


def ingest_file_benchmark(
    folder: Path, manifest_id: str, people: list[dict], answers: list[dict], count: int
) -> dict:
    """`replay ingest` naming the deployment by its manifest id, as a script that knows
    which frozen deployment decided would (a name is looked up in MLflow: 2 s more)."""
    from replay.ingestion.preparing import default_workers
    from replay.ledger import open_ledger

    path = folder / "decisions.jsonl"
    decisions_file(path, people, answers, count)
    ledger = open_ledger()
    before = ledger.count()
    seconds, printed = run_timed(
        [REPLAY, "ingest", str(path), "--format", "jsonl", "--deployment", manifest_id, "--json"]
    )
    counts = json.loads(printed)
    verified = ledger.verify()
    if counts["logged"] != count or ledger.count() != before + count or not verified.ok:
        raise SystemExit(f"ingest logged {counts}, chain {verified}")
    baseline = naive_loop_per_second(folder / "naive.db")
    return {
        "decisions": count,
        "durable_and_sealed": "each batch fsynced; every decision of its own person, sealed",
        "deployment_given_as": "manifest id",
        "preparing_processes": default_workers(),
        "seconds": seconds,
        "per_second": count / seconds,
        "naive_chained_loop_8_threads_per_second": baseline,
        "ratio_to_naive_loop": count / seconds / baseline,
        "goal_ratio_at_least": 2.0,
    }


def cloud_events_benchmark(
    deployment: str, people: list[dict], answers: list[dict], pairs: int = 8_000, callers: int = 16
) -> dict:
    """The listener's rate in each order of posting, and in the same run the rate of a
    listener doing no work (`bare_listener.py`) under the same callers and posts."""
    import replay

    token = replay.add_token(f"bench-{uuid.uuid4().hex[:8]}", "ingest").token
    port, bare_port = free_port(), free_port()
    servers = [
        subprocess.Popen(
            [REPLAY, "ingest", "--listen", str(port), "--deployment", deployment],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
        subprocess.Popen(
            [sys.executable, *BARE_LISTENER, "--port", str(bare_port)],
            cwd=Path(__file__).parent,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
    ]
    url = f"http://127.0.0.1:{port}/ingest/kserve/{token}"
    bare_url = f"http://127.0.0.1:{bare_port}/ingest"
    results = {}
    try:
        _wait_for(f"http://127.0.0.1:{port}/health", servers[0])
        _wait_for(f"http://127.0.0.1:{bare_port}/health", servers[1])
        for name, lag in (("each_caller_waiting", None), ("as_kserves_logger", LOGGER_LAG)):
            run, bare = (
                _posting_timed(
                    server,
                    pairs,
                    _post_cloud_events(to, deployment, people, answers, pairs, callers, lag),
                )
                for server, to in zip(servers, (url, bare_url), strict=True)
            )
            results[name] = {
                **run,
                "bare_listener_per_second": bare["per_second"],
                "share_of_bare_listener": run["per_second"] / bare["per_second"],
            }
    finally:
        for server in servers:
            server.terminate()
            server.wait(30)
    return {
        "decisions": pairs,
        "callers": callers,
        "client": f"aiohttp, one uvloop event loop, {callers} concurrent callers",
        "posts": 2 * pairs,
        "logger_lag": LOGGER_LAG,
        "bare_listener": "uvicorn (httptools, uvloop) answering each post at once, no work",
        **results,
        "goal_at_least": 1000,
    }


def _posting_timed(server: subprocess.Popen, pairs: int, posting: Coroutine) -> dict:
    """Decisions/s of `posting` (`_post_cloud_events` of `pairs`), and where the two cores went:
    the server's CPU and the callers' (this process)."""
    import psutil
    import uvloop

    listener = psutil.Process(server.pid)
    server_cpu = sum(listener.cpu_times()[:2])
    seconds, callers_cpu, failures = uvloop.run(posting)
    server_cpu = sum(listener.cpu_times()[:2]) - server_cpu  # a little after the posts
    if failures:
        raise SystemExit(f"{len(failures)} CloudEvents refused: {sorted(set(failures))}")
    return {
        "per_second": pairs / seconds,
        "server_cpu_ms_per_post": server_cpu / (2 * pairs) * 1e3,
        "server_cpu_share_of_a_core": server_cpu / seconds,
        "callers_cpu_ms_per_post": callers_cpu / (2 * pairs) * 1e3,
    }


async def _post_cloud_events(
    url: str,
    deployment: str,
    people: list[dict],
    answers: list[dict],
    pairs: int,
    callers: int,
    lag: int | None,
) -> tuple[float, float, list[int]]:
    """Seconds `callers` coroutines take to post every decision's request and response
    as binary-mode CloudEvents, the CPU seconds they take meanwhile, and the status of
    every post refused.

    With a `lag`, the halves are posted as KServe's logger posts them: it queues a
    request's event as the request arrives and its response's once the model answers
    (here after `lag` more requests arrived), and each of its workers posts the next
    event in the queue, never waiting for the other half's answer. Without one, each
    caller posts a decision's request and waits for its answer before the response."""
    # coroutines in one loop, not a thread each: 16 threads of httpx hold the GIL and
    # cap the client near 1,300 posts/s on 2 cores, below what the goal needs
    import aiohttp

    failures: list[int] = []
    logged: list[int] = []
    # a connection for every caller, so none waits on the pool
    connector = aiohttp.TCPConnector(limit=callers)
    timeout = aiohttp.ClientTimeout(total=60)
    # every post's headers and body made before the clock starts: the callers' own
    # work shares the machine's two cores with the server's. Every decision new, of a
    # new person (a duplicate costs the server next to nothing), whatever ran before.
    run = uuid.uuid4().hex[:12]
    halves: list[list[tuple[dict[str, str], bytes]]] = []
    for i in range(pairs):
        person, outputs = people[i % len(people)], answers[i % len(people)]
        request = {"instances": [person], "parameters": {"subject": f"p-{run}-{i}"}}
        halves.append([])
        for part, body in (("request", request), ("response", {"predictions": [outputs]})):
            headers = {
                "ce-id": f"bench-{run}-{i}",
                "ce-type": f"org.kubeflow.serving.inference.{part}",
                "ce-specversion": "1.0",
                "ce-source": "bench",
                "ce-inferenceservicename": deployment,
                "content-type": "application/json",
            }
            halves[-1].append((headers, json.dumps(body).encode()))
    if lag is None:  # each caller's decisions, each request answered before its response
        queues = [
            iter([half for i in range(caller, pairs, callers) for half in halves[i]])
            for caller in range(callers)
        ]
    else:  # the logger's one queue: request i, then response i once `lag` more arrived
        order = [halves[i][0] for i in range(min(lag, pairs))]
        for i in range(pairs):
            order.extend([halves[i + lag][0]] if i + lag < pairs else [])
            order.append(halves[i][1])
        queues = [iter(order)] * callers
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def work(caller: int) -> None:
            for headers, data in queues[caller]:
                async with session.post(url, data=data, headers=headers) as answer:
                    said = await answer.read()  # to the end, so the connection is reused
                    if answer.status != 200:
                        failures.append(answer.status)
                    else:
                        logged.append(json.loads(said)["logged"])

        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(work(caller) for caller in range(callers)))
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    if not failures and sum(logged) != pairs:
        raise SystemExit(f"{pairs:,} decisions posted, {sum(logged):,} logged")
    return seconds, cpu, failures


def _wait_for(url: str, server: subprocess.Popen) -> None:
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit("replay ingest --listen exited")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.3)
    raise SystemExit(f"replay ingest --listen did not answer at {url}")


def audit_benchmark(folder: Path, deployment: str, count: int) -> dict:
    """`replay audit` of the ingested decisions against `replay replay --all` of them."""
    out = folder / "audit"
    out.mkdir(exist_ok=True)
    audit_s, printed = run_timed(
        [
            REPLAY,
            "audit",
            "--deployment",
            deployment,
            "--source",
            "file",
            "--out",
            str(out),
            "--json",
        ]
    )
    audited = json.loads(printed)["summary"]
    if audited["counts"]["reproduced"] != count:
        raise SystemExit(f"the audit did not find every decision reproduced: {audited['counts']}")
    # the same decisions, by their times: `make bench`'s ledger also holds the history
    # and export parts' decisions of this deployment (the export's do not reproduce)
    window = [
        "--since",
        FIRST.isoformat(),
        "--until",
        (FIRST + timedelta(seconds=count)).isoformat(),
    ]
    replay_all_s, printed = run_timed(
        [REPLAY, "replay", "--all", "--deployment", deployment, *window, "--json"]
    )
    replayed = sum(json.loads(printed)["counts"].values())
    if replayed != count:
        raise SystemExit(f"replay --all of the file's window replayed {replayed:,}, not {count:,}")
    return {
        "decisions": count,
        "audit_seconds": audit_s,
        "audit_per_second": count / audit_s,
        "replay_all_decisions": replayed,
        "replay_all_seconds": replay_all_s,
        "replay_all_per_second": replayed / replay_all_s,
        "ratio_to_replay_all": (count / audit_s) / (replayed / replay_all_s),
    }


def ingest_benchmark(folder: Path, workspace: Path, manifest_id: str, count: int = 100_000) -> dict:
    from workspace import read_new_cases

    from replay.execution.warm import WarmDeployment

    people = read_new_cases(workspace, "credit")
    with WarmDeployment(manifest_id) as warm:  # what the deployment decides for each
        deployment, seed = warm.manifest.name, warm.manifest.runtime.seed
        answers = warm.predict_each(people, [seed] * len(people))
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "file": ingest_file_benchmark(folder, manifest_id, people, answers, count),
        "cloud_events": cloud_events_benchmark(deployment, people, answers),
        "audit": audit_benchmark(folder, deployment, count),
    }


def summary(results: dict) -> list[str]:
    file, events, audit = results["file"], results["cloud_events"], results["audit"]
    lines = [
        f"replay ingest of {file['decisions']:,} decisions (JSON lines, durable, sealed): "
        f"{file['per_second']:,.0f}/s vs a naive chained SQLite loop "
        f"{file['naive_chained_loop_8_threads_per_second']:,.0f}/s -> ratio "
        f"{file['ratio_to_naive_loop']:.1f} (goal >= 2)"
    ]
    for name, how in (
        ("each_caller_waiting", "each caller waiting for its request's answer"),
        ("as_kserves_logger", "as KServe's logger posts them"),
    ):
        run = events[name]
        lines.append(
            f"KServe CloudEvents over HTTP, {events['callers']} callers, {how}: "
            f"{run['per_second']:,.0f} decisions/s ({events['posts']:,} posts; goal >= 1,000); "
            f"CPU a post: server {run['server_cpu_ms_per_post']:.2f} ms "
            f"({run['server_cpu_share_of_a_core']:.0%} of a core), "
            f"callers {run['callers_cpu_ms_per_post']:.2f} ms; a listener doing no work "
            f"{run['bare_listener_per_second']:,.0f}/s in the same run "
            f"({run['share_of_bare_listener']:.0%} of it)"
        )
    lines.append(
        f"replay audit of {audit['decisions']:,} ingested decisions: "
        f"{audit['audit_per_second']:,.0f}/s vs replay --all "
        f"{audit['replay_all_per_second']:,.0f}/s -> ratio {audit['ratio_to_replay_all']:.2f}"
    )
    return lines


def main() -> int:
    from workspace import make_workspace

    import replay

    with tempfile.TemporaryDirectory() as home:
        os.environ["REPLAY_HOME"] = home
        workspace = make_workspace("credit", Path(home) / "credit", Path(home) / "dvc-remote")
        manifest = replay.capture(workspace)
        replay.build(manifest.manifest_id)
        results = {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine(),
            "ingest": ingest_benchmark(
                Path(home) / "ingest-bench", workspace, manifest.manifest_id
            ),
        }
    write_results("ingest", results, summary(results["ingest"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
