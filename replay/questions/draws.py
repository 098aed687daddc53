"""Whether a seeded random draw, not the inputs, keeps a decision where it is.

Under one seed every variant of a decision draws the same number (the runner answers
each row as alone), so a draw that diverts decisions (say, approvals sent to review)
diverts them for every variant at once: no change of inputs can reach the diverted
decision under that seed. The reference rows tell: if under the decision's seed all of
them are on one side of a decision value, and under some other seed they are not, the
seed's draw put them there.
"""

from __future__ import annotations

from typing import Any

from replay.execution.predictor import Predictor, Row
from replay.manifests.schema import Schema

REFERENCE_SEEDS = 5  # other seeds the reference rows are run with
ROWS = 50  # reference rows run with each seed


def draw_keeps(
    schema: Schema,
    predictor: Predictor,
    reference: list[Row],
    seed: int,
    value: Any,
    *,
    reached: bool,
) -> bool:
    """Whether under `seed` every reference row reaches `value` (`reached`) or none does
    (not `reached`), while under another seed that is not so."""
    rows = reference[:ROWS]
    field = schema.output.decision

    def reaching(under: int) -> int:
        return sum(answer[field] == value for answer in predictor.predict_batch(rows, under))

    side = len(rows) if reached else 0
    if reaching(seed) != side:
        return False
    return any(reaching(other) != side for other in range(seed + 1, seed + REFERENCE_SEEDS + 1))
