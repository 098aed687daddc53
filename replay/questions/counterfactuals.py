"""Counterfactuals: the smallest realistic changes that would have reached the
favourable decision (or a chosen target).

Searched in the original container, in phases, each one batch of variants:
1. `single_numbers`: each movable number alone is walked from the person's value to the
   end of its plausible range, only in the direction its `monotone` setting allows to
   help; the first hit is refined, then rounded away from the person's value to the
   feature's `step` (else to a figure a person would quote);
2. `single_choices`: each movable category (or boolean) at every other allowed value;
3. `pairs_of_numbers`: two numbers, each moved less than it would need alone;
4. `choices_with_a_number`: a category that does not reach the target alone, with one
   number walked;
5. `verified`: candidates ranked by how many features change, then by distance (a
   number's change divided by its spread in the reference sample, a changed category
   counting one); a candidate that changes every feature of an option already kept and
   more is dropped (the extra change was not needed); each kept option is re-run alone
   with the decision's seed before it is shown.

Plausible: a number moves inside the `plausible: [min, max]` the deployment declares,
else inside the range the reference sample shows (within its `min`/`max`), widened to
the person's own value. Movable: neither `immutable` (protected attributes), nor
`actionable: false` (out of the person's reach, such as a card's age), nor free text,
which a question never invents: text is kept as written, and each option says so.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from replay.display import format_value
from replay.errors import BadInput
from replay.execution.decision import Decision
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

Edits = dict[str, Any]  # feature: the value it is changed to


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
    movable: list[str]  # the inputs the search could change
    kept_as_written: list[str]  # free-text inputs, never changed by a question
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
            f"no single or paired change of {', '.join(self.movable)} reached "
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
    """Round `new` away from `old` to the feature's `step`, else to a step a person would
    quote (about spread/20), within the feature's bounds."""
    if feature.step is not None:
        step = feature.step
    else:
        step = 10.0 ** math.floor(math.log10(spread / 20)) if spread > 0 else 1.0
    if feature.type == "integer":
        step = max(step, 1.0)
    rounded = (math.ceil if new > old else math.floor)(new / step) * step
    low = -math.inf if feature.min is None else feature.min
    high = math.inf if feature.max is None else feature.max
    rounded = min(max(rounded, low), high)
    return round(rounded) if feature.type == "integer" else float(rounded)


def plausible_range(feature: Feature, reference: list[Row], value: float) -> tuple[float, float]:
    """Where a counterfactual may take a number: the declared `plausible` range, else
    the reference sample's, within the feature's bounds, widened to `value` (the
    person's own, plausible for them by definition)."""
    if feature.plausible is not None:
        low, high = feature.plausible
    else:
        seen = [row[feature.name] for row in reference]
        low, high = min(seen), max(seen)
    if feature.min is not None:
        low = max(low, feature.min)
    if feature.max is not None:
        high = min(high, feature.max)
    if feature.type == "integer":
        low, high = math.ceil(low), math.floor(high)
    return min(low, value), max(high, value)


def _describe(
    decision: Any, changes: dict[str, tuple[Any, Any]], schema: Schema, kept: list[str]
) -> str:
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
    as_written = f"; {', '.join(kept)} kept as written" if kept else ""
    return f"{decision} if " + " and ".join(parts) + as_written


