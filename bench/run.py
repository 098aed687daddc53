"""`make bench`: speed figures as ratios to a baseline measured in the same run.

1. Replay of one logged decision, image present: median time from starting the
   `replay replay TXN` command to its verdict, against a bare `docker run` of the same
   image doing the same single prediction (goal: ratio at most 1.5).
2. Ledger appends with 8 concurrent writer processes, chain verified afterwards
   (goal: at least 2,000 decisions/s), against one writer appending the same number.

Results go to bench/results/<time>.json with a description of the machine.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT / "examples" / "credit"))
REPLAY = str(Path(sys.executable).parent / "replay")


def machine() -> dict:
    from replay.images.engine import docker_client
    from replay.manifests.capture import cpu_facts

    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {"cpu": cpu_facts()["model"], "cores": os.cpu_count(),
            "memory_gib": round(memory / 2**30, 1), "kernel": platform.release(),
            "python": platform.python_version(),
            "docker_engine": docker_client().version()["Version"]}


def timed(command: list[str], stdin: bytes | None = None) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, input=stdin, capture_output=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command[:3])} failed: {result.stderr.decode()[-500:]}")
    return elapsed


def replay_benchmark(runs: int) -> dict:
    from workspace import make_workspace

    import replay
    from replay.decisions import record_decision
    from replay.warm import WarmDeployment

    home = Path(os.environ["REPLAY_HOME"])
    workspace = make_workspace(home / "credit-approval", home / "dvc-remote")
    manifest = replay.capture(workspace)
    built = replay.build(manifest.manifest_id)
    inputs = {"income": 48000.0, "debt": 21000.0, "loan_amount": 30000.0, "age": 29,
              "years_employed": 2.0, "credit_history_years": 3.5, "late_payments": 2}
    with WarmDeployment(manifest.manifest_id) as warm:
        outputs = warm.predict(inputs, seed=11)
    txn = record_decision(manifest.manifest_id, inputs, outputs, seed=11,
                          fingerprint_id=built.fingerprint_id).txn_id
    bare_stdin = (json.dumps({"type": "load"}) + "\n"
                  + json.dumps({"id": "r1", "inputs": inputs, "seed": 11}) + "\n").encode()
    bare = ["docker", "run", "-i", "--rm", "--network", "none", built.image_id,
            "--serve", manifest.entrypoint]
    timed(bare, bare_stdin)  # first run warms the page cache for both
    replay_times, bare_times = [], []
    for _ in range(runs):  # interleaved, so machine noise hits both alike
        bare_times.append(timed(bare, bare_stdin))
        replay_times.append(timed([REPLAY, "replay", txn, "--json"]))
    ratio = statistics.median(replay_times) / statistics.median(bare_times)
    return {"runs": runs, "replay_median_s": statistics.median(replay_times),
            "bare_docker_run_median_s": statistics.median(bare_times),
            "ratio": ratio, "goal_ratio_at_most": 1.5, "met": ratio <= 1.5,
            "replay_s": replay_times, "bare_s": bare_times}


def _append(path: str, worker: int, count: int, start: multiprocessing.Event) -> None:
    from replay.ledger import Ledger, NewEntry

    ledger = Ledger(path)
    start.wait()
    for i in range(count):
        ledger.record(NewEntry(
            manifest_id="b" * 64, deployment="bench", seed=i,
            inputs={"income": 40000.0 + i, "debt": 1000.0 * worker, "age": 30},
            outputs={"decision": "approved", "score": i / (count + 1)},
        ))


def appends_per_second(writers: int, per_writer: int, folder: Path) -> float:
    from replay.ledger import Ledger

    path = str(folder / f"ledger-{writers}.db")
    Ledger(path)
    start = multiprocessing.Event()
    processes = [multiprocessing.Process(target=_append, args=(path, w, per_writer, start))
                 for w in range(writers)]
    for process in processes:
        process.start()
    time.sleep(1.0)  # every writer has opened the ledger and waits at the start line
    began = time.perf_counter()
    start.set()
    for process in processes:
        process.join()
        if process.exitcode != 0:
            raise SystemExit("a ledger writer failed")
    elapsed = time.perf_counter() - began
    report = Ledger(path).verify()
    if not report.ok or report.entries != writers * per_writer:
        raise SystemExit(f"ledger chain broken or short: {report}")
    return writers * per_writer / elapsed


def ledger_benchmark(total: int) -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        concurrent = appends_per_second(8, total // 8, Path(scratch))
        single = appends_per_second(1, total, Path(scratch))
    return {"decisions": total, "writers": 8, "per_second": concurrent,
            "single_writer_per_second": single, "ratio_to_single_writer": concurrent / single,
            "goal_per_second_at_least": 2000, "met": concurrent >= 2000, "chain_intact": True}


def main() -> int:
    with tempfile.TemporaryDirectory() as home:
        os.environ["REPLAY_HOME"] = home
        results = {"when": datetime.now(UTC).isoformat(timespec="seconds"),
                   "machine": machine(),
                   "replay_one_decision": replay_benchmark(runs=9),
                   "ledger_append": ledger_benchmark(total=16_000)}
    folder = ROOT / "bench" / "results"
    folder.mkdir(exist_ok=True)
    out = folder / f"{results['when'].replace(':', '')}.json"
    out.write_text(json.dumps(results, indent=2))
    replay_result, ledger_result = results["replay_one_decision"], results["ledger_append"]
    print(f"replay one decision: {replay_result['replay_median_s']:.2f} s median vs bare docker "
          f"run {replay_result['bare_docker_run_median_s']:.2f} s -> ratio "
          f"{replay_result['ratio']:.2f} (goal <= 1.5)")
    print(f"ledger, 8 writers: {ledger_result['per_second']:,.0f} decisions/s "
          f"({ledger_result['ratio_to_single_writer']:.2f}x one writer's "
          f"{ledger_result['single_writer_per_second']:,.0f}/s; goal >= 2,000), chain intact")
    print(f"written to {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
