"""Train the credit model deterministically on synthetic applicants.

Writes model/model.joblib (tracked by DVC), data/reference.csv (a sample of training
rows kept with the manifest) and data/applicants.csv (new applicants for the demo).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # bit-identical training on any machine

import joblib
import numpy as np
from credit.features import FEATURES, MONOTONE
from sklearn.ensemble import HistGradientBoostingClassifier

HERE = Path(__file__).parent


def applicants(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    income = np.round(rng.lognormal(mean=10.9, sigma=0.45, size=n), -2).clip(8_000, 400_000)
    debt = np.round(income * rng.beta(2, 5, size=n) * 1.2, -2)
    loan = np.round(rng.uniform(2_000, 60_000, size=n), -2)
    age = rng.integers(18, 80, size=n)
    employed = np.minimum(rng.gamma(2.0, 3.5, size=n).round(1), age - 16)
    history = np.minimum(rng.gamma(2.5, 3.0, size=n).round(1), age - 17)
    late = rng.poisson(0.9, size=n)
    return np.column_stack([income, debt, loan, age, employed, history, late])


def repaid(rows: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    income, debt, loan, _age, employed, history, late = rows.T
    logit = (
        1.2 * np.log(income / 40_000)
        - 3.0 * debt / income
        - 2.0 * loan / income
        + 0.08 * employed
        + 0.06 * history
        - 0.7 * late
        + 0.8
    )
    return (rng.random(len(rows)) < 1 / (1 + np.exp(-logit))).astype(int)


def write_csv(path: Path, rows: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    integer = {"age", "late_payments"}
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(FEATURES)
        for row in rows:
            writer.writerow(
                int(value) if name in integer else float(value)
                for name, value in zip(FEATURES, row, strict=True)
            )


def main() -> None:
    # Another seed trains a challenger on other applicants (a backtest's retrained model);
    # the demo and the tests' own model use the default.
    seed = int(os.environ.get("CREDIT_TRAINING_SEED", "7"))
    rows = applicants(5_000, seed=seed)
    labels = repaid(rows, seed=seed + 1)
    model = HistGradientBoostingClassifier(
        max_iter=150,
        learning_rate=0.08,
        max_leaf_nodes=15,
        monotonic_cst=[MONOTONE[name] for name in FEATURES],
        early_stopping=False,
        random_state=0,
    ).fit(rows, labels)
    (HERE / "model").mkdir(exist_ok=True)
    joblib.dump(model, HERE / "model" / "model.joblib")
    write_csv(HERE / "data" / "reference.csv", rows[:300])
    write_csv(HERE / "data" / "applicants.csv", applicants(200, seed=11))
    print(f"trained on {len(rows)} applicants, approval base rate {labels.mean():.2f}")


if __name__ == "__main__":
    main()
