"""Decisions by group of one attribute, for fairness: favourable rates, the adverse
impact ratio against the most favoured group, a Fisher exact test of each group against
the rest, and the variants of a flip test (the same decision with only the attribute
changed to another group's typical value).

Pure logic over logged inputs and outputs: tested without a container or a cluster.
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from typing import Any

from replay.errors import BadInput, InternalError
from replay.execution.decision import logged_seed
from replay.history.comparison import category, numeric, quantile_edges
from replay.history.sampling import Reservoir
from replay.ledger.chain import LedgerEntry
from replay.manifests.schema import Feature

IMPACT_FLAG = 0.8  # the four-fifths rule: a group's rate under 80% of the best's
TYPICAL_SAMPLE = 10_000  # values kept per group to find its median


def bin_edges(edges: Sequence[float]) -> list[float]:
    """`edges` checked as the cuts between a number's groups: finite, each above the
    one before. The values under the first edge and from the last one on are groups too."""
    checked = [float(edge) for edge in edges]
    if not checked or not all(math.isfinite(edge) for edge in checked):
        raise BadInput("bins need at least one edge, each a finite number")
    if any(high <= low for low, high in pairwise(checked)):
        shown = ", ".join(f"{edge:g}" for edge in checked)
        raise BadInput(f"bin edges must increase, each above the one before, not {shown}")
    return checked


@dataclass
class Grouping:
    """Which group an attribute's value falls in: a number's bin, between the edges
    given or the reference sample's quartiles, the first and last bins open so that
    every number has one; anything else (a category, a boolean, null) as it is."""

    feature: Feature
    edges: list[float] | None  # cuts between bins, ascending; None: no bins

    @classmethod
    def of(
        cls, feature: Feature, edges: Sequence[float] | None, reference: list[dict[str, Any]]
    ) -> Grouping:
        if feature.text:  # nearly every value would be a group of one
            raise BadInput(f"{feature.name} is free text: its values are not groups to compare")
        if not feature.numeric:
            if edges is not None:
                raise BadInput(f"{feature.name} is a {feature.type}: only numbers take bins")
            return cls(feature, None)
        if edges is None:
            values = [r[feature.name] for r in reference if numeric(r.get(feature.name))]
            return cls(feature, quantile_edges(values, 4))
        return cls(feature, bin_edges(edges))

    def group(self, value: Any) -> str:
        """The group's name: every value has one."""
        if self.edges is None or not numeric(value):
            return category(value)
        return _bin_name(self.edges, bisect.bisect_right(self.edges, value))

    def order(self) -> list[str]:
        """The bins' names, ascending (none for categories)."""
        if self.edges is None:
            return []
        return [_bin_name(self.edges, index) for index in range(len(self.edges) + 1)]


def _bin_name(edges: list[float], index: int) -> str:
    """The name of the bin left of `edges[index]` (the last: from the last edge on)."""
    if not edges:
        return "any"
    if index == 0:
        return f"under {_edge(edges[0])}"
    if index == len(edges):
        return f"{_edge(edges[-1])} and over"
    return f"{_edge(edges[index - 1])} to under {_edge(edges[index])}"


def _edge(edge: float) -> str:
    """An edge as short as it reads, exact where the short form is not (two bins never
    share a name)."""
    short = f"{edge:g}"
    return short if float(short) == edge else repr(edge)


