"""What a backtest counts, one decision at a time, in bounded memory: the flip table
(logged decision by challenger's decision), the score shift, and both broken down by
each input feature (numbers in bins, categories and booleans as they are; never free
text, where nearly every value is a segment of its own).

Pure logic over outputs and a schema: tested without a container or a cluster.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from replay.history.sampling import Reservoir
from replay.manifests.schema import Feature, Schema

HISTOGRAM_SAMPLE = 100_000  # score shifts kept for the histogram (a uniform sample)


def numeric(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def category(value: Any) -> str:
    """A value as the name of its group: booleans and null as JSON writes them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "null" if value is None else str(value)


def quantile_edges(values: list[float], bins: int) -> list[float]:
    """Inner edges splitting `values` into `bins` groups of about equal size."""
    ordered = sorted(values)
    if not ordered:
        return []
    edges = {ordered[min(len(ordered) - 1, len(ordered) * i // bins)] for i in range(1, bins)}
    return sorted(edges)


@dataclass
class Segment:
    decisions: int = 0
    flips: int = 0
    shift_sum: float = 0.0
    shifts: int = 0  # decisions with a numeric score on both sides

    def to_dict(self) -> dict[str, Any]:
        return {
            "decisions": self.decisions,
            "flips": self.flips,
            "flip_rate": self.flips / self.decisions if self.decisions else 0.0,
            "mean_score_shift": self.shift_sum / self.shifts if self.shifts else None,
        }


@dataclass
class BacktestTally:
    """Counts over (logged outputs, challenger outputs) pairs of one deployment."""

    schema: Schema  # the challenger's: its decision and score fields, its inputs
    edges: dict[str, list[float]]  # inner bin edges per numeric feature
    favourable: Any
    flips_table: Counter[tuple[str, str]] = field(default_factory=Counter)
    decisions: int = 0
    flips: int = 0
    favourable_before: int = 0
    favourable_after: int = 0
    shift_sum: float = 0.0
    shifts: int = 0
    shifts_kept: Reservoir[float] = field(default_factory=lambda: Reservoir(HISTOGRAM_SAMPLE))
    segments: dict[str, dict[tuple[int, str], Segment]] = field(default_factory=dict)

    @classmethod
    def for_schema(
        cls, schema: Schema, reference: list[dict[str, Any]], bins: int = 5
    ) -> BacktestTally:
        """Numbers are binned at the quantiles of the reference sample (the people the
        model was built for), so each bin holds about as many of them."""
        edges = {
            name: quantile_edges([r[name] for r in reference if numeric(r.get(name))], bins)
            for name, feature in schema.inputs.items()
            if feature.numeric
        }
        return cls(schema, edges, schema.output.favourable)

    def label(self, feature: Feature, value: Any) -> tuple[int, str]:
        """The segment a value falls in, with its rank: a bin of a number (ranked in
        order), else the value itself."""
        if feature.numeric and numeric(value):
            edges = self.edges.get(feature.name, [])
            index = bisect.bisect_right(edges, value)
            low = "" if index == 0 else f"{edges[index - 1]:,.6g}"
            high = "" if index == len(edges) else f"{edges[index]:,.6g}"
            if not low:
                return index, (f"< {high}" if high else "all")
            return index, (f">= {low}" if not high else f"{low} to < {high}")
        return 0, category(value)

    def add(self, inputs: dict[str, Any], logged: dict[str, Any], rerun: dict[str, Any]) -> bool:
        """Count one decision; whether the challenger decided otherwise."""
        output = self.schema.output
        before, after = logged.get(output.decision), rerun.get(output.decision)
        flipped = before != after
        self.decisions += 1
        self.flips += flipped
        self.flips_table[(str(before), str(after))] += 1
        self.favourable_before += before == self.favourable
        self.favourable_after += after == self.favourable
        shift = None
        old, new = logged.get(output.score), rerun.get(output.score)
        if numeric(old) and numeric(new):
            shift = float(new) - float(old)
            self.shift_sum += shift
            self.shifts += 1
            self.shifts_kept.add(shift)
        for name, feature in self.schema.inputs.items():
            if feature.text:
                continue
            segment = self.segments.setdefault(name, {}).setdefault(
                self.label(feature, inputs.get(name)), Segment()
            )
            segment.decisions += 1
            segment.flips += flipped
            if shift is not None:
                segment.shift_sum += shift
                segment.shifts += 1
        return flipped

    @property
    def sample(self) -> list[float]:
        """A uniform sample of the score shifts (for the histogram)."""
        return self.shifts_kept.items

    @property
    def flip_rate(self) -> float:
        return self.flips / self.decisions if self.decisions else 0.0

    def to_dict(self) -> dict[str, Any]:
        rate = (lambda n: n / self.decisions) if self.decisions else (lambda n: 0.0)
        return {
            "decisions": self.decisions,
            "flips": self.flips,
            "flip_rate": self.flip_rate,
            "flip_table": [
                {"logged": before, "challenger": after, "count": count, "rate": rate(count)}
                for (before, after), count in sorted(self.flips_table.items())
            ],
            "favourable_rate_before": rate(self.favourable_before),
            "favourable_rate_after": rate(self.favourable_after),
            "mean_score_shift": self.shift_sum / self.shifts if self.shifts else None,
            "segments": {  # per feature, its segments in order (numbers' bins ascending)
                name: [
                    {"segment": label, **segment.to_dict()}
                    for (_, label), segment in sorted(found.items())
                ]
                for name, found in self.segments.items()
            },
        }
