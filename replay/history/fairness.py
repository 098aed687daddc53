"""`replay fairness --attribute A`: do favourable decisions differ by group, and does
the model itself rely on the attribute?

Rates come from the ledger, read in chunks: decisions and favourable rate per group of
the attribute (every decision has a group: a number's bins are open at both ends, and
the groups are checked to hold the whole selection), the adverse impact ratio against
the most favoured group (flagged under 0.8) and a Fisher exact test of each group
against the rest (scipy). Rates alone cannot say why they differ, so a sample of the
decisions is then re-run in their original containers (on Dask) with only the
attribute changed to each other group's typical value, keeping everything else and the
logged seed: the decisions that flip are the model's own reliance on the attribute.
Free text has no groups: it is refused.

fairlearn's `MetricFrame` was left out: it needs every decision in memory at once, and
it would bring scikit-learn into replay's own environment; counts streamed from the
ledger give the same per-group rates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from replay.display import shorten
from replay.errors import BadInput, ReplayError
from replay.history.cluster import dask_client, streamed, workers_of
from replay.history.groups import (
    FlipCounts,
    GroupCounts,
    Grouping,
    GroupRate,
    check_everyone_counted,
    flip_variants,
)
from replay.history.sampling import Reservoir
from replay.history.selection import BATCH_ROWS, READ_ROWS, one_deployment
from replay.history.workers import WarmContainers, rerun_on_worker, worker_settings
from replay.ledger.chain import LedgerEntry
from replay.settings import Settings, load_settings
from replay.stores.keys import write_once


@dataclass(frozen=True)
class Fairness:
    deployment: str
    attribute: str
    favourable: Any
    groups: list[GroupRate]
    decisions: int  # selected; every one in a group, or erased
    erased: int  # selected decisions whose data was erased: no value left to group
    flip_test: dict[str, Any] = field(default_factory=dict)
    plot: str | None = None
    workers: int = 0

    @property
    def flagged(self) -> list[str]:
        return [g.group for g in self.groups if g.flagged]

    def to_dict(self) -> dict[str, Any]:
        return {
            "deployment": self.deployment,
            "attribute": self.attribute,
            "favourable": self.favourable,
            "groups": [g.to_dict() for g in self.groups],
            "flagged": self.flagged,
            "decisions": self.decisions,
            "erased": self.erased,
            "flip_test": self.flip_test,
            "plot": self.plot,
            "workers": self.workers,
        }


def fairness(
    attribute: str,
    *,
    deployment: str | None = None,
    bins: Sequence[float] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    sample: int = 500,
    out: Path | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    settings: Settings | None = None,
) -> Fairness:
    """Favourable rates by group of `attribute` over the logged decisions (a number's
    groups cut at `bins`, default its reference quartiles), then a flip test of `sample`
    of them (0: none) in their original containers."""
    settings = settings or load_settings()
    if sample < 0:
        raise BadInput(f"a flip test's sample is 0 or more decisions, not {sample}")
    if out is not None and not out.is_dir():
        raise BadInput(f"{out} is not a folder to write the plot in")
    selected = one_deployment(settings, deployment, since, until, nothing="nothing to count")
    newest, manifests = selected.newest, selected.manifests
    schema = newest.schema
    if attribute not in schema.inputs:
        raise BadInput(
            f"{attribute!r} is not an input of {newest.name} "
            f"(its inputs: {', '.join(schema.inputs)})"
        )
    reference = schema.read_rows(selected.store.reference_sample(newest))
    counts = GroupCounts(Grouping.of(schema.inputs[attribute], bins, reference))
    output = schema.output
    sampled: Reservoir[tuple[LedgerEntry, str]] = Reservoir(sample)
    erased = 0
    for chunk in selected.ledger.chunks(READ_ROWS, **selected.filters):
        for entry in chunk:
            if entry.erased_on is not None:
                erased += 1
                continue
            favourable = entry.outputs.get(output.decision) == output.favourable
            group = counts.add(entry.inputs.get(attribute), favourable)
            if sample:
                sampled.add((entry, group))
    groups = counts.rates()
    total = selected.ledger.count(**selected.filters)
    check_everyone_counted(groups, erased, total)
    if not groups:
        raise BadInput("every matching decision's data was erased: nothing to count")
    result = Fairness(newest.name, attribute, output.favourable, groups, total, erased)
    if sampled.items and len(groups) > 1:
        seeds = {m.manifest_id: m.runtime.seed for m in manifests}
        typical = {g.group: counts.typical(g.group) for g in groups}
        flip_test, used = _flip_test(
            sampled.items, attribute, typical, seeds, output.decision, settings, scheduler, workers
        )
        result = replace(result, flip_test=flip_test, workers=used)
    if out is not None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        path = out / f"fairness-{attribute}-{stamp}.png"
        write_once(path, _plot(result), 0o644)
        result = replace(result, plot=str(path))
    return result


def _flip_test(
    sampled: list[tuple[LedgerEntry, str]],
    attribute: str,
    typical: dict[str, Any],
    seeds: dict[str, int],
    decision: str,
    settings: Settings,
    scheduler: str | None,
    workers: int | None,
) -> tuple[dict[str, Any], int]:
    """Each sampled decision re-run with its attribute set to every other group's typical
    value; how many flip, per group the attribute was moved to."""
    shipped = worker_settings(settings)
    jobs = (
        ((target, moved), (manifest_id, rows, logged, shipped))
        for target, manifest_id, moved, rows, logged in flip_variants(
            sampled, attribute, typical, seeds, BATCH_ROWS
        )
    )
    counts = FlipCounts(decision)
    with dask_client(scheduler, workers) as client:
        client.register_plugin(WarmContainers())
        used = workers_of(client)
        for (target, moved), answers in streamed(client, rerun_on_worker, jobs):
            if isinstance(answers, ReplayError):
                raise answers
            if isinstance(answers, Exception):
                raise ReplayError(f"a Dask worker failed: {answers}") from answers
            counts.add(target, moved, answers)
    return counts.to_dict(len(sampled), typical), used


def _plot(result: Fairness) -> bytes:
    import io

    from matplotlib.figure import Figure

    # constrained layout makes room for the rotated names; tight_layout gives up on
    # long ones with a warning on stderr
    figure = Figure(figsize=(9, 3.6), dpi=100, layout="constrained")
    rates, flips = figure.subplots(1, 2)
    colours = ["tab:red" if g.flagged else "tab:blue" for g in result.groups]
    _bars(rates, [g.group for g in result.groups], [g.rate for g in result.groups], colours)
    best = max(g.rate for g in result.groups)
    rates.axhline(0.8 * best, color="tab:red", linestyle="--", linewidth=1, label="0.8 x best")
    rates.set_title(f"{result.favourable} rate by {result.attribute}")
    rates.legend(loc="lower right")
    targets = result.flip_test.get("by_target", {})
    flip_rates = [t["flip_rate"] for t in targets.values()]
    _bars(flips, list(targets), flip_rates, "tab:orange")
    flips.set_ylim(0, max([0.05, *flip_rates]) * 1.2)  # no flips: an empty chart, not -0.04
    flips.set_ylabel("flip rate")
    flips.set_title(f"decisions that flip when {result.attribute} is set to")
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()


def _bars(axes: Any, names: list[str], heights: list[float], colour: Any) -> None:
    """Bars at their own places, named on one short line each (names that shorten
    alike stay two bars)."""
    places = list(range(len(names)))
    axes.bar(places, heights, color=colour)
    axes.set_xticks(places, [shorten(name) for name in names], rotation=30, ha="right")
