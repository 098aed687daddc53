"""Reason codes: how much each feature moved this decision's score, and why it went so.

Shapley values against the reference sample stored with the manifest: the value of a
set S of features is the mean score when the applicant's own values are kept for S and
each reference row supplies the rest. Every score is computed by the original
container. Up to EXACT_UP_TO features every coalition is evaluated (exact values);
above that, permutations are sampled. Contributions add up to the applicant's score
minus the mean score of the reference sample.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import asdict, dataclass
from typing import Any

from replay.errors import BadInput
from replay.execution.decision import Decision
from replay.execution.inputs import format_value
from replay.execution.predictor import Predictor, Row
from replay.execution.warm import WarmDeployment
from replay.manifests.schema import Schema
from replay.questions.asking import asking
from replay.settings import Settings

EXACT_UP_TO = 10


@dataclass(frozen=True)
class Contribution:
    feature: str
    value: Any
    reference_mean: float | None
    contribution: float


@dataclass(frozen=True)
class Explanation:
    txn_id: str
    manifest_id: str
    decision: Any
    favourable: bool
    score: float
    base_score: float  # mean score of the reference sample
    contributions: list[Contribution]  # strongest effect first
    method: str
    reference_rows: int
    unused: list[str]  # features that moved no score for this applicant

    @property
    def features(self) -> list[str]:
        return [item.feature for item in self.contributions]

    @property
    def reasons(self) -> list[str]:
        """Plain words for the (at most four) features that pulled the score down most."""
        return self.adverse_reasons(4)

    def adverse_reasons(self, top: int) -> list[str]:
        """Plain words for the `top` features that pulled the score down the most."""
        adverse = sorted(
            (c for c in self.contributions if c.contribution < 0), key=lambda c: c.contribution
        )[:top]
        return [
            f"{c.feature} of {format_value(c.value)}"
            + ("" if c.reference_mean is None else f" (typical {format_value(c.reference_mean)})")
            + f" lowered the score by {-c.contribution:.3f}"
            for c in adverse
        ]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "reasons": self.reasons}


def _orders(n: int, samples: int) -> list[list[int]]:
    generator = random.Random(0)
    orders = []
    for _ in range(samples):
        order = list(range(n))
        generator.shuffle(order)
        orders.append(order)
    return orders


def _coalitions(n: int, orders: list[list[int]]) -> list[frozenset[int]]:
    """Every subset (exact), or the prefixes of the sampled orders."""
    if n <= EXACT_UP_TO:
        return [
            frozenset(c) for size in range(n + 1) for c in itertools.combinations(range(n), size)
        ]
    prefixes = {frozenset(order[:k]) for order in orders for k in range(n + 1)}
    return sorted(prefixes, key=len)


def explanation_of(
    schema: Schema,
    decision: Decision,
    predictor: Predictor,
    reference: list[Row],
    samples: int = 200,
) -> Explanation:
    """Each feature's Shapley contribution to `decision`'s score, every score computed by
    `predictor` with the decision's seed over the `reference` rows."""
    features = list(schema.inputs)
    n = len(features)
    applicant = decision.inputs
    orders = [] if n <= EXACT_UP_TO else _orders(n, samples)
    coalitions = _coalitions(n, orders)
    batch = [
        {name: applicant[name] if i in coalition else row[name] for i, name in enumerate(features)}
        for coalition in coalitions
        for row in reference
    ]
    output = schema.output
    score_field = output.score
    if decision.outputs.get(score_field) is None:
        raise BadInput(
            f"{decision.txn_id} has no {score_field} (null): there is no score to explain"
        )
    outputs = predictor.predict_batch(batch, decision.seed)
    if any(row[score_field] is None for row in outputs):
        raise BadInput(
            f"some variants of {decision.txn_id} have a null {score_field}: "
            "Shapley values need a score for every mix of its inputs and the reference rows"
        )
    size = len(reference)
    value = {
        coalition: sum(float(o[score_field]) for o in outputs[k * size : (k + 1) * size]) / size
        for k, coalition in enumerate(coalitions)
    }
    shapley = _shapley(n, value) if n <= EXACT_UP_TO else _sampled_shapley(n, value, orders)
    marginal_zero = {
        i
        for i in range(n)
        if all(
            math.isclose(value[s | {i}], value[s], abs_tol=0.0)
            for s in value
            if i not in s and (s | {i}) in value
        )
    }
    contributions = sorted(
        (
            Contribution(
                name,
                applicant[name],
                sum(r[name] for r in reference) / size if schema.inputs[name].numeric else None,
                shapley[i],
            )
            for i, name in enumerate(features)
        ),
        key=lambda c: -abs(c.contribution),
    )
    return Explanation(
        txn_id=decision.txn_id,
        manifest_id=decision.manifest_id,
        decision=decision.outputs[output.decision],
        favourable=decision.outputs[output.decision] == output.favourable,
        score=float(decision.outputs[score_field]),
        base_score=value[frozenset()],
        contributions=contributions,
        method="exact Shapley" if n <= EXACT_UP_TO else f"sampled Shapley ({samples} orders)",
        reference_rows=size,
        unused=[features[i] for i in sorted(marginal_zero)],
    )


def explain(
    txn_id: str,
    *,
    reference_rows: int = 50,
    samples: int = 200,
    warm: WarmDeployment | None = None,
    settings: Settings | None = None,
) -> Explanation:
    """Each feature's contribution to a logged decision's score, from its own container."""
    with asking(txn_id, warm, settings) as (decision, running):
        reference = running.reference_rows(reference_rows)
        return explanation_of(running.manifest.schema, decision, running, reference, samples)


def _shapley(n: int, value: dict[frozenset[int], float]) -> list[float]:
    weights = [math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n) for k in range(n)]
    result = []
    for i in range(n):
        total = 0.0
        for coalition, worth in value.items():
            if i not in coalition:
                total += weights[len(coalition)] * (value[coalition | {i}] - worth)
        result.append(total)
    return result


def _sampled_shapley(
    n: int, value: dict[frozenset[int], float], orders: list[list[int]]
) -> list[float]:
    totals = [0.0] * n
    for order in orders:
        before: frozenset[int] = frozenset()
        for i in order:
            after = before | {i}
            totals[i] += value[after] - value[before]
            before = after
    return [total / len(orders) for total in totals]
