"""Rows and outputs out of the payloads serving stacks log: CSV lines (values in the
order the deployment declares its inputs, or its output fields) and the JSON shapes
model servers take and give (`instances`, `dataframe_split`, `dataframe_records`,
records, columns, `predictions`, bare values).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from typing import Any

from replay.errors import BadInput
from replay.ingestion.events import read_json
from replay.manifests.manifest import Manifest


def csv_rows(
    text: str, manifest: Manifest, columns: list[str] | None = None
) -> list[dict[str, Any]]:
    """Input rows of CSV text without a header: one value per input, in the order of
    `columns` (default: the manifest's)."""
    names = columns or list(manifest.schema.inputs)
    if sorted(names) != sorted(manifest.schema.inputs):
        raise BadInput(f"CSV columns {', '.join(names)} are not the inputs of {manifest.name}")
    rows = []
    for values in csv.reader(io.StringIO(text)):
        if not values:
            continue
        if len(values) != len(names):
            raise BadInput(f"a CSV row of {len(values)} values for {len(names)} inputs")
        rows.append(
            {
                name: manifest.schema.inputs[name].parse(value)
                for name, value in zip(names, values, strict=True)
            }
        )
    return rows


def json_rows(data: Any, manifest: Manifest) -> list[dict[str, Any]]:
    """Input rows of the JSON a model server takes."""
    names = list(manifest.schema.inputs)
    if isinstance(data, Mapping):
        if "instances" in data:
            return json_rows(data["instances"], manifest)
        if "dataframe_records" in data:
            return json_rows(data["dataframe_records"], manifest)
        if "dataframe_split" in data:
            split = data["dataframe_split"]
            if not isinstance(split, Mapping) or not isinstance(split.get("data"), list):
                raise BadInput("dataframe_split needs `columns` and `data`")
            columns = split.get("columns", names)
            return [_positional(row, columns) for row in split["data"]]
        if "inputs" in data and isinstance(data["inputs"], Mapping | list):
            return json_rows(data["inputs"], manifest)
        if data and all(isinstance(value, list) for value in data.values()):  # columns
            lengths = {len(value) for value in data.values()}
            if len(lengths) != 1:
                raise BadInput("input columns of different lengths")
            return [
                {name: column[i] for name, column in data.items()} for i in range(lengths.pop())
            ]
        return [dict(data)]
    if isinstance(data, list):
        return [dict(row) if isinstance(row, Mapping) else _positional(row, names) for row in data]
    raise BadInput("inputs must be a JSON object or array")


def _positional(row: Any, names: list[str]) -> dict[str, Any]:
    if not isinstance(row, list):
        raise BadInput("a row must be an object, or an array of the inputs in order")
    if len(row) != len(names):
        raise BadInput(f"a row of {len(row)} values for {len(names)} inputs")
    return dict(zip(names, row, strict=True))


def csv_outputs(text: str, manifest: Manifest) -> list[dict[str, Any]]:
    """Outputs of CSV text: one line per row (or one value per row on a single line, as
    some servers answer a batch)."""
    lines = [values for values in csv.reader(io.StringIO(text)) if values]
    if len(lines) == 1 and len(lines[0]) > 1 and len(_positions(manifest)) == 1:
        lines = [[value] for value in lines[0]]
    return [outputs_of_values([_number(value) for value in values], manifest) for values in lines]


def json_outputs(data: Any, manifest: Manifest) -> list[dict[str, Any]]:
    """Outputs of the JSON a model server gives, one object per row."""
    if isinstance(data, Mapping) and "predictions" in data:
        data = data["predictions"]
    if not isinstance(data, list):
        data = [data]
    rows = []
    for item in data:
        if isinstance(item, Mapping):
            rows.append(dict(item))
        else:
            rows.append(outputs_of_values(item if isinstance(item, list) else [item], manifest))
    return rows


def outputs_of_values(values: list[Any], manifest: Manifest) -> dict[str, Any]:
    """Output values in the order the deployment declares its output fields (leaving out
    a decision its threshold rule makes from the score, when the values do)."""
    names = _positions(manifest)
    every = list(manifest.schema.output.fields)
    if len(values) == len(every):
        names = every
    if len(values) != len(names):
        raise BadInput(f"{len(values)} output values for the output fields {', '.join(names)}")
    return dict(zip(names, values, strict=True))


def _positions(manifest: Manifest) -> list[str]:
    """The output fields a server answers, in order: all but a rule-made decision."""
    rule = manifest.model_source.rule if manifest.model_source is not None else None
    made = rule["decision"] if rule else None
    return [name for name in manifest.schema.output.fields if name != made]


def _number(text: str) -> Any:
    """A CSV output value: a number if it reads as one (JSON's reading), else text."""
    try:
        value = read_json(text)
    except BadInput:
        return text
    return value if isinstance(value, int | float) and not isinstance(value, bool) else text
