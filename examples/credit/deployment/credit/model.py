"""The deployment's entrypoint: `load(model_dir)` once, then `predict(inputs)` per applicant."""

from __future__ import annotations

import random
from pathlib import Path

import joblib
import numpy as np

from credit.features import FEATURES

APPROVE_AT = 0.5
AUDIT_RATE = 0.05  # share of decisions sampled at random for human review

_model = None


def load(model_dir: str) -> None:
    """`model_dir` is laid out like this folder: the model file is at model/model.joblib."""
    global _model
    _model = joblib.load(Path(model_dir) / "model" / "model.joblib")


def _reason(inputs: dict, score: float) -> str:
    if score >= APPROVE_AT:
        return "meets approval criteria"
    if inputs["late_payments"] >= 3:
        return "history of late payments"
    if inputs["debt"] > 0.6 * inputs["income"]:
        return "debt too high relative to income"
    if inputs["loan_amount"] > 0.5 * inputs["income"]:
        return "loan amount too high relative to income"
    if inputs["credit_history_years"] < 2:
        return "credit history too short"
    return "overall risk score below threshold"


def _decide(inputs: dict, score: float, draw: float) -> dict:
    return {
        "decision": "approved" if score >= APPROVE_AT else "rejected",
        "score": score,
        "reason": _reason(inputs, score),
        "audit": draw < AUDIT_RATE,
    }


def predict(inputs: dict) -> dict:
    return predict_batch([inputs])[0]


def predict_batch(rows: list[dict], seeds: list[int] | None = None) -> list[dict]:
    """The audit draw is random but replayable: the replay runner seeds `random` before
    each request, and gives a batch one seed per row; `random.Random(seed).random()` is
    the draw a single request seeded with `seed` makes, so every row draws as if alone."""
    if seeds is None:
        draws = [random.random() for _ in rows]
    else:  # a sweep's rows share one seed: one generator per distinct seed
        first_draw = {seed: random.Random(seed).random() for seed in set(seeds)}
        draws = [first_draw[seed] for seed in seeds]
    matrix = np.array([[float(row[name]) for name in FEATURES] for row in rows])
    scores = _model.predict_proba(matrix)[:, 1]
    return [
        _decide(row, float(score), draw)
        for row, score, draw in zip(rows, scores, draws, strict=True)
    ]
