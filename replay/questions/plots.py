"""Pictures of answers, drawn on explicit matplotlib figures: nothing here touches
pyplot's global state or backend, so a notebook's own plotting is left alone."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure

if TYPE_CHECKING:
    from replay.questions.sweeps import Sweep


def sweep_figure(sweep: Sweep) -> Figure:
    """Score against the swept feature(s), where the decision changes, and the original.
    Null or non-numeric scores are gaps; with no numeric score at all, whether the
    favourable decision was reached (1) or not (0) is drawn instead."""
    import pandas as pd  # already loaded by the sweep that is drawn

    frame = sweep.frame
    favourable = frame[sweep.decision_field] == sweep.favourable
    values = pd.to_numeric(frame[sweep.score_field], errors="coerce")
    score = sweep.score_field
    logged = pd.to_numeric(pd.Series([sweep.original_outputs.get(score)]), errors="coerce")[0]
    if values.isna().all():
        values = favourable.astype(float)
        score = f"{sweep.decision_field} = {sweep.favourable}"
        logged = float(sweep.original_outputs[sweep.decision_field] == sweep.favourable)
    frame = frame.assign(**{score: values})
    figure = Figure(figsize=(8, 5), dpi=110)
    axes = figure.subplots()
    if len(sweep.features) == 1:
        (feature,) = sweep.features
        axes.plot(frame[feature], frame[score], color="0.3", linewidth=1.2, zorder=1)
        for reached, colour in ((True, "tab:green"), (False, "tab:red")):
            shown = frame[favourable == reached]
            label = f"{sweep.decision_field} {'=' if reached else '≠'} {sweep.favourable}"
            axes.scatter(shown[feature], shown[score], color=colour, s=14, zorder=2, label=label)
        for number, value in enumerate(sweep.changes[feature]):
            axes.axvline(
                value,
                color="tab:orange",
                linestyle="--",
                linewidth=1,
                label="decision changes" if number == 0 else None,
            )
        _mark_decision(axes, sweep.original_inputs[feature], logged)
        axes.set_xlabel(feature)
        axes.set_ylabel(score)
    else:
        x, y = sweep.features
        grid = frame.pivot(index=y, columns=x, values=score)
        mesh = axes.pcolormesh(grid.columns, grid.index, grid.values, shading="auto", cmap="RdYlGn")
        figure.colorbar(mesh, ax=axes, label=score)
        decided = frame.assign(ok=favourable.astype(float)).pivot(index=y, columns=x, values="ok")
        if 0 < decided.values.mean() < 1:
            axes.contour(
                decided.columns,
                decided.index,
                decided.values,
                levels=[0.5],
                colors="black",
                linewidths=1.5,
            )
        _mark_decision(axes, sweep.original_inputs[x], sweep.original_inputs[y])
        axes.set_xlabel(x)
        axes.set_ylabel(y)
    axes.set_title(
        f"{sweep.txn_id}: {sweep.decision_field} "
        f"{sweep.original_outputs[sweep.decision_field]} as logged"
    )
    axes.legend(loc="best")
    figure.tight_layout()
    return figure


def _mark_decision(axes: Axes, x: Any, y: Any) -> None:
    """A star where the logged decision sits."""
    axes.scatter([x], [y], marker="*", s=240, color="black", zorder=3, label="logged decision")


def contributions_figure(contributions: Sequence[dict[str, Any]], favourable: Any) -> Figure:
    """A bar chart of what moved the decision, strongest first, from contributions as
    `Explanation.to_dict` gives them."""
    shown = list(contributions)[:8][::-1]
    figure = Figure(figsize=(6, 0.5 + 0.4 * max(len(shown), 1)), dpi=100)
    axes = figure.subplots()
    effects = [item["decision"] for item in shown]
    colours = ["tab:green" if effect > 0 else "tab:red" for effect in effects]
    axes.barh([item["feature"] for item in shown], effects, color=colours)
    axes.axvline(0, color="0.3", linewidth=0.8)
    axes.set_xlabel(f"effect on reaching {favourable}")
    figure.tight_layout()
    return figure


def save_sweep_plot(sweep: Sweep, path: Path) -> Path:
    """The sweep's figure as a PNG at `path`."""
    sweep_figure(sweep).savefig(path)
    return path
