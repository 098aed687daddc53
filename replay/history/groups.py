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
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from replay.errors import BadInput
from replay.execution.decision import logged_seed
from replay.history.comparison import numeric, quantile_edges
from replay.history.sampling import Reservoir
from replay.ledger.chain import LedgerEntry
from replay.manifests.schema import Feature

IMPACT_FLAG = 0.8  # the four-fifths rule: a group's rate under 80% of the best's
TYPICAL_SAMPLE = 10_000  # values kept per group to find its median


def parse_bins(text: str) -> list[float]:
    """`18,25,40,65,100` → ascending edges."""
    try:
        edges = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise BadInput(f"bins are numbers separated by commas, not {text!r}") from None
    if len(edges) < 2 or edges != sorted(set(edges)):
        raise BadInput(f"bins need at least two ascending edges, not {text!r}")
    return edges


@dataclass
class Grouping:
    """Which group an attribute's value falls in: bins of a number (the edges given,
    or the reference sample's quartiles), else the value itself."""

    feature: Feature
    edges: list[float] | None  # None: categories (or booleans) as they are

    @classmethod
    def of(
        cls, feature: Feature, edges: list[float] | None, reference: list[dict[str, Any]]
    ) -> Grouping:
        if not feature.numeric:
            if edges is not None:
                raise BadInput(f"{feature.name} is a {feature.type}: only numbers take bins")
            return cls(feature, None)
        if edges is None:  # quartiles, the first and last bins open: nothing falls outside
            values = [r[feature.name] for r in reference if numeric(r.get(feature.name))]
            edges = [-math.inf, *quantile_edges(values, 4), math.inf]
        return cls(feature, edges)

    def group(self, value: Any) -> str | None:
        """The group's name; None for a number outside the bins (left out)."""
        if self.edges is None:
            if isinstance(value, bool):
                return "true" if value else "false"
            return "null" if value is None else str(value)
        if not numeric(value) or not self.edges[0] <= value <= self.edges[-1]:
            return None
        index = min(bisect.bisect_right(self.edges, value), len(self.edges) - 1)
        low, high = self.edges[index - 1], self.edges[index]
        if low == -math.inf:
            return "any" if high == math.inf else f"under {high:g}"
        if high == math.inf:
            return f"{low:g} and over"
        last = index == len(self.edges) - 1
        return f"{low:g} to {high:g}" if last else f"{low:g} to under {high:g}"

    def order(self) -> list[str]:
        if self.edges is None:
            return []
        return [g for g in (self.group(v) for v in self.edges[:-1]) if g is not None]


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
    outside: int = 0  # numbers outside the bins

    def add(self, value: Any, favourable: bool) -> str | None:
        group = self.grouping.group(value)
        if group is None:
            self.outside += 1
            return None
        self.decisions[group] += 1
        self.favourable[group] += favourable
        self.values.setdefault(group, Reservoir(TYPICAL_SAMPLE)).add(value)
        return group

    def groups(self) -> list[str]:
        ordered = [g for g in self.grouping.order() if g in self.decisions]
        return ordered or sorted(self.decisions)

    def typical(self, group: str) -> Any:
        """The value standing for a group in a flip test: a number's median (as the
        feature's type), else the value itself."""
        values = self.values[group].items
        if not self.grouping.feature.numeric:
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
