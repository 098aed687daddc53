"""What every question asks of a deployment: outputs for rows, with a seed.

A `Predictor` answers one row (seeded as a decision is) or a batch by column (every row
answered as that row alone with the batch's seed, as the runner protocol says). The
original container (`WarmDeployment`) is one; `InProcessPredictor` runs the same runner
code on functions in this process, so the question algorithms are tested without a
Docker engine and compared with the container where it matters.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any

from replay.errors import BadInput
from replay.images.runner import Deployment, plain

Row = dict[str, Any]


class Predictor(ABC):
    """Answers runner-protocol requests; asked through `predict`, `predict_columns` and
    `predict_batch`."""

    @abstractmethod
    def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        """The runner's answer to one request (without its id); a deployment error is
        raised as PredictionError."""

    def predict(self, inputs: Mapping[str, Any], seed: int) -> Row:
        """One row's outputs, seeded exactly as a decision is."""
        outputs: Row = self.answer({"inputs": dict(inputs), "seed": seed})["outputs"]
        return outputs

    def predict_columns(
        self,
        columns: Mapping[str, list[Any]],
        seed: int,
        *,
        shared: Mapping[str, Any] | None = None,
    ) -> dict[str, list[Any]]:
        """A batch by column, each row answered as alone with `seed`: row i has `shared`
        plus each column's i-th value. Answers one list per output field."""
        counts = {len(values) for values in columns.values()}
        if len(counts) != 1:
            raise BadInput("a batch needs columns, all of the same length")
        request = {
            "rows": counts.pop(),
            "columns": dict(columns),
            "shared": dict(shared or {}),
            "seed": seed,
        }
        answer: dict[str, list[Any]] = self.answer(request)["columns"]
        return answer

    def predict_batch(self, rows: list[Row], seed: int) -> list[Row]:
        """Many rows in one batch, each answered as alone with `seed`."""
        if not rows:
            return []
        return _rows_of(self.predict_columns(_columns_of(rows), seed))

    # Whether one batch may carry a seed per row (runner protocol 6); `WarmDeployment`
    # says per image.
    seeds_per_row = True

    def predict_each(self, rows: list[Row], seeds: list[int]) -> list[Row]:
        """Each row with its own seed (logged decisions), answered as its single request
        would be: in one batch where the runner takes a seed per row, else one by one."""
        if len(rows) != len(seeds):
            raise BadInput(f"{len(rows)} rows need {len(rows)} seeds, not {len(seeds)}")
        if not rows:
            return []
        if not self.seeds_per_row:
            return [self.predict(row, seed) for row, seed in zip(rows, seeds, strict=True)]
        request = {"rows": len(rows), "columns": _columns_of(rows), "shared": {}, "seeds": seeds}
        return _rows_of(self.answer(request)["columns"])


def _columns_of(rows: list[Row]) -> dict[str, list[Any]]:
    names = list(rows[0])
    if any(row.keys() != rows[0].keys() for row in rows):
        raise BadInput("every row of a batch must have the same fields")
    return {name: [row[name] for row in rows] for name in names}


def _rows_of(columns: Mapping[str, list[Any]]) -> list[Row]:
    return [
        dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)
    ]


class PredictionError(BadInput):
    """The deployment's own code refused these inputs (a structured runner error)."""


class InProcessPredictor(Predictor):
    """Deployment functions called in this process through the runner's own code: the
    same row building and seeding as inside a container, without one."""

    def __init__(
        self,
        predict: Callable[[Row], Any],
        predict_batch: Callable[..., Any] | None = None,
    ) -> None:
        self.deployment = Deployment(predict, predict_batch)

    @classmethod
    def from_entrypoint(cls, entrypoint: str, model_dir: str, seed: int) -> InProcessPredictor:
        """Import `module:function` (already on sys.path) and load its model, as the
        runner does inside the image."""
        loaded = Deployment.load(entrypoint, model_dir, seed)
        return cls(loaded.predict, loaded.predict_batch)

    def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        try:
            answer = self.deployment.answer(request)
            # through JSON as from a container: tuples become lists, numpy values plain
            text = json.dumps(answer, default=plain)
        except Exception as error:  # reported as the runner reports it
            raise PredictionError(
                f"the deployment refused: {type(error).__name__}: {error}"
            ) from None
        decoded: dict[str, Any] = json.loads(text)
        return decoded
