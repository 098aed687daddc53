"""What every part of `make bench` measures with: the machine, a timed command, callers
started together, a free port, one logged decision replayed against a bare `docker run`
of the same image, the median time of a few runs, and decisions logged in bulk."""

from __future__ import annotations

import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

REPLAY = str(Path(sys.executable).parent / "replay")


def machine() -> dict:
    from replay.images.engine import docker_client
    from replay.manifests.capture import cpu_facts

    from replay.settings import load_settings

    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "cpu": cpu_facts()["model"],
        "cores": os.cpu_count(),
        "memory_gib": round(memory / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "docker_engine": docker_client(load_settings().docker_host).version()["Version"],
    }


def run_timed(command: list[str], stdin: bytes | None = None) -> tuple[float, str]:
    """Seconds the command took and what it printed; a failure ends the benchmark."""
    started = time.perf_counter()
    result = subprocess.run(command, input=stdin, capture_output=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command[:3])} failed: {result.stderr.decode()[-500:]}")
    return elapsed, result.stdout.decode()


def write_results(name: str, results: dict, lines: list[str]) -> None:
    """A part's results as bench/results/NAME-<time>.json, and its summary lines."""
    root = Path(__file__).parents[1]
    out = root / "bench" / "results" / f"{name}-{results['when'].replace(':', '')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print("\n".join(lines))
    print(f"written to {out.relative_to(root)}")


def callers_timed(work: Callable[[int], None], callers: int) -> float:
    """Seconds `callers` threads take to run `work(caller)`, started together."""
    start = threading.Barrier(callers + 1)

    def call(caller: int) -> None:
        start.wait()
        work(caller)

    threads = [threading.Thread(target=call, args=(c,)) for c in range(callers)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    return time.perf_counter() - began


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def timed(command: list[str], stdin: bytes | None = None) -> float:
    return run_timed(command, stdin)[0]


def one_decision_against_docker_run(manifest, built, inputs: dict, runs: int) -> dict:
    """A decision on `inputs` logged, then the median time from starting `replay replay
    TXN` to its verdict, against a bare `docker run` of the same image loading the
    deployment and answering the same single prediction (goal: ratio at most 1.5)."""
    from replay.execution.warm import WarmDeployment
    from replay.ledger.decisions import record_decision

    with WarmDeployment(manifest.manifest_id) as warm:
        outputs = warm.predict(inputs, seed=11)
    txn = record_decision(
        manifest.manifest_id, inputs, outputs, seed=11, fingerprint_id=built.fingerprint_id
    ).txn_id
    bare_stdin = (
        json.dumps({"type": "load"})
        + "\n"
        + json.dumps({"id": "r1", "inputs": inputs, "seed": 11})
        + "\n"
    ).encode()
    bare = [
        "docker",
        "run",
        "-i",
        "--rm",
        "--network",
        "none",
        built.image_id,
        "--serve",
        manifest.entrypoint,
    ]
    timed(bare, bare_stdin)  # first run warms the page cache for both
    replay_times, bare_times = [], []
    for _ in range(runs):  # interleaved, so machine noise hits both alike
        bare_times.append(timed(bare, bare_stdin))
        replay_times.append(timed([REPLAY, "replay", txn, "--json"]))
    ratio = statistics.median(replay_times) / statistics.median(bare_times)
    return {
        "runs": runs,
        "replay_median_s": statistics.median(replay_times),
        "bare_docker_run_median_s": statistics.median(bare_times),
        "ratio": ratio,
        "goal_ratio_at_most": 1.5,
        "met": ratio <= 1.5,
        "replay_s": replay_times,
        "bare_s": bare_times,
    }


def median_seconds(work, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def record_in_bulk(warm, rows: list[dict], seeds: list[int], fingerprint_id=None) -> None:
    """`rows` decided by the warm container (each with its seed) and logged through the
    Python API, 5,000 at a time."""
    from replay.ledger import NewEntry, open_ledger
    from replay.settings import load_settings

    ledger, manifest = open_ledger(load_settings()), warm.manifest
    for start in range(0, len(rows), 5_000):
        part = slice(start, start + 5_000)
        outputs = warm.predict_each(rows[part], seeds[part])
        ledger.append(
            NewEntry(
                manifest_id=manifest.manifest_id,
                deployment=manifest.name,
                inputs=row,
                outputs=answer,
                seed=seed,
                fingerprint=fingerprint_id,
            )
            for row, answer, seed in zip(rows[part], outputs, seeds[part], strict=True)
        )
