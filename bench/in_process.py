"""`make bench`: a deployment's `predict_batch` called in a process of its own, started
with the manifest's runtime environment (its thread counts and pinned numeric kernels,
which only take effect when set before numpy loads), timed on request.

The benchmark compares the container path with this, like for like: same model file,
same kernels, same threads. Requests alternate with the container's, so that the
machine's drift hits both alike.

    python bench/in_process.py WORKSPACE MODULE ROWS.json
    stdin: one word per line, `rows` or `seeded`; stdout: the seconds of that call
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import time
from pathlib import Path


class InProcessModel:
    """The worker, seen from the benchmark: `seconds("rows")` times one call."""

    def __init__(self, workspace: Path, module: str, rows: list[dict], seed: int, env: dict):
        self.rows_file = workspace.parent / f"{workspace.name}-bench-rows.json"
        self.rows_file.write_text(json.dumps({"rows": rows, "seed": seed}))
        self.process = subprocess.Popen(
            [sys.executable, __file__, str(workspace), module, str(self.rows_file)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )

    def seconds(self, call: str) -> float:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(call + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        if not answer:
            raise SystemExit(f"the in-process worker stopped (exit {self.process.wait()})")
        return float(answer)

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait()
        self.rows_file.unlink(missing_ok=True)

    def __enter__(self) -> InProcessModel:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def main(workspace: str, module_name: str, rows_file: str) -> int:
    sys.path.insert(0, workspace)
    module = importlib.import_module(module_name)
    module.load(workspace)
    given = json.loads(Path(rows_file).read_text())
    rows, seeds = given["rows"], [given["seed"]] * len(given["rows"])
    calls = {
        "rows": lambda: module.predict_batch(rows),
        "seeded": lambda: module.predict_batch(rows, seeds),
    }
    calls["rows"]()  # the first call pays for lazy imports and caches
    for line in sys.stdin:
        started = time.perf_counter()
        calls[line.strip()]()
        print(time.perf_counter() - started, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
