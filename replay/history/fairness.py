"""`replay fairness --attribute A`: do favourable decisions differ by group, and does
the model itself rely on the attribute?

Rates come from the ledger, read in chunks: decisions and favourable rate per group of
the attribute, the adverse impact ratio against the most favoured group (flagged under
0.8) and a Fisher exact test of each group against the rest (scipy). Rates alone cannot
say why they differ, so a sample of the decisions is then re-run in their original
containers (on Dask) with only the attribute changed to each other group's typical
value, keeping everything else and the logged seed: the decisions that flip are the
model's own reliance on the attribute.

fairlearn's `MetricFrame` was left out: it needs every decision in memory at once, and
it would bring scikit-learn into replay's own environment; counts streamed from the
ledger give the same per-group rates.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from replay.errors import BadInput, ReplayError
from replay.history.cluster import dask_client, streamed, workers_of
from replay.history.groups import FlipCounts, GroupCounts, Grouping, GroupRate, flip_variants
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
    outside: int  # decisions whose value fell outside the bins (left out)
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
            "outside": self.outside,
            "flip_test": self.flip_test,
            "plot": self.plot,
            "workers": self.workers,
        }


def fairness(
    attribute: str,
    *,
    deployment: str | None = None,
    bins: list[float] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    sample: int = 500,
    out: Path | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    settings: Settings | None = None,
) -> Fairness:
    """Favourable rates by group of `attribute` over the logged decisions, then a flip
    test of `sample` of them (0: none) in their original containers."""
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
    for chunk in selected.ledger.chunks(READ_ROWS, **selected.filters):
        for entry in chunk:
            if entry.erased_on is not None:
                continue
            favourable = entry.outputs.get(output.decision) == output.favourable
            group = counts.add(entry.inputs.get(attribute), favourable)
            if group is not None and sample:
                sampled.add((entry, group))
    groups = counts.rates()
    if not groups:
        raise BadInput(f"no logged decision has a value of {attribute} inside the bins")
    result = Fairness(newest.name, attribute, output.favourable, groups, counts.outside)
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

    names = [g.group for g in result.groups]
    figure = Figure(figsize=(9, 3.6), dpi=100)
    rates, flips = figure.subplots(1, 2)
    colours = ["tab:red" if g.flagged else "tab:blue" for g in result.groups]
    rates.bar(names, [g.rate for g in result.groups], color=colours)
    best = max(g.rate for g in result.groups)
    rates.axhline(0.8 * best, color="tab:red", linestyle="--", linewidth=1, label="0.8 x best")
    rates.set_title(f"{result.favourable} rate by {result.attribute}")
    rates.legend(loc="lower right")
    rates.tick_params(axis="x", rotation=30)
    targets = result.flip_test.get("by_target", {})
    flip_rates = [t["flip_rate"] for t in targets.values()]
    flips.bar(list(targets), flip_rates, color="tab:orange")
    flips.set_ylim(0, max([0.05, *flip_rates]) * 1.2)  # no flips: an empty chart, not -0.04
    flips.set_ylabel("flip rate")
    flips.set_title(f"decisions that flip when {result.attribute} is set to")
    flips.tick_params(axis="x", rotation=30)
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()