class _Search:
    """One counterfactual search: the person's decision, what may move and how far, and
    the count of variants the container answered."""

    def __init__(
        self,
        schema: Schema,
        decision: Decision,
        predictor: Predictor,
        reference: list[Row],
        target: Any,
    ) -> None:
        self.schema = schema
        self.decision = decision
        self.predictor = predictor
        self.person = decision.inputs
        self.outcome = decision.outputs[schema.output.decision]
        self.target = target
        # monotone directions say what helps; for any other target, both ways are searched
        favourable = schema.output.favourable
        self.towards_favourable = (
            True if target == favourable else (False if target is None else None)
        )
        self.features: Mapping[str, Feature] = schema.inputs
        self.numbers = [feature.name for feature in schema.movable if feature.numeric]
        self.choices = {  # the other values a category (or boolean) may take
            feature.name: [
                value
                for value in (feature.values or (True, False))
                if value != self.person[feature.name]
            ]
            for feature in schema.movable
            if feature.categorical or feature.type == "boolean"
        }
        if not self.numbers and not self.choices:
            raise BadInput(
                "no input may change: every input is immutable, not actionable or free text"
            )
        if not reference:
            raise BadInput("counterfactuals need reference rows to scale each feature")
        self.spread: dict[str, float] = {}
        self.reach: dict[str, tuple[float, float]] = {}
        for name in self.numbers:
            spread = statistics.pstdev(row[name] for row in reference)
            self.spread[name] = spread if spread > 0 else 1.0
            self.reach[name] = plausible_range(self.features[name], reference, self.person[name])
        self.evaluated = 0

    def reaches(self, answer: Row) -> bool:
        found = answer[self.schema.output.decision]
        return bool(found == self.target) if self.target is not None else found != self.outcome

    def flips(self, variants: list[Edits]) -> list[bool]:
        """Whether each variant of the person's inputs reaches the target (one batch)."""
        if not variants:
            return []
        self.evaluated += len(variants)
        rows = [self.schema.check({**self.person, **edits}) for edits in variants]
        answers = self.predictor.predict_batch(rows, self.decision.seed)
        return [self.reaches(answer) for answer in answers]

    def end(self, name: str, direction: int) -> float | None:
        """How far a number may go in `direction`; None when it cannot move that way."""
        low, high = self.reach[name]
        end = high if direction > 0 else low
        return None if end == self.person[name] else end

    def directions(self, name: str) -> list[int]:
        return _directions(self.features[name], self.towards_favourable)

    def rounded(self, name: str, value: float) -> float:
        """`value` rounded away from the person's, kept inside the plausible range (on
        the feature's step where the range holds one)."""
        feature, (low, high) = self.features[name], self.reach[name]
        nice = _nice(feature, self.person[name], value, self.spread[name])
        step = feature.step
        if nice < low:
            inside = low if step is None else math.ceil(low / step) * step
            nice = inside if inside <= high else low
        elif nice > high:
            inside = high if step is None else math.floor(high / step) * step
            nice = inside if inside >= low else high
        return nice

    def distance(self, edits: Edits) -> float:
        """A number's change over its spread in the reference sample; a category, 1."""
        return sum(
            abs(value - self.person[name]) / self.spread[name] if name in self.spread else 1.0
            for name, value in edits.items()
        )

    def walks(self, name: str, count: int) -> list[list[float]]:
        """For each way `name` may move, `count` values up to its plausible end."""
        found = []
        for direction in self.directions(name):
            end = self.end(name, direction)
            if end is not None:
                found.append(_walk(self.features[name], self.person[name], end, count))
        return found

    def single_numbers(self) -> Edits:
        """Each number alone: the smallest value that reaches the target, rounded."""
        brackets = []  # (feature, last value that did not reach, first that did)
        walks = [(name, walk) for name in self.numbers for walk in self.walks(name, GRID)]
        hits = iter(self.flips([{name: value} for name, walk in walks for value in walk]))
        for name, walk in walks:
            reached = [next(hits) for _ in walk]
            if True in reached:
                first = reached.index(True)
                before = self.person[name] if first == 0 else walk[first - 1]
                brackets.append((name, before, walk[first]))
        for _ in range(2):  # each round narrows a bracket REFINE-fold
            refined = [
                (name, before, _walk(self.features[name], before, after, REFINE))
                for name, before, after in brackets
            ]
            hits = iter(self.flips([{name: value} for name, _, walk in refined for value in walk]))
            brackets = []
            for name, before, walk in refined:
                reached = [next(hits) for _ in walk]
                first = reached.index(True) if True in reached else len(walk) - 1
                brackets.append((name, before if first == 0 else walk[first - 1], walk[first]))
        singles: Edits = {}
        for name, _, after in brackets:
            value = self.rounded(name, after)
            if name not in singles or self.distance({name: value}) < self.distance(
                {name: singles[name]}
            ):
                singles[name] = value
        return singles

    def single_choices(self) -> Edits:
        """Each category (or boolean) alone at every other value: the first that reaches."""
        tried = [(name, value) for name, values in self.choices.items() for value in values]
        singles: Edits = {}
        for (name, value), hit in zip(
            tried, self.flips([{name: value} for name, value in tried]), strict=True
        ):
            if hit and name not in singles:
                singles[name] = value
        return singles

    def pairs_of_numbers(self, singles: Edits) -> list[Edits]:
        """Two numbers, each moved less than it needs alone: the closest pair that
        reaches the target, per pair of features and directions."""
        grids = []
        for first, second in itertools.combinations(self.numbers, 2):
            for first_direction in self.directions(first):
                for second_direction in self.directions(second):
                    axes = []
                    for name, direction in ((first, first_direction), (second, second_direction)):
                        alone = singles.get(name)
                        end = alone if alone is not None else self.end(name, direction)
                        if end is None or (end - self.person[name]) * direction <= 0:
                            break
                        walk = _walk(self.features[name], self.person[name], end, PAIR_GRID)
                        axes.append(walk[:-1] if alone is not None else walk)
                    else:
                        grids.append((first, second, list(itertools.product(*axes))))
        variants = [{first: a, second: b} for first, second, points in grids for a, b in points]
        hits = iter(self.flips(variants))
        pairs = []
        for first, second, points in grids:
            reaching = [{first: a, second: b} for a, b in points if next(hits)]
            if reaching:
                closest = min(reaching, key=self.distance)
                pairs.append({name: self.rounded(name, value) for name, value in closest.items()})
        return pairs

    def choices_with_a_number(self, singles: Edits) -> list[Edits]:
        """A category that does not reach the target alone, with one number walked."""
        walks = [
            (category, value, number, walk)
            for category, values in self.choices.items()
            if category not in singles
            for value in values
            for number in self.numbers
            for walk in self.walks(number, GRID)
        ]
        hits = iter(
            self.flips(
                [
                    {category: value, number: step}
                    for category, value, number, walk in walks
                    for step in walk
                ]
            )
        )
        found = []
        for category, value, number, walk in walks:
            reached = [next(hits) for _ in walk]
            if True in reached:
                step = self.rounded(number, walk[reached.index(True)])
                found.append({category: value, number: step})
        return found

    def verified(self, candidates: list[Edits], n: int, kept: list[str]) -> list[Counterfactual]:
        """Up to `n` candidates, smallest first, none changing every feature of a kept one
        and more, each re-run alone with the decision's seed (else never shown)."""
        ranked = sorted(candidates, key=lambda edits: (len(edits), self.distance(edits)))
        options: list[Counterfactual] = []
        for edits in ranked:
            if len(options) >= n:
                break
            if any(set(option.changes) <= set(edits) for option in options):
                continue  # one per set of features; no padding of a change that suffices
            inputs = self.schema.check({**self.person, **edits})
            outputs = self.predictor.predict(inputs, self.decision.seed)
            self.evaluated += 1
            if not self.reaches(outputs):
                continue
            changes = {name: (self.person[name], inputs[name]) for name in edits}
            description = _describe(
                outputs[self.schema.output.decision], changes, self.schema, kept
            )
            options.append(
                Counterfactual(changes, self.distance(edits), inputs, outputs, description)
            )
        return options


