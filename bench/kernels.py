"""`make bench`, kernels: what pinning the numeric kernels costs (the same bits on any
x86-64 CPU), against the same deployment captured with `kernels: native` in the same run.

For each of the two manifests of the credit example: `replay.replay_many` of 100,000
logged decisions on 2 Dask workers, and a 10,000-variant sweep in the warm container
(median of 3). And for the small numpy network of `tests/fixtures/kernels` (a matrix
product and tanh on every row, where the kernels matter most): a 10,000-variant sweep.

    python bench/kernels.py        # alone; `bench/run.py` runs it with the rest
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from measure import machine, median_seconds, record_in_bulk, write_results

ROOT = Path(__file__).parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "examples")]
KINDS = ("baseline", "native")


def native(workspace: Path, name: str) -> None:
    """The deployment at `workspace` declaring `kernels: native`, under another name (so
    that its history is its own), committed."""
    spec = workspace / "replay.yaml"
    text = spec.read_text().replace(f"name: {name}\n", f"name: {name}-native\nkernels: native\n")
    spec.write_text(text)
    subprocess.run(["git", "commit", "-qam", "kernels: native"], cwd=workspace, check=True)


def swept(manifest, person: dict, vary: list) -> dict:
    """A 10,000-variant sweep of one logged decision of `person`, in the warm container."""
    import replay
    from replay.execution.warm import WarmDeployment
    from replay.ledger.decisions import record_decision

    with WarmDeployment(manifest.manifest_id) as warm:
        outputs = warm.predict(person, seed=5)
        txn = record_decision(manifest.manifest_id, person, outputs, seed=5).txn_id
        variants = len(replay.sweep(txn, vary, warm=warm).frame)
        seconds = median_seconds(lambda: replay.sweep(txn, vary, warm=warm), 3)
    return {"variants": variants, "seconds": seconds, "per_second": variants / seconds}


def logged(manifest, people: list[dict], decisions: int) -> None:
    """`decisions` decisions of the manifest's deployment, each its own applicant and seed."""
    from replay.execution.warm import WarmDeployment

    draw = random.Random(1)
    rows = [dict(people[i % len(people)]) for i in range(decisions)]
    for row in rows:
        row["income"] = float(round(row["income"] * draw.uniform(0.8, 1.2), 2))
    seeds = [draw.randrange(2**32) for _ in rows]
    with WarmDeployment(manifest.manifest_id) as warm:
        record_in_bulk(warm, rows, seeds)


def replayed(manifest, decisions: int) -> dict:
    """`replay_many` of the deployment's whole history, on 2 workers."""
    import replay

    started = time.perf_counter()
    summary = replay.replay_many(deployment=manifest.name, workers=2, keep_reproduced=False)
    seconds = time.perf_counter() - started
    if not summary.all_reproduced or summary.total < decisions:
        raise SystemExit(f"{manifest.name}: {summary.counts} of {decisions} replayed")
    return {"decisions": summary.total, "seconds": seconds, "per_second": summary.total / seconds}


def kernels_benchmark(folder: Path, decisions: int = 100_000) -> dict:
    """Both manifests captured first, then measured in the order pinned, native, native,
    pinned (this machine's speed drifts within minutes), each keeping its faster run."""
    from workspace import committed_copy, make_workspace, read_new_cases

    import replay
    from replay.questions.sweeps import Range

    credit, network = {}, {}
    for kind in KINDS:
        workspace = make_workspace("credit", folder / f"credit-{kind}", folder / "dvc-remote")
        fixture = committed_copy(ROOT / "tests" / "fixtures" / "kernels", folder / f"net-{kind}")
        if kind == "native":
            native(workspace, "credit-approval")
            native(fixture, "kernels")
        for deployment, into in ((workspace, credit), (fixture, network)):
            into[kind] = replay.capture(deployment)
            replay.build(into[kind].manifest_id)
        people = read_new_cases(workspace, "credit")
        logged(credit[kind], people, decisions)
    grid = [Range("income", 10000, 300000, 100), Range("debt", 0, 100000, 100)]
    person = {"income": 52000.0, "debt": 18000.0, "years": 6}
    results: dict = {kind: {} for kind in KINDS}
    for kind in (*KINDS, *reversed(KINDS)):
        runs = {
            "credit_replay_many": replayed(credit[kind], decisions),
            "credit_sweep": swept(credit[kind], people[0], grid),
            "network_sweep": swept(network[kind], person, grid),
        }
        for part, run in runs.items():
            kept = results[kind].get(part)
            if kept is None or run["per_second"] > kept["per_second"]:
                results[kind][part] = run
    results["pinned_to_native_ratio"] = {
        part: results["baseline"][part]["per_second"] / results["native"][part]["per_second"]
        for part in results["baseline"]
    }
    return results


def summary(results: dict) -> list[str]:
    ratios = results["pinned_to_native_ratio"]
    names = {
        "credit_sweep": "credit sweep of 10,000",
        "credit_replay_many": "credit replay of 100,000 on 2 workers",
        "network_sweep": "numpy network sweep of 10,000",
    }
    return [
        f"kernels pinned vs native, {names[part]}: {results['baseline'][part]['per_second']:,.0f}/s"
        f" vs {results['native'][part]['per_second']:,.0f}/s -> ratio {ratio:.2f}"
        for part, ratio in ratios.items()
    ]


def main() -> None:
    with tempfile.TemporaryDirectory() as home:
        os.environ["REPLAY_HOME"] = home
        results = {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine(),
            **kernels_benchmark(Path(home) / "kernels-bench"),
        }
    write_results("kernels", results, summary(results))


if __name__ == "__main__":
    main()
