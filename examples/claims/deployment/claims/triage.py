"""Claims triage: `load(model_dir)` once, then `triage(claim)` per claim.

Three layers decide, in this order:
1. a rule: claims above REFER_ABOVE go to an adjuster, unscored (`score` is null);
2. the model's score: below APPROVE_AT the claim is denied;
3. a random draw: REVIEW_RATE of the approvals go to manual review instead. It draws
   from `random`, which the replay runner seeds before every claim, so a replay with
   the logged seed draws the same number.
"""

from __future__ import annotations

import random
from pathlib import Path

import joblib

from claims.features import matrix

REFER_ABOVE = 50_000
APPROVE_AT = 0.6
REVIEW_RATE = 0.1

_pipeline = None


def load(model_dir: str) -> None:
    """`model_dir` is laid out like this folder: the model file is at model/model.joblib."""
    global _pipeline
    _pipeline = joblib.load(Path(model_dir) / "model" / "model.joblib")


def triage(claim: dict) -> dict:
    return predict_batch([claim])[0]


def predict_batch(claims: list[dict]) -> list[dict]:
    """Scores every claim the rule leaves in one call of the Pipeline. The review draw
    runs on from claim to claim here; the replay runner notices that a batch drew and
    answers it claim by claim, each seeded, so every claim draws as if it came alone."""
    scored = [claim for claim in claims if claim["claim_amount"] <= REFER_ABOVE]
    scores = iter(_pipeline.predict_proba(matrix(scored))[:, 1] if scored else [])
    answers = []
    for claim in claims:
        if claim["claim_amount"] > REFER_ABOVE:
            answers.append(
                {"decision": "refer", "score": None, "reason": "large claim: an adjuster decides"}
            )
            continue
        score = float(next(scores))
        if score < APPROVE_AT:
            decision, reason = "deny", "risk score below the approval line"
        elif random.random() < REVIEW_RATE:
            decision, reason = "review", "selected at random for manual review"
        else:
            decision, reason = "approve", "meets approval criteria"
        answers.append({"decision": decision, "score": score, "reason": reason})
    return answers
