"""Sweeps: how a logged decision responds as one or two features vary.

All variants go to the original container in one batch (seeded once with the
decision's seed), so a 10,000-point grid pays one container start and one round trip;
the batch travels by column, the fields that do not vary sent once.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from replay.errors import BadInput
from replay.execution.inputs import check_inputs, check_value
from replay.execution.warm import WarmDeployment, warm_for
from replay.ledger.decisions import open_ledger
from replay.settings import Settings, load_settings

if TYPE_CHECKING:
    import pandas as pd

MAX_VARIANTS = 1_000_000


@dataclass(frozen=True)
class Range:
    feature: str
    start: float
    stop: float
    count: int

    def values(self, spec: dict[str, Any]) -> list[float | int]:
        if self.count == 1:
            points = [self.start]
        else:
            step = (self.stop - self.start) / (self.count - 1)
            points = [self.start + i * step for i in range(self.count)]
        if spec["type"] == "integer":
            return sorted({round(point) for point in points})
        return points


def parse_range(schema: dict[str, dict[str, Any]], text: str) -> Range:
    """`income=20000:120000:50` → 50 evenly spaced values, bounds checked."""
    name, separator, spec_text = text.partition("=")
    name = name.strip()
    if not separator:
        raise BadInput(f"--vary {text!r} is not NAME=START:STOP:COUNT")
    if name not in schema:
        raise BadInput(f"unknown feature {name!r} (expected: {', '.join(schema)})")
    spec = schema[name]
    if spec["type"] not in {"number", "integer"}:
        raise BadInput(f"--vary {name}: only number and integer features can be swept")
    parts = spec_text.split(":")
    try:
        start, stop, count = float(parts[0]), float(parts[1]), int(parts[2])
        if len(parts) != 3:
            raise IndexError
    except (ValueError, IndexError):
        raise BadInput(f"--vary {text!r} is not NAME=START:STOP:COUNT") from None
    if count < 1:
        raise BadInput(f"--vary {name}: COUNT must be at least 1")
    for value in (start, stop):
        check_value(name, spec, value)
    return Range(name, start, stop, count)


@dataclass(frozen=True)
class Sweep:
    txn_id: str
    manifest_id: str
    features: list[str]
    original_inputs: dict[str, Any]
    original_outputs: dict[str, Any]
    decision_field: str
    score_field: str
    favourable: Any
    frame: pd.DataFrame  # one row per variant: swept features, then every output

    @property
    def changes(self) -> pd.DataFrame:
        """1-D: the rows where the decision differs from the row before it."""
        decisions = self.frame[self.decision_field]
        return self.frame[decisions.ne(decisions.shift()) & decisions.shift().notna()]

    def save(self, path: str | Path) -> Path:
        """Write the grid as CSV or Parquet (by the file's suffix)."""
        path = Path(path)
        if path.suffix == ".csv":
            self.frame.to_csv(path, index=False)
        elif path.suffix in {".parquet", ".pq"}:
            self.frame.to_parquet(path, index=False)
        else:
            raise BadInput(f"--out {path}: use a .csv or .parquet file name")
        return path

    def plot(self, path: str | Path) -> Path:
        """A PNG: score against the swept feature(s), decision changes and the original."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        path = Path(path)
        frame, score = self.frame, self.score_field
        favourable = frame[self.decision_field] == self.favourable
        figure, axes = plt.subplots(figsize=(8, 5), dpi=110)
        if len(self.features) == 1:
            (feature,) = self.features
            axes.plot(frame[feature], frame[score], color="0.3", linewidth=1.2, zorder=1)
            axes.scatter(
                frame[feature],
                frame[score],
                c=favourable.map({True: "tab:green", False: "tab:red"}),
                s=14,
                zorder=2,
                label="variants",
            )
            for value in self.changes[feature]:
                axes.axvline(value, color="tab:orange", linestyle="--", linewidth=1)
            axes.scatter(
                [self.original_inputs[feature]],
                [self.original_outputs[score]],
                marker="*",
                s=220,
                color="black",
                zorder=3,
                label="decision",
            )
            axes.set_xlabel(feature)
            axes.set_ylabel(score)
        else:
            x, y = self.features
            grid = frame.pivot(index=y, columns=x, values=score)
            mesh = axes.pcolormesh(
                grid.columns, grid.index, grid.values, shading="auto", cmap="RdYlGn"
            )
            figure.colorbar(mesh, ax=axes, label=score)
            decided = frame.assign(ok=favourable.astype(float)).pivot(
                index=y, columns=x, values="ok"
            )
            if 0 < decided.values.mean() < 1:
                axes.contour(
                    decided.columns,
                    decided.index,
                    decided.values,
                    levels=[0.5],
                    colors="black",
                    linewidths=1.5,
                )
            axes.scatter(
                [self.original_inputs[x]],
                [self.original_inputs[y]],
                marker="*",
                s=260,
                color="black",
                label="decision",
            )
            axes.set_xlabel(x)
            axes.set_ylabel(y)
        axes.set_title(
            f"{self.txn_id}: {self.decision_field} "
            f"{self.original_outputs[self.decision_field]} as logged"
        )
        axes.legend(loc="best")
        figure.tight_layout()
        figure.savefig(path)
        plt.close(figure)
        return path


def sweep(
    txn_id: str,
    vary: list[str] | list[Range],
    *,
    warm: WarmDeployment | None = None,
    settings: Settings | None = None,
) -> Sweep:
    """Vary one or two features of a logged decision over a grid; all else as logged."""
    import pandas as pd

    settings = settings or load_settings()
    entry = open_ledger(settings).get(txn_id)
    with warm_for(entry.manifest_id, warm, settings) as warm:
        schema = warm.manifest.io["inputs"]
        ranges = [parse_range(schema, item) if isinstance(item, str) else item for item in vary]
        if not 1 <= len(ranges) <= 2 or len({r.feature for r in ranges}) != len(ranges):
            raise BadInput("give one or two different features to --vary")
        axes = [r.values(schema[r.feature]) for r in ranges]
        total = 1
        for values in axes:
            total *= len(values)
        if total > MAX_VARIANTS:
            raise BadInput(f"{total:,} variants is more than {MAX_VARIANTS:,}; use fewer points")
        # Checked once: the logged inputs, and each axis value (a grid of 10,000 points
        # needs 200 checks, not 70,000).
        base = check_inputs(schema, entry.input_values)
        axes = [
            [check_value(r.feature, schema[r.feature], v) for v in values]
            for r, values in zip(ranges, axes, strict=True)
        ]
        names = [r.feature for r in ranges]
        points = dict(
            zip(names, map(list, zip(*itertools.product(*axes), strict=True)), strict=True)
        )
        shared = {name: value for name, value in base.items() if name not in points}
        outputs = warm.predict_columns(points, entry.run_seed, shared=shared)
    frame = pd.DataFrame({**points, **outputs})
    output = warm.manifest.io["output"]
    return Sweep(
        txn_id,
        entry.manifest_id,
        names,
        base,
        entry.output_values,
        output["decision"],
        output["score"],
        output["favourable"],
        frame,
    )
