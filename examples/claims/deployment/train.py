"""Train the claims model deterministically on synthetic claims.

Writes model/model.joblib (tracked by DVC), data/reference.csv (a sample of training
rows kept with the manifest) and data/claims.csv (new claims for the examples).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # bit-identical training on any machine

import joblib
import numpy as np
from claims.features import FEATURES, NUMBERS, matrix
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

HERE = Path(__file__).parent
REGIONS = {"north": 0.3, "south": 0.0, "east": -0.5, "west": 0.1}
CHANNELS = {"agent": 0.5, "online": -0.4, "phone": 0.0}


def claims(n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 90, size=n)
    return [
        {
            "claim_amount": float(round(amount, -1)),
            "policy_years": int(min(years, a - 18)),
            "prior_claims": int(prior),
            "police_report": bool(report),
            "age": int(a),
            "channel": str(channel),
            "region": str(region),
        }
        for amount, years, prior, report, a, channel, region in zip(
            rng.lognormal(mean=8.8, sigma=0.9, size=n).clip(100, 120_000),
            rng.gamma(2.0, 4.0, size=n).round(),
            rng.poisson(0.7, size=n),
            rng.random(n) < 0.4,
            age,
            rng.choice(list(CHANNELS), size=n),
            rng.choice(list(REGIONS), size=n),
            strict=True,
        )
    ]


def legitimate(rows: list[dict], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    logit = np.array(
        [
            1.4
            - 1.1 * np.log(row["claim_amount"] / 5_000)
            + 0.06 * row["policy_years"]
            - 0.7 * row["prior_claims"]
            + 0.9 * row["police_report"]
            + REGIONS[row["region"]]
            + CHANNELS[row["channel"]]
            for row in rows
        ]
    )
    return (rng.random(len(rows)) < 1 / (1 + np.exp(-logit))).astype(int)


def pipeline() -> Pipeline:
    numbers = list(range(len(NUMBERS)))
    categories = list(range(len(NUMBERS), len(FEATURES)))
    log_amount = Pipeline(
        [("log", FunctionTransformer(np.log1p, validate=True)), ("scale", StandardScaler())]
    )
    prepare = ColumnTransformer(
        [
            ("amount", log_amount, numbers[:1]),
            ("numbers", StandardScaler(), numbers[1:]),
            ("categories", OneHotEncoder(handle_unknown="error"), categories),
        ]
    )
    return Pipeline([("prepare", prepare), ("classify", LogisticRegression(C=1.0))])


def write_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FEATURES)
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "police_report": str(row["police_report"]).lower()})


def main() -> None:
    rows = claims(5_000, seed=21)
    labels = legitimate(rows, seed=22)
    model = pipeline().fit(matrix(rows), labels)
    (HERE / "model").mkdir(exist_ok=True)
    joblib.dump(model, HERE / "model" / "model.joblib")
    write_csv(HERE / "data" / "reference.csv", rows[:300])
    write_csv(HERE / "data" / "claims.csv", claims(200, seed=23))
    print(f"trained on {len(rows)} claims, legitimate base rate {labels.mean():.2f}")


if __name__ == "__main__":
    main()