@dataclass(frozen=True)
class GroupRate:
    group: str
    decisions: int
    favourable: int
    rate: float
    impact_ratio: float  # rate / the most favoured group's rate
    flagged: bool  # impact ratio under IMPACT_FLAG
    fisher_p: float  # this group against all the others

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class GroupCounts:
    grouping: Grouping
    decisions: Counter[str] = field(default_factory=Counter)
    favourable: Counter[str] = field(default_factory=Counter)
    values: dict[str, Reservoir[Any]] = field(default_factory=dict)  # a sample per group

    def add(self, value: Any, favourable: bool) -> str:
        group = self.grouping.group(value)
        self.decisions[group] += 1
        self.favourable[group] += favourable
        self.values.setdefault(group, Reservoir(TYPICAL_SAMPLE)).add(value)
        return group

    def groups(self) -> list[str]:
        """Every group with a decision: the bins in order, then the other values."""
        bins = self.grouping.order()
        return [g for g in bins if g in self.decisions] + sorted(set(self.decisions) - set(bins))

    def typical(self, group: str) -> Any:
        """The value standing for a group in a flip test: a bin's median (as the
        feature's type), else the value itself."""
        values = self.values[group].items
        if not numeric(values[0]):  # a category, or a number's null
            return values[0]
        middle = statistics.median(values)
        return round(middle) if self.grouping.feature.type == "integer" else float(middle)

    def rates(self) -> list[GroupRate]:
        from scipy.stats import fisher_exact

        names = self.groups()
        if not names:
            return []
        rate = {g: self.favourable[g] / self.decisions[g] for g in names}
        best = max(rate.values())
        all_favourable, all_decisions = sum(self.favourable.values()), sum(self.decisions.values())
        found = []
        for g in names:
            yes, total = self.favourable[g], self.decisions[g]
            rest_yes, rest_total = all_favourable - yes, all_decisions - total
            table = [[yes, total - yes], [rest_yes, rest_total - rest_yes]]
            p = float(fisher_exact(table).pvalue) if rest_total else 1.0
            ratio = rate[g] / best if best else 1.0
            found.append(GroupRate(g, total, yes, rate[g], ratio, ratio < IMPACT_FLAG, p))
        return found


def check_everyone_counted(groups: list[GroupRate], erased: int, selected: int) -> None:
    """Raise unless the groups and the erased decisions (no value left to group) hold
    every selected decision: a rate that leaves people out must never be reported."""
    counted = sum(group.decisions for group in groups)
    if counted + erased != selected:
        raise InternalError(
            f"the groups hold {counted} decisions and {erased} were erased, "
            f"but {selected} were selected"
        )


def flip_variants(
    sampled: list[tuple[LedgerEntry, str]],
    attribute: str,
    typical: dict[str, Any],
    seeds: dict[str, int],
    batch_rows: int,
) -> Iterator[tuple[str, str, list[LedgerEntry], list[dict[str, Any]], list[int]]]:
    """For each manifest's sampled decisions, a batch at a time, and each group: the
    decisions of the other groups with only `attribute` set to the group's typical value,
    each with its logged seed. Yields (group, manifest id, entries, rows, seeds)."""
    by_manifest: dict[str, list[tuple[LedgerEntry, str]]] = {}
    for entry, group in sampled:
        by_manifest.setdefault(entry.manifest_id, []).append((entry, group))
    for manifest_id, pairs in by_manifest.items():
        for start in range(0, len(pairs), batch_rows):
            batch = pairs[start : start + batch_rows]
            for target, value in typical.items():
                moved = [entry for entry, group in batch if group != target]
                if moved:
                    rows = [{**entry.inputs, attribute: value} for entry in moved]
                    logged = [logged_seed(e, seeds[e.manifest_id]) for e in moved]
                    yield target, manifest_id, moved, rows, logged


@dataclass
class FlipCounts:
    """Which decisions changed when their attribute was moved, by the group moved to."""

    decision: str  # the output field that decides
    tried: Counter[str] = field(default_factory=Counter)
    flipped: Counter[str] = field(default_factory=Counter)
    changed: set[str] = field(default_factory=set)  # decisions that flip for some group

    def add(self, target: str, entries: list[LedgerEntry], answers: list[Any]) -> None:
        for entry, answer in zip(entries, answers, strict=True):
            if isinstance(answer, str):  # the deployment refused the moved value
                continue
            self.tried[target] += 1
            if answer.get(self.decision) != entry.outputs.get(self.decision):
                self.flipped[target] += 1
                self.changed.add(entry.txn_id)

    def to_dict(self, sampled: int, typical: dict[str, Any]) -> dict[str, Any]:
        return {
            "sampled": sampled,
            "typical": typical,
            "by_target": {
                target: {
                    "decisions": self.tried[target],
                    "flips": self.flipped[target],
                    "flip_rate": self.flipped[target] / self.tried[target]
                    if self.tried[target]
                    else 0.0,
                }
                for target in typical
            },
            "decisions_that_flip": len(self.changed),
            "flip_rate": len(self.changed) / sampled if sampled else 0.0,
        }
