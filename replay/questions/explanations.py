"""Reasons for a decision: how much each input moved it, and what decided it when no
input did.

Shapley values against the reference sample stored with the manifest, computed twice
from one batch of the original container's answers:
- for the decision itself: the value of a set S of features is the share of mixes
  (the applicant's own values for S, a reference row's for the rest) that reach the
  favourable decision, each mix run with the decision's seed (the runner answers every
  row as alone, so a seeded draw is the same draw in every mix);
- for the score, beside it, when every mix has a numeric score (a rule that answers
  with a null score leaves only the decision's).
Up to EXACT_UP_TO features every coalition is evaluated (exact values); above that,
permutations are sampled. Contributions add up to the applicant's value minus the
reference sample's.

Reasons are mutable features whose contribution to the decision is not negligible, in
the decision's direction; immutable (protected) features are never reasons, and are
listed apart, for a compliance reviewer, when they contributed. The applicant's own
inputs are also run with other seeds. When no input accounts for the decision, a seeded
random draw decided if the decision changes with the seed, or if the seed's draw keeps
every reference row on the decision's side while other seeds do not; else a rule (or
the model's overall level) did.
"""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, TypeGuard

from replay.display import format_value
from replay.errors import BadInput
from replay.execution.decision import Decision
from replay.execution.predictor import Predictor, Row
from replay.execution.warm import WarmDeployment
from replay.manifests.schema import Schema
from replay.questions.asking import asking
from replay.questions.draws import draw_keeps
from replay.settings import Settings

EXACT_UP_TO = 10
# A contribution of less than one point to the share of mixes reaching the favourable
# decision is no reason: below it, the feature changes the decision for almost nobody.
NEGLIGIBLE = 0.01
OTHER_SEEDS = 20  # runs of the applicant's own inputs that tell a draw from a rule
EXPLANATION_ROWS = 50  # reference rows a decision's inputs are mixed with, by default


@dataclass(frozen=True)
class Contribution:
    feature: str
    value: Any
    reference_mean: float | None  # None for a category or a boolean
    decision: float  # to the share of mixes reaching the favourable decision
    score: float | None  # to the score; None when some mixes have no numeric score
    immutable: bool

    @property
    def negligible(self) -> bool:
        return abs(self.decision) < NEGLIGIBLE


@dataclass(frozen=True)
class Explanation:
    txn_id: str
    manifest_id: str
    seed: int
    decision: Any
    favourable_value: Any
    favourable: bool
    score: float | None  # None when the decision has no numeric score
    base_rate: float  # share of the reference sample reaching the favourable decision
    base_score: float | None  # mean score of the reference sample, when it has scores
    contributions: list[Contribution]  # strongest effect on the decision first
    decided_by: str  # "inputs", "random draw" or "rule"
    other_seeds: dict[str, int]  # the decisions these inputs get with other seeds
    method: str
    reference_rows: int
    unused: list[str]  # features that moved neither the decision nor the score here

    @property
    def features(self) -> list[str]:
        return [item.feature for item in self.contributions]

    @property
    def main(self) -> list[Contribution]:
        """The (at most four) contributions behind the main reasons, strongest first:
        mutable, not negligible, in the decision's direction."""
        return self._ranked(mutable=True)[:4]

    @property
    def reasons(self) -> list[str]:
        """Plain words for the main reasons, never an immutable feature."""
        return [self._reason(c) for c in self.main]

    @property
    def protected(self) -> list[str]:
        """Immutable features that contributed: flagged for review, never to be changed."""
        return [
            f"{self._reason(c)} (immutable: flagged for review, not something to change)"
            for c in self._ranked(mutable=False)
        ]

    @property
    def summary(self) -> str:
        """What decided, in one plain sentence."""
        others = ", ".join(f"{value} {count}" for value, count in self.other_seeds.items())
        if self.decided_by == "random draw" and set(self.other_seeds) != {str(self.decision)}:
            return (
                f"A seeded random draw decided {self.decision}, not the inputs: no mix of "
                f"them with typical values changes it under seed {self.seed}, while the "
                f"same inputs with {OTHER_SEEDS} other seeds give {others}."
            )
        if self.decided_by == "random draw":
            keeps = "brings" if self.favourable else "keeps"
            where = "to" if self.favourable else "from"
            return (
                f"Under seed {self.seed} a seeded random draw {keeps} every mix of these "
                f"inputs with typical values {where} {self.favourable_value}, so no input is "
                f"a reason under it; with {OTHER_SEEDS} other seeds these inputs give {others}."
            )
        if self.decided_by == "rule":
            return (
                f"No input accounts for {self.decision}: every mix of the inputs with "
                f"typical values gives the same decision under seed {self.seed}, and so do "
                f"{OTHER_SEEDS} other seeds; a rule (or the model's overall level) decided."
            )
        names = [c.feature for c in self.main]
        lead = f"{self.decision}, mainly because of {', '.join(names)}" if names else None
        protected = [c.feature for c in self._ranked(mutable=False)]
        parts = [lead or f"{self.decision}: no mutable input moved it"]
        if protected:
            parts.append(f"immutable features that contributed: {', '.join(protected)}")
        return "; ".join(parts) + "."

    def _ranked(self, *, mutable: bool) -> list[Contribution]:
        """Non-negligible contributions in the decision's direction, strongest first."""
        sign = 1 if self.favourable else -1
        chosen = [
            c
            for c in self.contributions
            if c.immutable != mutable and not c.negligible and sign * c.decision > 0
        ]
        return sorted(chosen, key=lambda c: (-sign * c.decision, -sign * (c.score or 0.0)))

    def _reason(self, c: Contribution) -> str:
        # No "typical value" here: against a threshold, a value better than the mean can
        # still be what kept the decision from the favourable side (the table has means).
        direction = "towards" if c.decision > 0 else "away from"
        score = "" if c.score is None else f"; score {c.score:+.3f}"
        return (
            f"{c.feature} of {format_value(c.value)} moved the decision "
            f"{direction} {self.favourable_value} ({c.decision:+.2f}{score})"
        )

    def svg(self) -> str:
        """A bar chart of the contributions to the decision (SVG markup, for a page)."""
        from replay.figures import svg
        from replay.questions.plots import contributions_figure  # matplotlib: 0.5 s

        drawn = [asdict(c) for c in self.contributions]
        return svg(contributions_figure(drawn, self.favourable_value))

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "reasons": self.reasons,
            "protected": self.protected,
            "summary": self.summary,
        }


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


