"""`replay drift`: have the people being decided changed since the model was frozen?

Each input feature of the logged decisions is compared with the manifest's reference
sample (the rows it was built for): the population stability index over the
reference's deciles (numbers) or its categories, and a two-sample test, Kolmogorov-
Smirnov for numbers, chi-squared for categories and booleans (scipy). Free text is no
category (nearly every value is new, so category tests call any two samples apart): it
is compared by its length, as a number, and by the share of its values the reference
sample holds, against the reference's own share (each of its values among its other
rows), with Fisher's exact test; only a lower share counts (new kinds of text). A
feature is flagged when its PSI exceeds 0.25 or a test's p-value is under 0.01. The
score's distribution is followed over time windows. The ledger is read in chunks:
counts are exact, and the KS test and the windows' quartiles use a uniform sample of
each.
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from replay.display import shorten
from replay.errors import BadInput
from replay.history.comparison import category, numeric, quantile_edges
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
class SeenShare:
    """A text's values found in the reference sample: the logged decisions' share, and
    the reference's own (each of its values among its other rows), the share decisions
    like the reference's would show."""

    share: float
    reference_share: float
    p_value: float  # Fisher's exact test, one-sided: the logged share is the lower


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    kind: str  # number, text (by its length) or category
    psi: float
    test: str  # ks, ks of length, or chi-squared
    statistic: float
    p_value: float
    flagged: bool
    logged: int  # decisions with a value
    seen: SeenShare | None = None  # text only
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
    compared = {
        name: comparison(feature, reference, seed)
        for seed, (name, feature) in enumerate(schema.inputs.items())
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
            inputs = entry.inputs
            for name, counts in compared.items():
                counts.add(inputs.get(name))
    if not decisions:
        raise BadInput("every matching decision's data was erased: nothing to compare")
    found = [counts.drift() for counts in compared.values()]
    if out is not None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        for index, item in enumerate(found):
            if item.flagged:
                path = out / f"drift-{item.feature}-{stamp}.png"
                write_once(path, _plot(item, compared[item.feature]), 0o644)
                found[index] = replace(item, plot=str(path))
    return Drift(newest.name, newest.manifest_id, decisions, found, scores.to_list())


def _flagged(item: FeatureDrift) -> FeatureDrift:
    moved = item.psi > PSI_FLAG or item.p_value < P_FLAG
    fewer_seen = item.seen is not None and item.seen.p_value < P_FLAG
    return replace(item, flagged=moved or fewer_seen)


class MeasuredCounts:
    """A number, or a text by its length, against the reference sample's: counts over
    the reference's deciles (exact) and a uniform sample for the KS test; a text's
    values the reference holds are counted too."""

    def __init__(self, feature: Feature, reference: list[dict[str, Any]], seed: int) -> None:
        self.feature = feature
        self.reference = [
            measure
            for row in reference
            if (measure := self.measure(row.get(feature.name))) is not None
        ]
        self.edges = quantile_edges(self.reference, 10)
        self.counts: Counter[int] = Counter()
        self.sample: Reservoir[float] = Reservoir(SAMPLE, seed)
        self.seen = None
        if feature.text:
            texts = [row.get(feature.name) for row in reference]
            self.seen = SeenCounts([text for text in texts if isinstance(text, str)])

    def measure(self, value: Any) -> float | None:
        """What the feature is compared by: the number, or the text's length."""
        if self.feature.text:
            return float(len(value)) if isinstance(value, str) else None
        return float(value) if numeric(value) else None

    def add(self, value: Any) -> None:
        measure = self.measure(value)
        if measure is not None:
            self.counts[bisect.bisect_right(self.edges, measure)] += 1
            self.sample.add(measure)
        if self.seen is not None:
            self.seen.add(value)

    def drift(self) -> FeatureDrift:
        from scipy.stats import ks_2samp

        name = self.feature.name
        kind, test = ("text", "ks of length") if self.feature.text else ("number", "ks")
        total = self.counts.total()
        seen = self.seen.share() if self.seen is not None else None
        if not self.reference or not total:  # nothing on one side: nothing to compare
            return _flagged(FeatureDrift(name, kind, 0.0, test, 0.0, 1.0, False, total, seen))
        _, expected, actual = self.bars()
        tested = ks_2samp(self.reference, self.sample.items)
        statistic, p = float(tested.statistic), float(tested.pvalue)
        index = psi(expected, actual)
        return _flagged(FeatureDrift(name, kind, index, test, statistic, p, False, total, seen))

    def bars(self) -> tuple[list[str], list[float], list[float]]:
        """Each bin's name and its share of the reference and of the logged decisions."""
        unit = " characters" if self.feature.text else ""
        names = [f"< {self.edges[0]:,.4g}{unit}"] if self.edges else [f"any{unit}"]
        names += [f">= {edge:,.4g}{unit}" for edge in self.edges]
        expected = Counter(bisect.bisect_right(self.edges, v) for v in self.reference)
        return (
            names,
            [expected[i] / max(1, len(self.reference)) for i in range(len(names))],
            [self.counts[i] / max(1, self.counts.total()) for i in range(len(names))],
        )


class CategoryCounts:
    """A category or boolean against the reference sample's: counts of each value."""

    def __init__(self, feature: Feature, reference: list[dict[str, Any]]) -> None:
        self.feature = feature
        self.expected = Counter(category(row.get(feature.name)) for row in reference)
        self.counts: Counter[str] = Counter()

    def add(self, value: Any) -> None:
        self.counts[category(value)] += 1

    def drift(self) -> FeatureDrift:
        from scipy.stats import chi2_contingency

        values, expected, actual = self.bars()
        table = [[self.expected[v] for v in values], [self.counts[v] for v in values]]
        if len(values) > 1 and self.counts and self.expected:
            chi2 = chi2_contingency(table)
            statistic, p = float(chi2.statistic), float(chi2.pvalue)
        else:
            statistic, p = 0.0, 1.0
        index = psi(expected, actual) if self.counts and self.expected else 0.0
        total = self.counts.total()
        return _flagged(
            FeatureDrift(
                self.feature.name, "category", index, "chi-squared", statistic, p, False, total
            )
        )

    def bars(self) -> tuple[list[str], list[float], list[float]]:
        """Each value's name and its share of the reference and of the logged decisions."""
        values = sorted(set(self.expected) | set(self.counts))
        return (
            values,
            [self.expected[v] / max(1, self.expected.total()) for v in values],
            [self.counts[v] / max(1, self.counts.total()) for v in values],
        )


def comparison(
    feature: Feature, reference: list[dict[str, Any]], seed: int
) -> MeasuredCounts | CategoryCounts:
    """How a feature's logged values are counted to be compared with the reference's:
    numbers and free text (by length) as measures, anything else as categories."""
    if feature.numeric or feature.text:
        return MeasuredCounts(feature, reference, seed)
    return CategoryCounts(feature, reference)


class SeenCounts:
    """How many of a text's logged values the reference sample holds, and how many of
    the reference's own values its other rows hold."""

    def __init__(self, reference: list[str]) -> None:
        counted = Counter(reference)
        self.known = set(counted)
        self.reference_seen = sum(count for count in counted.values() if count > 1)
        self.reference_total = len(reference)
        self.seen = self.total = 0

    def add(self, value: Any) -> None:
        if isinstance(value, str):
            self.total += 1
            self.seen += value in self.known

    def share(self) -> SeenShare | None:
        from scipy.stats import fisher_exact

        if not self.total or not self.reference_total:
            return None
        table = [
            [self.seen, self.total - self.seen],
            [self.reference_seen, self.reference_total - self.reference_seen],
        ]
        # one-sided: values the reference holds more often than its own rows do are
        # no new kind of text
        p = float(fisher_exact(table, alternative="less").pvalue)
        return SeenShare(self.seen / self.total, self.reference_seen / self.reference_total, p)


class _ScoreWindows:
    """The score over equal spans of time from `first` to `last`: count, mean and
    quartiles (from a sample of each window), counted in the same pass as the inputs."""

    def __init__(self, first: str, last: str, windows: int, score_field: str) -> None:
        self.start, self.end = datetime.fromisoformat(first), datetime.fromisoformat(last)
        self.span = (self.end - self.start) / windows if self.end > self.start else None
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
            last = i == self.windows - 1
            found.append(
                {
                    "from": self._bound(i).isoformat(),
                    "until": (self.end if last else self._bound(i + 1)).isoformat(),
                    "decisions": self.counts[i],
                    "mean_score": self.sums[i] / self.counts[i] if self.counts[i] else None,
                    "quartiles": quartiles if values else None,
                }
            )
        return found

    def _bound(self, i: int) -> datetime:
        return self.start + self.span * i if self.span else self.start


# From coarse to fine: (strftime format, characters cut from its end).
_RESOLUTIONS = (
    ("%Y-%m-%d %H:%M", 0),
    ("%Y-%m-%d %H:%M:%S", 0),
    ("%Y-%m-%d %H:%M:%S.%f", 3),  # milliseconds
    ("%Y-%m-%d %H:%M:%S.%f", 0),
)


def window_labels(windows: list[dict[str, Any]]) -> list[str]:
    """Each score window as `from to until`, its times (UTC) at the coarsest resolution
    at which no two bounds read alike: decisions logged in one burst get windows
    milliseconds apart, a year's history minutes."""
    bounds = {datetime.fromisoformat(w[key]) for w in windows for key in ("from", "until")}
    for form, cut in _RESOLUTIONS:
        if len({_at(moment, form, cut) for moment in bounds}) == len(bounds):
            break
    return [
        f"{_at(datetime.fromisoformat(w['from']), form, cut)} to "
        f"{_at(datetime.fromisoformat(w['until']), form, cut)}"
        for w in windows
    ]


def _at(moment: datetime, form: str, cut: int) -> str:
    text = moment.astimezone(UTC).strftime(form)
    return text[: len(text) - cut]


def _plot(item: FeatureDrift, counts: MeasuredCounts | CategoryCounts) -> bytes:
    """Both distributions side by side: a number's (or a text length's) deciles of the
    reference, or the categories, each named on one short line."""
    import io

    from matplotlib.figure import Figure

    names, expected, actual = counts.bars()
    width = 0.4
    # constrained layout makes room for the rotated names; tight_layout gives up on
    # long ones with a warning on stderr
    figure = Figure(figsize=(8, 3.4), dpi=100, layout="constrained")
    axes = figure.subplots()
    places = range(len(names))
    axes.bar([p - width / 2 for p in places], expected, width, label="reference sample")
    axes.bar([p + width / 2 for p in places], actual, width, label="logged decisions")
    axes.set_xticks(list(places), [shorten(n) for n in names], rotation=30, ha="right", fontsize=8)
    axes.set_ylabel("share")
    title = f"{item.feature}: PSI {item.psi:.2f}, {item.test} p {item.p_value:.2g}"
    if item.seen is not None:
        title += (
            f", seen in the reference {item.seen.share:.0%} "
            f"(its own {item.seen.reference_share:.0%})"
        )
    axes.set_title(title, fontsize=10)
    axes.legend()
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()
