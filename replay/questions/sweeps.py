"""Sweeps: how a logged decision responds as one or two features vary.

All variants go to the original container in one batch, each answered as that variant
alone with the decision's seed (a seeded random draw is the same draw at every point),
so a 10,000-point grid pays one container start and one round trip; the batch travels by
column, the fields that do not vary sent once.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from replay.errors import BadInput
from replay.execution.decision import Decision
from replay.execution.predictor import Predictor
from replay.execution.warm import WarmDeployment
from replay.manifests.schema import Feature, Schema
from replay.questions.asking import answered, asking, immutable_edits
from replay.settings import Settings

if TYPE_CHECKING:
    import pandas as pd

MAX_VARIANTS = 1_000_000


@dataclass(frozen=True)
class Range:
    """`count` evenly spaced values of `feature` from `start` to `stop`."""

    feature: str
    start: float
    stop: float
    count: int

    def values(self, feature: Feature) -> list[Any]:
        """The points, checked against the feature (integers rounded and deduplicated)."""
        if not feature.numeric:
            raise BadInput(f"{feature.name} is a {feature.type}: only numbers can be swept")
        if self.count < 1:
            raise BadInput(f"a sweep of {feature.name} needs at least one point")
        for value in (self.start, self.stop):
            feature.check(value)
        if self.count == 1:
            points = [self.start]
        else:
            step = (self.stop - self.start) / (self.count - 1)
            points = [self.start + i * step for i in range(self.count)]
        if feature.type == "integer":
            points = sorted({round(point) for point in points})
        return [feature.check(point) for point in points]


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
    frame: pd.DataFrame  # one row per variant: swept features, then the outputs by name
    probed: tuple[str, ...] = ()  # immutable inputs swept, as compliance probing allowed

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
            raise BadInput(f"{path}: a sweep is saved as a .csv or .parquet file")
        return path

    def plot(self, path: str | Path) -> Path:
        """A PNG: score against the swept feature(s), decision changes and the original."""
        from replay.questions.plots import save_sweep_plot  # matplotlib: about 0.5 s

        return save_sweep_plot(self, Path(path))

    def svg(self) -> str:
        """The same picture as SVG markup, for a web page."""
        from replay.figures import svg
        from replay.questions.plots import sweep_figure

        return svg(sweep_figure(self))

    def to_dict(self) -> dict[str, Any]:
        return {
            "txn_id": self.txn_id,
            "manifest_id": self.manifest_id,
            "features": self.features,
            "probed_immutable": list(self.probed),
            # a null output (NaN in the frame) is null in JSON, not a bare NaN
            "rows": self.frame.astype(object)
            .where(self.frame.notna(), None)
            .to_dict(orient="records"),
        }


def grid_columns(axes: Sequence[Any]) -> list[Any]:
    """The grid of every combination of the axes' values, by column, in the order of
    `itertools.product` (the last axis varies fastest), built with C-level repeats; an
    axis given as a numpy array gives an array."""
    import numpy as np

    columns: list[Any] = []
    for position, values in enumerate(axes):
        inner = math.prod(len(axis) for axis in axes[position + 1 :])
        outer = math.prod(len(axis) for axis in axes[:position])
        if isinstance(values, np.ndarray):
            columns.append(np.tile(np.repeat(values, inner), outer))
            continue
        repeated = itertools.chain.from_iterable(itertools.repeat(v, inner) for v in values)
        columns.append(list(repeated) * outer)
    return columns


def _array(values: list[Any]) -> Any:
    """An axis of all floats or all integers as a numpy array: its grid column travels
    as its bytes and a data frame takes it as it is; mixed values stay a list (a
    deployment gets 10000 and 10000.0 as they were given)."""
    import numpy as np

    kinds = set(map(type, values))
    if kinds == {float}:
        return np.array(values, dtype=np.float64)
    if kinds == {int} and min(values) >= -(2**63) and max(values) < 2**63:
        return np.array(values, dtype=np.int64)
    return values  # the schema allows 2**63 itself: such an axis stays a list


def sweep_of(
    schema: Schema,
    decision: Decision,
    ranges: Sequence[Range],
    predictor: Predictor,
    *,
    allow_immutable: bool = False,
) -> Sweep:
    """`decision` re-run by `predictor` over a grid of one or two features, all else as
    logged, in one batch, every variant with the decision's seed; an immutable feature
    only with `allow_immutable` (compliance probing)."""
    import pandas as pd  # about 0.4 s: only sweeps pay it

    if not 1 <= len(ranges) <= 2 or len({r.feature for r in ranges}) != len(ranges):
        raise BadInput("a sweep varies one or two different features")
    probed = immutable_edits(schema, [r.feature for r in ranges], allow_immutable)
    # Checked once: the logged inputs, and each axis value (a grid of 10,000 points
    # needs 200 checks, not 70,000).
    axes = [r.values(schema.feature(r.feature)) for r in ranges]
    total = 1
    for values in axes:
        total *= len(values)
    if total > MAX_VARIANTS:
        raise BadInput(f"{total:,} variants is more than {MAX_VARIANTS:,}; use fewer points")
    base = schema.check(decision.inputs)
    names = [r.feature for r in ranges]
    points = dict(zip(names, grid_columns([_array(values) for values in axes]), strict=True))
    shared = {name: value for name, value in base.items() if name not in points}
    outputs = predictor.predict_columns(points, decision.seed, shared=shared, arrays=True)
    answered(schema, outputs)
    return Sweep(
        decision.txn_id,
        decision.manifest_id,
        names,
        base,
        decision.outputs,
        schema.output.decision,
        schema.output.score,
        schema.output.favourable,
        pd.DataFrame({**points, **dict(sorted(outputs.items()))}),
        probed,
    )


def sweep(
    txn_id: str,
    vary: Sequence[Range],
    *,
    allow_immutable: bool = False,
    warm: WarmDeployment | None = None,
    settings: Settings | None = None,
) -> Sweep:
    """Vary one or two features of a logged decision over a grid; all else as logged;
    an immutable feature only with `allow_immutable` (compliance probing)."""
    with asking(txn_id, warm, settings, "sweep") as (decision, running):
        schema = running.manifest.schema
        return sweep_of(schema, decision, vary, running, allow_immutable=allow_immutable)
