"""`make bench`, frameworks: each library a team brings, from capture to a replayed
decision. Registered in a real MLflow server (the models of the registry tests, and a
small PyTorch network logged by `mlflow.pytorch`): scikit-learn (skops), LightGBM,
XGBoost and PyTorch; and LightGBM and XGBoost as folder deployments (the fixtures of
the framework tests). For each: `replay capture` with its lock resolved anew
(`--relock`) and again with the stored lock, `replay build` from nothing, the image's
size, and one logged decision replayed against a bare `docker run` of the same image.

    python bench/frameworks.py        # alone; `bench/run.py` runs it with the rest
"""

from __future__ import annotations

import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from measure import REPLAY, machine, one_decision_against_docker_run, run_timed, write_results

ROOT = Path(__file__).parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "examples")]

APPLICANT = {"income": 2100.0, "debts": 1800.5, "age": 29, "region": "north"}
NUMBERS = {key: APPLICANT[key] for key in ("income", "debts", "age")}
BOUNDS = {
    "income": {"min": 0, "max": 20000},
    "debts": {"min": 0, "max": 10000},
    "age": {"min": 18, "max": 90, "immutable": True},
}
# name: (what capture is given, the score output, the applicant)
REGISTERED = {
    "scikit-learn (registry, skops)": ("models:/credit-sk/1", "prediction_1", APPLICANT),
    "LightGBM (registry)": ("models:/credit-lgbm/1", "prediction", NUMBERS),
    "XGBoost (registry)": ("models:/credit-xgb/1", "prediction", NUMBERS),
    "PyTorch (registry, pt2)": ("models:/credit-torch/1", "prediction", NUMBERS),
}
FOLDERS = {
    "LightGBM (folder)": (
        "lightgbm",
        {"income": 41000.0, "debt": 12000.0, "age": 35, "employment": "salaried"},
    ),
    "XGBoost (folder)": (
        "xgboost",
        {"amount": 240, "items": 3, "account_days": 400, "first_order": False, "express": True},
    ),
}


def frameworks_benchmark(folder: Path, runs: int = 5) -> dict:
    """The figures of every framework, by name (see the module's docstring)."""
    from workspace import committed_copy

    from tests.fixtures.registry.team import team_server

    folder.mkdir(parents=True, exist_ok=True)
    results = {}
    for name, (fixture, applicant) in FOLDERS.items():
        deployment = committed_copy(ROOT / "tests" / "fixtures" / fixture, folder / fixture)
        results[name] = _measure([str(deployment)], applicant, runs)
    (folder / "team").mkdir()
    with team_server(folder / "team", torch=True) as (url, _):
        os.environ["MLFLOW_TRACKING_URI"] = url
        try:
            for name, (uri, score, applicant) in REGISTERED.items():
                spec = _spec(folder / f"{uri.split('/')[1]}.yaml", score, applicant)
                results[name] = _measure([uri, "--spec", str(spec)], applicant, runs)
        finally:
            del os.environ["MLFLOW_TRACKING_URI"]
    return results


def _spec(path: Path, score: str, applicant: dict) -> Path:
    """What the model's signature cannot say: bounds, the score and its threshold rule."""
    import yaml

    rule = {"threshold": 0.5, "at_or_above": "approve", "below": "reject"}
    inputs = {key: bounds for key, bounds in BOUNDS.items() if key in applicant}
    output = {"score": score, "favourable": "approve", "rule": rule}
    path.write_text(yaml.safe_dump({"inputs": inputs, "output": output}, sort_keys=False))
    return path


def _measure(capture_args: list[str], applicant: dict, runs: int) -> dict:
    import docker

    import replay
    from replay.settings import load_settings
    from replay.stores.manifests import manifest_store

    first, printed = run_timed([REPLAY, "capture", "--relock", *capture_args])
    manifest_id = printed.split()[-1]
    again, _ = run_timed([REPLAY, "capture", *capture_args])
    build_s, _ = run_timed([REPLAY, "build", manifest_id])
    built = replay.build(manifest_id)  # the image just built, reused: its ids
    manifest = manifest_store(load_settings()).load(manifest_id)
    size = docker.from_env().images.get(built.image_id).attrs["Size"]
    return {
        "manifest": manifest_id,
        "capture_relock_s": first,
        "recapture_s": again,
        "build_s": build_s,
        "image_mb": round(size / 1e6),
        "system_packages": [p.name for p in manifest.environment.system_packages],
        "replay_one_decision": one_decision_against_docker_run(manifest, built, applicant, runs),
    }


def summary(results: dict) -> list[str]:
    """One line per framework, as `make bench` prints them."""
    lines = []
    for name, figures in results.items():
        replayed = figures["replay_one_decision"]
        lines.append(
            f"{name}: capture {figures['capture_relock_s']:.1f} s (lock resolved), "
            f"{figures['recapture_s']:.1f} s again; build {figures['build_s']:.0f} s, image "
            f"{figures['image_mb']} MB; replay {replayed['replay_median_s']:.2f} s vs bare "
            f"docker run {replayed['bare_docker_run_median_s']:.2f} s -> ratio "
            f"{replayed['ratio']:.2f} (goal <= 1.5)"
        )
    return lines


def main() -> int:
    with tempfile.TemporaryDirectory() as home:
        os.environ["REPLAY_HOME"] = home
        results = {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine(),
            "frameworks": frameworks_benchmark(Path(home)),
        }
    write_results("frameworks", results, summary(results["frameworks"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
