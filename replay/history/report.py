"""Self-contained HTML summaries of whole histories, drawn with matplotlib as SVG inside
the page (no other file): a backtest's flip table, score shift and flip rate by segment;
an audit's verdicts by time window.
Figures use constrained layout: tight_layout gives up on long labels with a warning on
stderr. A segment's name is shown on one short line."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from replay.display import shorten
from replay.figures import svg

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from replay.history.audit import Audit
    from replay.history.backtest import Backtest
    from replay.history.comparison import BacktestTally
    from replay.manifests.manifest import Manifest

SEGMENT_PLOTS = 6  # features drawn by flip rate: those with the most uneven rates


def flip_table_figure(summary: dict[str, Any]) -> Figure:
    from matplotlib.figure import Figure

    cells = summary["flip_table"]
    logged = sorted({c["logged"] for c in cells})
    after = sorted({c["challenger"] for c in cells})
    counts = [[0] * len(after) for _ in logged]
    for cell in cells:
        counts[logged.index(cell["logged"])][after.index(cell["challenger"])] = cell["count"]
    figure = Figure(
        figsize=(1.6 + 1.3 * len(after), 1.2 + 0.6 * len(logged)), dpi=100, layout="constrained"
    )
    axes = figure.subplots()
    axes.imshow(counts, cmap="Blues")
    axes.set_xticks(range(len(after)), after)
    axes.set_yticks(range(len(logged)), logged)
    axes.set_xlabel("challenger")
    axes.set_ylabel("logged")
    for i, row in enumerate(counts):
        for j, count in enumerate(row):
            axes.text(j, i, f"{count:,}", ha="center", va="center", color="black")
    return figure


def shift_figure(shifts: list[float]) -> Figure:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 3), dpi=100, layout="constrained")
    axes = figure.subplots()
    axes.hist(shifts, bins=40, color="tab:blue")
    axes.axvline(0, color="0.3", linewidth=0.8)
    axes.set_xlabel("challenger's score minus the logged score")
    axes.set_ylabel("decisions")
    return figure


def segments_figure(segments: dict[str, list[dict[str, Any]]]) -> Figure:
    from matplotlib.figure import Figure

    def spread(rows: list[dict[str, Any]]) -> float:
        rates = [row["flip_rate"] for row in rows]
        return max(rates) - min(rates)

    shown = sorted(segments.items(), key=lambda item: -spread(item[1]))[:SEGMENT_PLOTS]
    figure = Figure(figsize=(10, 2.4 * ((len(shown) + 1) // 2)), dpi=100, layout="constrained")
    grid = figure.subplots((len(shown) + 1) // 2, 2, squeeze=False)
    for axes in grid.flat[len(shown) :]:
        axes.set_visible(False)
    for axes, (name, rows) in zip(grid.flat, shown, strict=False):
        places = list(range(len(rows)))  # segments that shorten alike stay two bars
        axes.barh(places, [row["flip_rate"] for row in rows])
        axes.set_yticks(places, [shorten(row["segment"]) for row in rows])
        axes.set_title(name, fontsize=10)
        axes.set_xlabel("flip rate")
    return figure


def windows_figure(windows: list[dict[str, Any]]) -> Figure:
    """Verdicts by time window, stacked: reproduced, diverged, failed."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 3), dpi=100, layout="constrained")
    axes = figure.subplots()
    places = list(range(len(windows)))
    bottom = [0] * len(windows)
    for verdict, colour in (
        ("reproduced", "tab:green"),
        ("diverged", "tab:red"),
        ("failed", "0.5"),
    ):
        heights = [window[verdict] for window in windows]
        axes.bar(places, heights, bottom=bottom, color=colour, label=verdict)
        bottom = [low + high for low, high in zip(bottom, heights, strict=True)]
    step = max(1, len(windows) // 12)  # at most about a dozen labels
    axes.set_xticks(places[::step], [window["window"] for window in windows][::step])
    axes.tick_params(axis="x", labelrotation=30)
    axes.set_ylabel("decisions")
    axes.legend(loc="upper right", fontsize=8)
    return figure


def _environment() -> Any:
    from jinja2 import Environment, PackageLoader, select_autoescape

    environment = Environment(
        loader=PackageLoader("replay.history", "templates"),
        autoescape=select_autoescape(["html"]),
    )
    environment.filters["shorten"] = shorten
    return environment


def render_audit(result: Audit, manifest: Manifest) -> str:
    summary = result.summary
    return (
        _environment()
        .get_template("audit.html")
        .render(
            result=result,
            summary=summary,
            manifest=manifest,
            windows=svg(windows_figure(summary["by_window"])) if summary["by_window"] else None,
        )
    )


def render_backtest(result: Backtest, tally: BacktestTally, manifest: Manifest) -> str:
    summary = result.summary
    return (
        _environment()
        .get_template("backtest.html")
        .render(
            result=result,
            summary=summary,
            manifest=manifest,
            flip_table=svg(flip_table_figure(summary)),
            shift=svg(shift_figure(tally.sample)) if tally.sample else None,
            segments=svg(segments_figure(summary["segments"])) if summary["segments"] else None,
        )
    )
