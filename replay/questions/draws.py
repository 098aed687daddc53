"""Whether a seeded random draw, not the inputs, keeps a decision where it is.

Under one seed every variant of a decision draws the same number (the runner answers
each row as alone), so a draw that diverts a decision (say, approvals sent to review)
diverts it for every variant at once: no change of inputs can reach that decision.
The reference rows tell: if the share of them reaching it moves with the seed, the
seed decides whether it can be reached.
"""

from __future__ import annotations

from typing import Any

from replay.execution.predictor import Predictor, Row
from replay.manifests.schema import Schema

OTHER_SEEDS = 5  # seeds tried besides the decision's
ROWS = 50  # reference rows run with each seed


def draw_blocks(
    schema: Schema, predictor: Predictor, reference: list[Row], seed: int, target: Any
) -> bool:
    """Whether the reference rows' share reaching `target` changes with the seed."""
    field = schema.output.decision
    shares = {
        sum(row[field] == target for row in predictor.predict_batch(reference[:ROWS], other))
        for other in range(seed, seed + OTHER_SEEDS + 1)
    }
    return len(shares) > 1
