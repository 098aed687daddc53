"""The deployment code of a model captured from MLflow: written by replay, not the team.

Copied into the deployment's source as `replay_pyfunc_model.py` beside its settings
(`replay_pyfunc_model.json`: the model's folder, its input columns with the dtypes
`predict` expects, its output names, and the threshold rule that makes the decision
from the score, if any), so the image's content fingerprint and the manifest's source
hash cover both. It runs inside the image, under the runner, with only the model's own
locked packages: it must import nothing from the replay project.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

_HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(_HERE, "replay_pyfunc_model.json"), encoding="utf-8") as _handle:
    SETTINGS: dict[str, Any] = json.load(_handle)

_model: Any = None


def load(models: str) -> None:
    """Load the model as MLflow serves it: `mlflow.pyfunc.load_model`."""
    global _model
    import mlflow.pyfunc

    _model = mlflow.pyfunc.load_model(os.path.join(models, SETTINGS["model"]))


def predict(inputs: dict[str, Any]) -> dict[str, Any]:
    """One decision: the row alone through the model's `predict`."""
    return predict_batch([inputs])[0]


def predict_batch(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every row in one call of `predict`, each answered with its named outputs."""
    answers = [_decided(outputs) for outputs in _named(_model.predict(_table(rows)), len(rows))]
    return answers


def _table(rows: list[dict[str, Any]]) -> Any:
    """The rows as the model takes them: a frame of typed columns, or one 2-D array
    (a model whose signature is a tensor) with the columns in the signature's order."""
    if SETTINGS.get("tensor"):
        import numpy

        names = [column for column, _ in SETTINGS["columns"]]
        return numpy.array([[row[name] for name in names] for row in rows], SETTINGS["tensor"])
    import pandas

    return pandas.DataFrame(
        {
            column: pandas.Series([row[column] for row in rows], dtype=dtype)
            for column, dtype in SETTINGS["columns"]
        }
    )


def _plain(value: Any) -> Any:
    """A numpy or pandas scalar as the Python value with the same bits."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _named(result: Any, count: int) -> list[dict[str, Any]]:
    """`predict`'s answer (a frame, a series, an array or a list) as one dict per row."""
    names = SETTINGS["outputs"]
    if hasattr(result, "columns") and all(isinstance(label, int) for label in result.columns):
        result = result.to_numpy()  # a frame of numbered columns (PyTorch's): as an array
    if hasattr(result, "to_dict") and hasattr(result, "columns"):  # a DataFrame
        records = result.to_dict(orient="records")
        return [{str(key): _plain(value) for key, value in row.items()} for row in records]
    values = result.tolist() if hasattr(result, "tolist") else list(result)
    if len(values) != count:
        raise ValueError(f"the model answered {len(values)} rows for {count}")
    rows = []
    for value in values:
        if isinstance(value, list):
            width = len(value)
            labels = names if len(names) == width else [f"prediction_{i}" for i in range(width)]
            rows.append({label: _plain(item) for label, item in zip(labels, value, strict=True)})
        else:
            rows.append({names[0] if len(names) == 1 else "prediction": _plain(value)})
    return rows


def _decided(outputs: dict[str, Any]) -> dict[str, Any]:
    """The outputs with the decision the rule makes from the score (when there is one)."""
    rule = SETTINGS.get("rule")
    if not rule:
        return outputs
    score = outputs.get(rule["score"])
    if score is None:
        answered = ", ".join(outputs) or "nothing"
        raise ValueError(f"the model gave no {rule['score']} (it answered {answered})")
    above = score >= rule["threshold"]
    return {**outputs, rule["decision"]: rule["at_or_above"] if above else rule["below"]}
