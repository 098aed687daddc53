"""`replay drift`: have the people being decided changed since the model was frozen?

Each input feature of the logged decisions is compared with the manifest's reference
sample (the rows it was built for): the population stability index over the
reference's deciles (numbers) or its categories, and a two-sample test, Kolmogorov-
Smirnov for numbers, chi-squared for categories and booleans (scipy). A feature is
flagged when its PSI exceeds 0.25 or its test's p-value is under 0.01. The score's
distribution is followed over time windows. The ledger is read in chunks: counts are
exact, and the KS test and the windows' quartiles use a uniform sample of each.
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from replay.errors import BadInput
from replay.history.comparison import numeric, quantile_edges
from replay.history.sampling import Reservoir
from replay.history.selection import READ_ROWS, one_deployment
from replay.ledger.chain import LedgerEntry
from replay.manifests.schema import Feature
from replay.settings import Settings, load_settings
from replay.stores.keys import write_once

PSI_FLAG = 0.25  # conventional: above 0.25 the population has shifted
P_FLAG = 0.01
SAMPLE = 50_000  # logged values kept per feature for the KS test, per window for quartiles
EPSILON = 1e-4  # an empty bin's share, so the PSI stays finite


def psi(expected: list[float], actual: list[float]) -> float:
    """Population stability index of two distributions over the same bins (shares)."""
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        e, a = max(e, EPSILON), max(a, EPSILON)
        total += (a - e) * math.log(a / e)
    return total


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    kind: str  # number or category
    psi: float
    test: str  # ks or chi-squared
    statistic: float
    p_value: float
    flagged: bool
    logged: int  # decisions with a value
    plot: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Drift:
    deployment: str
    manifest: str  # whose reference sample the decisions were compared with
    decisions: int
    features: list[FeatureDrift]
    score_windows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def flagged(self) -> list[str]:
        return [f.feature for f in self.features if f.flagged]

    def to_dict(self) -> dict[str, Any]:
        return {
            "deployment": self.deployment,
            "manifest": self.manifest,
            "decisions": self.decisions,
            "flagged": self.flagged,
            "features": [f.to_dict() for f in self.features],
            "score_windows": self.score_windows,
        }


def _category(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "null" if value is None else str(value)


def drift(
    *,
    deployment: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    windows: int = 6,
    out: Path | None = None,
    settings: Settings | None = None,
) -> Drift:
    """The logged decisions' inputs against the newest manifest's reference sample, and
    their score over `windows` equal spans of time."""
    settings = settings or load_settings()
    if windows < 1:
        raise BadInput(f"at least one time window, not {windows}")
    if out is not None and not out.is_dir():
        raise BadInput(f"{out} is not a folder to write the plots in")
    selected = one_deployment(settings, deployment, since, until, nothing="nothing to compare")
    newest = selected.newest
    schema = newest.schema
    reference = schema.read_rows(selected.store.reference_sample(newest))
    inputs = schema.inputs
    edges = {
        name: quantile_edges([r[name] for r in reference if numeric(r.get(name))], 10)
        for name, feature in inputs.items()
        if feature.numeric
    }
    counts: dict[str, Counter[Any]] = {name: Counter() for name in inputs}
    samples: dict[str, Reservoir[float]] = {
        name: Reservoir(SAMPLE, i) for i, name in enumerate(inputs) if inputs[name].numeric
    }
    first, last = selected.ledger.span(**selected.filters)
    scores = _ScoreWindows(first, last, windows, schema.output.score)
    decisions = 0
    for chunk in selected.ledger.chunks(READ_ROWS, **selected.filters):
        for entry in chunk:
            if entry.erased_on is not None:
                continue
            decisions += 1
            scores.add(entry)
            for name, feature in inputs.items():
                value = entry.inputs.get(name)
                if feature.numeric:
                    if numeric(value):
                        counts[name][bisect.bisect_right(edges[name], value)] += 1
                        samples[name].add(float(value))
                else:
                    counts[name][_category(value)] += 1
    if not decisions:
        raise BadInput("every matching decision's data was erased: nothing to compare")
    found = []
    for name, feature in inputs.items():
        found.append(
            _feature_drift(name, feature, reference, edges, counts[name], samples.get(name))
        )
    if out is not None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        for index, item in enumerate(found):
            if item.flagged:
                path = out / f"drift-{item.feature}-{stamp}.png"
                write_once(path, _plot(item, inputs[item.feature], reference, edges, counts), 0o644)
                found[index] = FeatureDrift(**{**item.to_dict(), "plot": str(path)})
    return Drift(newest.name, newest.manifest_id, decisions, found, scores.to_list())


def _feature_drift(
    name: str,
    feature: Feature,
    reference: list[dict[str, Any]],
    edges: dict[str, list[float]],
    logged: Counter[Any],
    sample: Reservoir[float] | None,
) -> FeatureDrift:
    from scipy.stats import chi2_contingency, ks_2samp

    total = sum(logged.values())
    if feature.numeric:
        values = [float(r[name]) for r in reference if numeric(r.get(name))]
        logged_values = sample.items if sample else []
        if not values or not logged_values:  # nothing on one side: nothing to compare
            return FeatureDrift(name, "number", 0.0, "ks", 0.0, 1.0, False, total)
        bins = len(edges[name]) + 1
        expected: Counter[Any] = Counter(bisect.bisect_right(edges[name], v) for v in values)
        shares = [expected[i] / len(values) for i in range(bins)]
        actual = [logged[i] / total if total else 0.0 for i in range(bins)]
        tested = ks_2samp(values, logged_values)
        statistic, p = float(tested.statistic), float(tested.pvalue)
        kind, test = "number", "ks"
    else:
        expected = Counter(_category(r.get(name)) for r in reference)
        categories = sorted(set(expected) | set(logged))
        shares = [expected[c] / len(reference) for c in categories]
        actual = [logged[c] / total if total else 0.0 for c in categories]
        table = [[expected[c] for c in categories], [logged[c] for c in categories]]
        if len(categories) > 1:
            chi2 = chi2_contingency(table)
            statistic, p = float(chi2.statistic), float(chi2.pvalue)
        else:
            statistic, p = 0.0, 1.0
        kind, test = "category", "chi-squared"
    index = psi(shares, actual)
    return FeatureDrift(
        name, kind, index, test, statistic, p, index > PSI_FLAG or p < P_FLAG, total
    )


class _ScoreWindows:
    """The score over equal spans of time from `first` to `last`: count, mean and
    quartiles (from a sample of each window), counted in the same pass as the inputs."""

    def __init__(self, first: str, last: str, windows: int, score_field: str) -> None:
        self.start, end = datetime.fromisoformat(first), datetime.fromisoformat(last)
        self.span = (end - self.start) / windows if end > self.start else None
        self.windows = windows if self.span else 1
        self.score_field = score_field
        self.sums = [0.0] * self.windows
        self.counts = [0] * self.windows
        self.samples: list[Reservoir[float]] = [
            Reservoir(SAMPLE, 100 + i) for i in range(self.windows)
        ]

    def add(self, entry: LedgerEntry) -> None:
        score = entry.outputs.get(self.score_field)
        if not numeric(score):
            return
        moment = datetime.fromisoformat(entry.time)
        index = min(int((moment - self.start) / self.span), self.windows - 1) if self.span else 0
        self.sums[index] += score
        self.counts[index] += 1
        self.samples[index].add(float(score))

    def to_list(self) -> list[dict[str, Any]]:
        found = []
        for i in range(self.windows):
            values = self.samples[i].items
            quartiles = statistics.quantiles(values, n=4) if len(values) > 1 else values * 3
            found.append(
                {
                    "from": (self.start + self.span * i if self.span else self.start).isoformat(),
                    "decisions": self.counts[i],
                    "mean_score": self.sums[i] / self.counts[i] if self.counts[i] else None,
                    "quartiles": quartiles if values else None,
                }
            )
        return found


def _plot(
    item: FeatureDrift,
    feature: Feature,
    reference: list[dict[str, Any]],
    edges: dict[str, list[float]],
    counts: dict[str, Counter[Any]],
) -> bytes:
    import io

    from matplotlib.figure import Figure

    logged = counts[item.feature]
    total = sum(logged.values())
    if feature.numeric:
        labels = [f"< {edges[item.feature][0]:,.4g}"] + [
            f">= {e:,.4g}" for e in edges[item.feature]
        ]
        keys: list[Any] = list(range(len(labels)))
        expected: Counter[Any] = Counter(
            bisect.bisect_right(edges[item.feature], float(r[item.feature]))
            for r in reference
            if numeric(r.get(item.feature))
        )
    else:
        expected = Counter(_category(r.get(item.feature)) for r in reference)
        keys = sorted(set(expected) | set(logged))
        labels = [str(k) for k in keys]
    width, reference_total = 0.4, max(1, sum(expected.values()))
    figure = Figure(figsize=(8, 3.4), dpi=100)
    axes = figure.subplots()
    positions = range(len(keys))
    axes.bar(
        [p - width / 2 for p in positions],
        [expected[k] / reference_total for k in keys],
        width,
        label="reference sample",
    )
    axes.bar(
        [p + width / 2 for p in positions],
        [logged[k] / max(1, total) for k in keys],
        width,
        label="logged decisions",
    )
    axes.set_xticks(list(positions), labels, rotation=30, fontsize=8)
    axes.set_ylabel("share")
    axes.set_title(f"{item.feature}: PSI {item.psi:.2f}, {item.test} p {item.p_value:.2g}")
    axes.legend()
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()
