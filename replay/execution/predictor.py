"""What every question asks of a deployment: outputs for rows, with a seed.

A `Predictor` answers one row (seeded as a decision is) or a batch by column (every row
answered as that row alone with the batch's seed, as the runner protocol says). The
original container (`WarmDeployment`) is one; `InProcessPredictor` runs the same runner
code on functions in this process, so the question algorithms are tested without a
Docker engine and compared with the container where it matters.

The exact-batch rule: decisions are made one request each, through `predict`, and a
model's batch arithmetic is not always its single-row arithmetic (on an AVX2 machine a
scikit-learn Pipeline scored five identical rows in the last bit differently from the
same row alone). So a batch is answered row by row inside the container (`alone`), one
request and no container start per row, unless the deployment declares `batch_exact`
and `batch_difference` found none on its reference sample on this machine.
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

    # Whether a batch may go through the deployment's `predict_batch` (see the module's
    # exact-batch rule); `WarmDeployment` says per manifest and machine.
    batch_exact = False
    # Whether the runner answers a batch `alone` (protocol 7); else such a batch is sent
    # one request per row.
    answers_alone = True

    @abstractmethod
    def answer(self, request: dict[str, Any], *, arrays: bool = False) -> dict[str, Any]:
        """The runner's answer to one request (without its id); a deployment error is
        raised as PredictionError. With `arrays`, a column of an answer that travelled
        packed may come back as an array a data frame takes as it is (numpy's float64,
        int64 or bool; pandas' strings) instead of a list."""

    def predict(self, inputs: Mapping[str, Any], seed: int) -> Row:
        """One row's outputs, seeded exactly as a decision is."""
        outputs: Row = self.answer({"inputs": dict(inputs), "seed": seed})["outputs"]
        return outputs

    def predict_columns(
        self,
        columns: Mapping[str, Any],  # lists, or numpy arrays of numbers
        seed: int,
        *,
        shared: Mapping[str, Any] | None = None,
        arrays: bool = False,
    ) -> dict[str, Any]:
        """A batch by column, each row answered as alone with `seed`: row i has `shared`
        plus each column's i-th value. Answers one list per output field, or with
        `arrays` (for a caller that makes a data frame of them) a numpy array where the
        column travelled packed: no Python object per value."""
        counts = {len(values) for values in columns.values()}
        if len(counts) != 1:
            raise BadInput("a batch needs columns, all of the same length")
        request = {
            "rows": counts.pop(),
            "columns": dict(columns),
            "shared": dict(shared or {}),
            "seed": seed,
        }
        return self._columns(request, arrays)

    def _columns(self, request: dict[str, Any], arrays: bool = False) -> dict[str, Any]:
        """A batch request answered under the exact-batch rule, sent in parts of at most
        BATCH_CHARACTERS of varying values (a 10,000-point sweep of numbers is one)."""
        parts = _parts(request)
        if len(parts) == 1:
            return self._part(request, arrays)
        answers = [self._part(part, arrays) for part in parts]
        return {name: _joined([answer[name] for answer in answers]) for name in answers[0]}

    def _part(self, request: dict[str, Any], arrays: bool = False) -> dict[str, Any]:
        if not self.batch_exact:
            if not self.answers_alone:  # an old runner: one request per row
                count, columns = request["rows"], request["columns"]
                seeds = request.get("seeds") or [request["seed"]] * count
                values = zip(*columns.values(), strict=True) if columns else [()] * count
                rows = [{**request["shared"], **dict(zip(columns, v, strict=True))} for v in values]
                return _columns_of([self.predict(r, s) for r, s in zip(rows, seeds, strict=True)])
            request = {**request, "alone": True}
        answer: dict[str, Any] = self.answer(request, arrays=arrays)["columns"]
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
        return _rows_of(self._columns(request))

    def batch_difference(self, rows: list[Row], seed: int) -> str | None:
        """Where `rows` get other bits in one `predict_batch` call than each alone (only
        a deployment captured with runner 7 can declare `batch_exact`, so its runner
        answers `alone` batches)."""
        return batch_difference(self.answer, rows, seed)


def batch_difference(
    answer: Callable[[dict[str, Any]], dict[str, Any]], rows: list[Row], seed: int
) -> str | None:
    """Where `rows` in one `predict_batch` call get other bits than each alone (the first
    such row and field), or None when every row gets the same outputs; `answer` sends a
    runner request. Floats come back as shortest reprs: equal values are equal bits."""
    if not rows:
        return None
    request = {"rows": len(rows), "columns": _columns_of(rows), "shared": {}, "seed": seed}
    alone = _rows_of(answer({**request, "alone": True})["columns"])
    batched = _rows_of(answer(request)["columns"])
    for index, (single, together) in enumerate(zip(alone, batched, strict=True)):
        for name in single:
            if together.get(name) != single[name]:
                return (
                    f"reference row {index + 1} gets {name} {single[name]!r} alone, "
                    f"{together.get(name)!r} in a batch of {len(rows)}"
                )
    return None


# Characters of varying values one batch request may carry. A model's batch memory
# grows with its text (hashed character n-grams of 12,800 mixes, half of them a
# 5,000-character descriptor, ran a container out of its memory in one call).
BATCH_CHARACTERS = 4_000_000
NUMBER_CHARACTERS = 24  # what a number costs in that budget (its JSON text at most)


def _parts(request: dict[str, Any]) -> list[dict[str, Any]]:
    """`request` cut into consecutive runs of rows within BATCH_CHARACTERS."""
    count, columns = request["rows"], request["columns"]
    texts = [values for values in columns.values() if _may_hold_text(values)]
    fixed = NUMBER_CHARACTERS * (len(columns) - len(texts))
    if not texts:  # numbers only: every row costs the same
        step = max(1, BATCH_CHARACTERS // fixed) if fixed else max(count, 1)
        bounds = [(begin, min(begin + step, count)) for begin in range(0, count, step)]
    else:
        costs = [
            fixed + sum(len(v) if isinstance(v, str) else NUMBER_CHARACTERS for v in row)
            for row in zip(*texts, strict=True)
        ]
        bounds, start, size = [], 0, 0
        for row, cost in enumerate(costs):
            if row > start and size + cost > BATCH_CHARACTERS:
                bounds.append((start, row))
                start, size = row, 0
            size += cost
        bounds.append((start, count))
    if len(bounds) <= 1:
        return [request]
    return [
        {
            **request,
            "rows": end - begin,
            "columns": {name: values[begin:end] for name, values in columns.items()},
            **({"seeds": request["seeds"][begin:end]} if "seeds" in request else {}),
        }
        for begin, end in bounds
    ]


def _may_hold_text(values: Any) -> bool:
    """Whether a column (a list, or a numpy array of numbers) holds a string."""
    if getattr(getattr(values, "dtype", None), "kind", "O") in "biuf":
        return False
    return any(issubclass(kind, str) for kind in set(map(type, values)))


def _joined(pieces: list[Any]) -> Any:
    """One column from its parts: one array where every part is an array of the same
    type, else a list (an all-boolean part and an all-number part stay what they are)."""
    types = {getattr(piece, "dtype", None) for piece in pieces}
    if None not in types and len(types) == 1:
        import numpy as np

        return np.concatenate(pieces)
    return [v for piece in pieces for v in (piece.tolist() if hasattr(piece, "dtype") else piece)]


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
        *,
        batch_exact: bool = False,
    ) -> None:
        self.deployment = Deployment(predict, predict_batch)
        self.batch_exact = batch_exact

    @classmethod
    def from_entrypoint(
        cls, entrypoint: str, model_dir: str, seed: int, *, batch_exact: bool = False
    ) -> InProcessPredictor:
        """Import `module:function` (already on sys.path) and load its model, as the
        runner does inside the image."""
        loaded = Deployment.load(entrypoint, model_dir, seed)
        return cls(loaded.predict, loaded.predict_batch, batch_exact=batch_exact)

    def answer(self, request: dict[str, Any], *, arrays: bool = False) -> dict[str, Any]:
        # through JSON both ways, as to and from a container: numpy arrays become lists
        request = json.loads(json.dumps(request, default=plain))
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