def numeric(value: Any) -> TypeGuard[float]:
    """A score that can be averaged: a finite int or float (not a bool, not null)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def explanation_of(
    schema: Schema,
    decision: Decision,
    predictor: Predictor,
    reference: list[Row],
    samples: int = 200,
) -> Explanation:
    """Each feature's Shapley contribution to `decision` (and to its score, when there
    is one), every mix run by `predictor` with the decision's seed over the `reference`
    rows; then what decided, when no input did."""
    if not reference:
        raise BadInput("explaining a decision needs at least one reference row")
    features = list(schema.inputs)
    n = len(features)
    applicant = decision.inputs
    output = schema.output
    orders = [] if n <= EXACT_UP_TO else _orders(n, samples)
    coalitions = _coalitions(n, orders)
    batch = [
        {name: applicant[name] if i in coalition else row[name] for i, name in enumerate(features)}
        for coalition in coalitions
        for row in reference
    ]
    outputs = predictor.predict_batch(batch, decision.seed)
    size = len(reference)

    def worth(of: Callable[[Row], float]) -> dict[frozenset[int], float]:
        return {
            coalition: sum(of(o) for o in outputs[k * size : (k + 1) * size]) / size
            for k, coalition in enumerate(coalitions)
        }

    def contributions_to(value: dict[frozenset[int], float]) -> list[float]:
        return _shapley(n, value) if n <= EXACT_UP_TO else _sampled_shapley(n, value, orders)

    reaches = worth(lambda o: float(o[output.decision] == output.favourable))
    to_decision = contributions_to(reaches)
    own_score = decision.outputs.get(output.score)
    scores = None
    to_score: Sequence[float | None] = [None] * n
    if numeric(own_score) and all(numeric(o.get(output.score)) for o in outputs):
        scores = worth(lambda o: float(o[output.score]))
        to_score = contributions_to(scores)
    moved_nothing = [
        features[i]
        for i in range(n)
        if all(_no_effect(value, i) for value in (reaches, scores) if value is not None)
    ]
    contributions = sorted(
        (
            Contribution(
                name,
                applicant[name],
                sum(r[name] for r in reference) / size if schema.inputs[name].numeric else None,
                to_decision[i],
                to_score[i],
                schema.inputs[name].immutable,
            )
            for i, name in enumerate(features)
        ),
        key=lambda c: (-abs(c.decision), -abs(c.score or 0.0)),
    )
    logged = decision.outputs[output.decision]
    others = Counter(
        str(predictor.predict(applicant, decision.seed + k)[output.decision])
        for k in range(1, OTHER_SEEDS + 1)
    )
    if any(not c.negligible for c in contributions):
        decided_by = "inputs"
    elif set(others) - {str(logged)} or draw_keeps(
        schema,
        predictor,
        reference,
        decision.seed,
        output.favourable,
        reached=logged == output.favourable,
    ):
        decided_by = "random draw"
    else:
        decided_by = "rule"
    return Explanation(
        txn_id=decision.txn_id,
        manifest_id=decision.manifest_id,
        seed=decision.seed,
        decision=logged,
        favourable_value=output.favourable,
        favourable=logged == output.favourable,
        score=float(own_score) if numeric(own_score) else None,
        base_rate=reaches[frozenset()],
        base_score=None if scores is None else scores[frozenset()],
        contributions=contributions,
        decided_by=decided_by,
        other_seeds=dict(others.most_common()),
        method="exact Shapley" if n <= EXACT_UP_TO else f"sampled Shapley ({samples} orders)",
        reference_rows=size,
        unused=moved_nothing,
    )


def _no_effect(value: dict[frozenset[int], float], i: int) -> bool:
    """Adding feature i to any evaluated coalition changes nothing."""
    return all(
        value[s | {i}] == worth for s, worth in value.items() if i not in s and (s | {i}) in value
    )


def explain(
    txn_id: str,
    *,
    reference_rows: int = EXPLANATION_ROWS,
    samples: int = 200,
    warm: WarmDeployment | None = None,
    settings: Settings | None = None,
) -> Explanation:
    """What moved a logged decision (and its score), and what decided it, from its own
    container."""
    with asking(txn_id, warm, settings, "explain") as (decision, running):
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
