"""Counterfactuals: the smallest realistic changes that would have reached the
favourable decision (or a chosen target).

Searched in the original container, in batches: each mutable number alone is walked
from the applicant's value towards its bound (only in the direction its `monotone`
setting allows to help), the first hit refined; each mutable category (or boolean) is
tried at every other allowed value; then pairs of features, numbers on a coarse grid
below their single-feature thresholds. `immutable` features never change, bounds hold,
candidates are ranked by how many features change and then by distance (a number's
change divided by its spread in the reference sample, a changed category counting
one), one per set of features for diversity, and every one is re-run in the container
with the decision's seed before it is shown.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from replay.errors import BadInput
from replay.execution.decision import Decision
from replay.execution.inputs import format_value
from replay.execution.predictor import Predictor, Row
from replay.execution.warm import WarmDeployment
from replay.manifests.schema import Feature, Schema
from replay.questions.asking import asking
from replay.questions.draws import draw_keeps
from replay.settings import Settings

REFERENCE_ROWS = 300  # rows of the reference sample that set each feature's scale

GRID = 40
REFINE = 24
PAIR_GRID = 12


@dataclass(frozen=True)
class Counterfactual:
    changes: dict[str, tuple[Any, Any]]  # feature: (as logged, changed to)
    distance: float
    inputs: dict[str, Any]
    outputs: dict[str, Any]  # from the container, with the decision's seed
    description: str

    @property
    def features(self) -> list[str]:
        return sorted(self.changes)


@dataclass(frozen=True)
class CounterfactualSet:
    txn_id: str
    manifest_id: str
    decision: Any
    target: Any
    options: list[Counterfactual]
    evaluated: int  # variants the container scored during the search
    mutable: list[str]  # the inputs the search could change
    blocked_by_draw: bool  # the seed's draw keeps every reference row from target too

    @property
    def none_found(self) -> str | None:
        """Why there is no option, in one line (None when there are options)."""
        if self.options:
            return None
        why = (
            f": under this decision's seed a random draw keeps every reference row from "
            f"{self.target} too (with other seeds some reach it)"
            if self.blocked_by_draw
            else ""
        )
        return (
            f"no single or paired change of {', '.join(self.mutable)} reached "
            f"{self.target} ({self.evaluated:,} variants tried){why}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "none_found": self.none_found,
            "options": [
                {**asdict(option), "changes": {k: list(v) for k, v in option.changes.items()}}
                for option in self.options
            ],
        }


def _directions(feature: Feature, towards_favourable: bool | None) -> list[int]:
    """Which way a number may move: the way that helps the subject (towards the
    favourable decision), the other way (away from it), or both (another target)."""
    if feature.monotone is None or towards_favourable is None:
        return [1, -1]
    helps = 1 if feature.monotone == "increasing" else -1
    return [helps if towards_favourable else -helps]


def _walk(feature: Feature, start: float, end: float, count: int) -> list[float]:
    """`count` values from just past `start` up to `end` (inclusive), typed."""
    # The last point is `end` itself: start + (end - start) can round past a bound.
    values = [start + (end - start) * (k + 1) / count for k in range(count - 1)] + [end]
    if feature.type == "integer":
        step = 1 if end > start else -1
        values = [round(v) for v in values]
        values = sorted({v for v in values if v != start}, key=lambda v: abs(v - start))
        if not values and start != end:
            values = [start + step]
    return values


def _nice(feature: Feature, old: float, new: float, spread: float) -> float:
    """Round `new` away from `old` to a step a person would quote (about spread/20)."""
    step = 10.0 ** math.floor(math.log10(spread / 20)) if spread > 0 else 1.0
    if feature.type == "integer":
        step = max(step, 1.0)
    rounded = (math.ceil if new > old else math.floor)(new / step) * step
    low = -math.inf if feature.min is None else feature.min
    high = math.inf if feature.max is None else feature.max
    rounded = min(max(rounded, low), high)
    return int(rounded) if feature.type == "integer" else float(rounded)


def _describe(decision: Any, changes: dict[str, tuple[Any, Any]], schema: Schema) -> str:
    parts = []
    for name, (old, new) in sorted(changes.items()):
        if not schema.inputs[name].numeric:
            parts.append(f"{name} were {format_value(new)} (not {format_value(old)})")
            continue
        monotone = schema.inputs[name].monotone is not None
        bound = ("at least " if new > old else "at most ") if monotone else ""
        delta = new - old
        parts.append(
            f"{name} were {bound}{format_value(new)} ({'+' if delta > 0 else '-'}"
            f"{format_value(abs(delta))})"
        )
    return f"{decision} if " + " and ".join(parts)


def counterfactuals_of(
    schema: Schema,
    decision: Decision,
    predictor: Predictor,
    reference: list[Row],
    n: int = 3,
    target: Any = None,
) -> CounterfactualSet:
    """Up to `n` verified, diverse, small changes to `decision`'s inputs that reach
    `target` (default: the favourable decision; for a favourable decision, any other)
    when `predictor` re-runs them with the decision's seed; each number's scale is its
    spread in the `reference` rows. A target given as text is read as the decision
    field's type."""
    output = schema.output
    decision_field, favourable = output.decision, output.favourable
    applicant = decision.inputs
    outcome = decision.outputs[decision_field]
    if isinstance(target, str):
        target = output.fields[decision_field].parse(target)
    if target is not None and target == outcome:
        raise BadInput(f"{decision.txn_id} was already {outcome}: there is nothing to reach")
    if target is None and outcome != favourable:
        target = favourable
    # monotone directions say what helps; for any other target, both ways are searched
    towards_favourable = True if target == favourable else (False if target is None else None)
    seed = decision.seed
    features: Mapping[str, Feature] = schema.inputs
    mutable = [feature.name for feature in schema.mutable if feature.numeric]
    choices = {  # the other values a category (or boolean) may take
        feature.name: [v for v in (feature.values or (True, False)) if v != applicant[feature.name]]
        for feature in schema.mutable
        if feature.categorical or feature.type == "boolean"
    }
    if not mutable and not choices:
        raise BadInput("no input may change: every number and category is immutable")

    def reaches(answer: Row) -> bool:
        found = answer[decision_field]
        return bool(found == target) if target is not None else bool(found != outcome)

    if not reference:
        raise BadInput("counterfactuals need reference rows to scale each feature")
    scale = {}
    for name in mutable:
        spread = statistics.pstdev(row[name] for row in reference)
        scale[name] = spread if spread > 0 else 1.0
    evaluated = 0

    def flips(rows: list[dict[str, Any]]) -> list[bool]:
        nonlocal evaluated
        if not rows:
            return []
        evaluated += len(rows)
        answers = predictor.predict_batch([schema.check(row) for row in rows], seed)
        return [reaches(answer) for answer in answers]

    def bound(name: str, direction: int) -> float:
        limit = features[name].max if direction > 0 else features[name].min
        return applicant[name] + direction * 10 * scale[name] if limit is None else limit

    # 1. one feature at a time: walk to the bound, then refine inside the first flip
    walks = [
        (name, d, _walk(features[name], applicant[name], bound(name, d), GRID))
        for name in mutable
        for d in _directions(features[name], towards_favourable)
        if bound(name, d) != applicant[name]
    ]
    rows = [{**applicant, name: v} for name, _, values in walks for v in values]
    singles: dict[str, tuple[Any, float]] = {}  # feature: (value that flips, its distance)
    results, position, brackets = flips(rows), 0, []
    for name, _d, values in walks:
        hits = results[position : position + len(values)]
        position += len(values)
        if True in hits:
            k = hits.index(True)
            previous = applicant[name] if k == 0 else values[k - 1]
            brackets.append((name, previous, values[k]))
    for _ in range(2):  # each round narrows a bracket REFINE-fold
        rows, refined = [], []
        for name, low, high in brackets:
            values = _walk(features[name], low, high, REFINE)
            refined.append((name, low, values))
            rows += [{**applicant, name: v} for v in values]
        results, position, brackets = flips(rows), 0, []
        for name, low, values in refined:
            hits = results[position : position + len(values)]
            position += len(values)
            k = hits.index(True) if True in hits else len(values) - 1
            brackets.append((name, low if k == 0 else values[k - 1], values[k]))
    for name, _low, high in brackets:
        value = _nice(features[name], applicant[name], high, scale[name])
        change = abs(value - applicant[name]) / scale[name]
        if name not in singles or change < singles[name][1]:
            singles[name] = (value, change)

    # 1b. each category alone at every other allowed value (a changed category counts 1)
    tried = [(name, choice) for name, values in choices.items() for choice in values]
    for (name, choice), hit in zip(
        tried, flips([{**applicant, name: choice} for name, choice in tried]), strict=True
    ):
        if hit and name not in singles:
            singles[name] = (choice, 1.0)

    # 2. pairs of features, each moved less than it would need alone
    pair_walks = []
    for a, b in itertools.combinations(mutable, 2):
        for da in _directions(features[a], towards_favourable):
            for db in _directions(features[b], towards_favourable):
                ends = []
                for name, d in ((a, da), (b, db)):
                    end = singles[name][0] if name in singles else bound(name, d)
                    if (end - applicant[name]) * d <= 0:
                        break
                    ends.append(
                        _walk(features[name], applicant[name], end, PAIR_GRID)[:-1]
                        if name in singles
                        else _walk(features[name], applicant[name], end, PAIR_GRID)
                    )
                else:
                    pair_walks.append((a, b, list(itertools.product(*ends))))
    rows = [{**applicant, a: va, b: vb} for a, b, points in pair_walks for va, vb in points]
    pairs: list[tuple[dict[str, Any], float]] = []  # (edits, distance)
    results, position = flips(rows), 0
    for a, b, points in pair_walks:
        hits = results[position : position + len(points)]
        position += len(points)
        best = min(
            (
                (abs(va - applicant[a]) / scale[a] + abs(vb - applicant[b]) / scale[b], va, vb)
                for (va, vb), hit in zip(points, hits, strict=True)
                if hit
            ),
            default=None,
        )
        if best is not None:
            pairs.append(({a: best[1], b: best[2]}, best[0]))
    # a category that does not reach the target alone, with one number walked to its bound
    category_walks = [
        (name, choice, number, _walk(features[number], applicant[number], bound(number, d), GRID))
        for name, values in choices.items()
        if name not in singles
        for choice in values
        for number in mutable
        for d in _directions(features[number], towards_favourable)
        if bound(number, d) != applicant[number]
    ]
    rows = [
        {**applicant, name: choice, number: v}
        for name, choice, number, walk in category_walks
        for v in walk
    ]
    results, position = flips(rows), 0
    for name, choice, number, walk in category_walks:
        hits = results[position : position + len(walk)]
        position += len(walk)
        if True in hits:
            v = walk[hits.index(True)]
            pairs.append(
                ({name: choice, number: v}, 1.0 + abs(v - applicant[number]) / scale[number])
            )

    # 3. rank, keep one option per feature set, verify each with a single seeded request
    candidates = sorted(
        [({name: value}, change) for name, (value, change) in singles.items()] + pairs,
        key=lambda item: (len(item[0]), item[1]),
    )
    options: list[Counterfactual] = []
    seen: set[frozenset[str]] = set()
    covered: set[str] = set()
    for edits, distance in candidates:
        if len(options) >= n or frozenset(edits) in seen:
            continue
        if len(edits) > 1 and set(edits) <= covered:
            continue  # a pair of features that already work alone adds little
        inputs = schema.check({**applicant, **edits})
        outputs = predictor.predict(inputs, seed)
        evaluated += 1
        if not reaches(outputs):
            continue  # did not reach the target when re-run on its own: never shown
        changes = {name: (applicant[name], inputs[name]) for name in edits}
        options.append(
            Counterfactual(
                changes,
                distance,
                inputs,
                outputs,
                _describe(outputs[decision_field], changes, schema),
            )
        )
        seen.add(frozenset(edits))
        covered |= set(edits)
    goal = target if target is not None else f"not {outcome}"
    blocked = (
        not options
        and target is not None
        and draw_keeps(schema, predictor, reference, seed, target, reached=False)
    )
    return CounterfactualSet(
        decision.txn_id,
        decision.manifest_id,
        outcome,
        goal,
        options,
        evaluated,
        [*mutable, *choices],
        blocked,
    )


def counterfactual(
    txn_id: str,
    *,
    n: int = 3,
    target: Any = None,
    warm: WarmDeployment | None = None,
    settings: Settings | None = None,
) -> CounterfactualSet:
    """Up to `n` verified, diverse, small changes that would have reached `target` (by
    default the favourable decision), searched in the logged decision's own container."""
    with asking(txn_id, warm, settings) as (decision, running):
        reference = running.reference_rows(REFERENCE_ROWS)
        schema = running.manifest.schema
        return counterfactuals_of(schema, decision, running, reference, n, target)
