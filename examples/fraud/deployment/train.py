"""Train the fraud screen deterministically on synthetic card payments.

Writes model/model.joblib (tracked by DVC), data/reference.csv (a sample of training
rows kept with the manifest) and data/payments.csv (new payments for the examples,
among them descriptors with newlines, accents, an empty one and a 5,000-character one).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # bit-identical training on any machine

import joblib
import numpy as np
from fraud.features import CATEGORY, FEATURES, NUMBERS, TEXT, matrix
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

HERE = Path(__file__).parent
# category: (how often, risk, merchants as they write their descriptors)
MERCHANTS = {
    "grocery": (0.30, -0.8, ["REWE MARKT {n} BERLIN", "LIDL SAGT DANKE {n}", "EDEKA MÜLLER {n}"]),
    "fuel": (0.15, -0.4, ["SHELL {n}\nHAMBURG", "ARAL STATION {n}", "TOTAL ENERGIES {n} KÖLN"]),
    "restaurants": (0.15, -0.5, ["CAFÉ ZUR POST {n}", "SQ *BURGER BROS {n}", "PIZZA NAPOLI {n}"]),
    "travel": (0.12, 0.3, ["LUFTHANSA 220{n}", "DB BAHN ONLINE {n}", "BOOKING.COM HOTEL {n}"]),
    "electronics": (0.12, 0.6, ["AMZN MKTP DE*{n}", "MEDIAMARKT {n}", "APPLE.COM/BILL {n}"]),
    "gambling": (0.06, 1.5, ["BET365 {n}", "POKERSTARS EU {n}", "TIPICO SPORTWETTEN {n}"]),
    "crypto": (0.05, 1.8, ["BINANCE*CRYPTO {n}", "COINBASE EU {n}", "KRAKEN EXCHANGE {n}"]),
    "gift_cards": (0.05, 1.6, ["PAYPAL *GIFTCARDS {n}", "STEAM GIFT {n}", "G2A.COM {n}"]),
}
CATEGORIES = list(MERCHANTS)
# words fraudsters' descriptors carry whatever the category
SUSPICIOUS = ["VERIFY", "URGENT", "P2P TRANSFER", "WIRE"]


def payments(n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    shares = np.array([share for share, _, _ in MERCHANTS.values()])
    categories = rng.choice(CATEGORIES, size=n, p=shares / shares.sum())
    rows = []
    for category in categories:
        templates = MERCHANTS[str(category)][2]
        descriptor = str(rng.choice(templates)).format(n=int(rng.integers(100, 9999)))
        if rng.random() < 0.05:
            descriptor += " " + str(rng.choice(SUSPICIOUS))
        rows.append(
            {
                TEXT: descriptor,
                CATEGORY: str(category),
                "amount": float(round(rng.lognormal(3.8, 1.2), 2)),
                "card_present": bool(rng.random() < 0.55),
                "card_age_days": int(rng.gamma(2.0, 400.0)),
                "payments_24h": int(rng.poisson(2.0)),
                "distance_km": float(round(rng.exponential(40.0), 1)),
                "cardholder_age": int(rng.integers(18, 90)),
            }
        )
    return rows


def genuine(rows: list[dict], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    logit = np.array(
        [
            0.8
            - MERCHANTS[row[CATEGORY]][1]
            - 0.6 * np.log1p(row["amount"] / 100)
            + 1.2 * row["card_present"]
            + 0.6 * np.log1p(row["card_age_days"] / 100)
            - 0.35 * row["payments_24h"]
            - 0.5 * np.log1p(row["distance_km"] / 100)
            - 1.5 * any(word in row[TEXT] for word in SUSPICIOUS)
            for row in rows
        ]
    )
    return (rng.random(len(rows)) < 1 / (1 + np.exp(-logit))).astype(int)


def pipeline() -> Pipeline:
    prepare = ColumnTransformer(
        [
            # a scalar column index hands the vectorizer a 1-D column of strings
            (
                "descriptor",
                HashingVectorizer(
                    analyzer="char_wb", ngram_range=(3, 4), n_features=512, alternate_sign=False
                ),
                0,
            ),
            ("category", OneHotEncoder(handle_unknown="error"), [1]),
            ("numbers", "passthrough", list(range(2, 2 + len(NUMBERS)))),
        ]
    )
    model = GradientBoostingClassifier(n_estimators=150, max_depth=3, random_state=0)
    return Pipeline([("prepare", prepare), ("classify", model)])


def write_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FEATURES)
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "card_present": str(row["card_present"]).lower()})


def new_payments() -> list[dict]:
    """New payments, with the texts people really meet: a newline, accents, none at all,
    and a descriptor 5,000 characters long."""
    rows = payments(200, seed=33)
    rows[0][TEXT] = "SHELL 0423\nHAMBURG"
    rows[1][TEXT] = "BÄCKEREI ŠKODA — ZÜRICH ☕"
    rows[2][TEXT] = ""
    rows[3][TEXT] = ("AMZN MKTP DE*2K4 " * 300)[:5000]
    return rows


def main() -> None:
    rows = payments(6_000, seed=31)
    labels = genuine(rows, seed=32)
    model = pipeline().fit(matrix(rows), labels)
    (HERE / "model").mkdir(exist_ok=True)
    joblib.dump(model, HERE / "model" / "model.joblib")
    write_csv(HERE / "data" / "reference.csv", rows[:300])
    write_csv(HERE / "data" / "payments.csv", new_payments())
    print(f"trained on {len(rows)} payments, genuine base rate {labels.mean():.2f}")


if __name__ == "__main__":
    main()