def counterfactuals_of(
    schema: Schema,
    decision: Decision,
    predictor: Predictor,
    reference: list[Row],
    n: int = 3,
    target: Any = None,
) -> CounterfactualSet:
    """Up to `n` verified, diverse, small, plausible changes to `decision`'s inputs that
    reach `target` (default: the favourable decision; for a favourable decision, any
    other) when `predictor` re-runs them with the decision's seed; the `reference` rows
    set each number's scale and plausible range. A target given as text is read as the
    decision field's type."""
    output = schema.output
    outcome = decision.outputs[output.decision]
    if isinstance(target, str):
        target = output.fields[output.decision].parse(target)
    if target is not None and target == outcome:
        raise BadInput(f"{decision.txn_id} was already {outcome}: there is nothing to reach")
    if target is None and outcome != output.favourable:
        target = output.favourable
    search = _Search(schema, decision, predictor, reference, target)
    singles = {**search.single_numbers(), **search.single_choices()}
    candidates = [
        *({name: value} for name, value in singles.items()),
        *search.pairs_of_numbers(singles),
        *search.choices_with_a_number(singles),
    ]
    kept = [feature.name for feature in schema.inputs.values() if feature.text]
    options = search.verified(candidates, n, kept)
    blocked = (
        not options
        and target is not None
        and draw_keeps(schema, predictor, reference, decision.seed, target, reached=False)
    )
    return CounterfactualSet(
        decision.txn_id,
        decision.manifest_id,
        outcome,
        target if target is not None else f"not {outcome}",
        options,
        search.evaluated,
        [*search.numbers, *search.choices],
        kept,
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
    with asking(txn_id, warm, settings, "counterfactual") as (decision, running):
        reference = running.reference_rows(REFERENCE_ROWS)
        schema = running.manifest.schema
        return counterfactuals_of(schema, decision, running, reference, n, target)
