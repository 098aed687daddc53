"""The Open Inference Protocol (KServe's "v2" REST API) for tabular deployments: pure
translation between its JSON and replay's rows of feature values, no I/O.

A request carries one input tensor per feature (column), named after it, of shape [N]
or [N, 1] (N rows), its data as JSON (flat, or nested as its shape): BYTES for a string
or a text, BOOL, an INT or UINT of any width, FP16/32/64. MLServer's
`"parameters": {"content_type": "pd"}` (a data frame, the same tensors) is taken too.
Every row is checked against the deployment's schema. A response holds one tensor per
output field, of shape [N]: a number is FP64, an integer INT64, a boolean BOOL, a string
BYTES. A null (a nullable field without a value) is JSON null in the tensor's data,
whatever its datatype: JSON keeps it exactly, and it reads back as None here;
tritonclient's `as_numpy` reads it as NaN in an FP64 tensor and None in a BYTES one,
but cannot hold it in INT64 or BOOL (read those from `get_output(name)["data"]`).
Binary tensor data (Triton's extension) is not taken: tensors travel as JSON.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from replay.manifests.schema import Feature, FeatureType, OutputSpec, Schema

from replay.errors import BadInput

# The datatype a feature of each type is written as (metadata, responses).
DATATYPES: dict[FeatureType, str] = {
    "number": "FP64",
    "integer": "INT64",
    "boolean": "BOOL",
    "string": "BYTES",
    "text": "BYTES",
}
FLOATS = frozenset({"FP16", "FP32", "FP64"})
INTEGERS: dict[str, tuple[int, int]] = {
    **{f"INT{bits}": (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) for bits in (8, 16, 32, 64)},
    **{f"UINT{bits}": (0, 2**bits - 1) for bits in (8, 16, 32, 64)},
}
KNOWN = ("BOOL", "BYTES", *INTEGERS, *sorted(FLOATS))
# What a deployment is served by: its own code in its rebuilt container.
PLATFORM = "replay"
SHOWN = 40  # characters of a refused value quoted in a message


@dataclass(frozen=True)
class _Tensor:
    name: str
    shape: tuple[int, ...]
    datatype: str
    values: list[Any]  # flat, in row-major order


def rows_of_request(
    body: Any, schema: Schema
) -> tuple[list[dict[str, Any]], dict[str, Any], str | None]:
    """A v2 inference request (JSON-decoded) as its rows, each checked with the schema;
    its `parameters` (empty if none) and its `id`. BadInput, one line, for anything wrong."""
    if not isinstance(body, Mapping):
        raise BadInput("an inference request must be a JSON object")
    request_id = body.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadInput("the request's id must be a string")
    parameters = _parameters(body, "the request")
    content_type = parameters.get("content_type")
    if content_type not in (None, "pd"):
        raise BadInput(
            f"content_type {content_type!r} is not taken: send one tensor per feature "
            "(content_type pd, or none)"
        )
    items = body.get("inputs")
    if not isinstance(items, list) or not items:
        raise BadInput("the request needs inputs: one tensor per feature")
    columns: dict[str, list[Any]] = {}
    for item in items:
        tensor = _tensor(item, "input", nulls=False)
        name = tensor.name
        if name not in schema.inputs:
            raise BadInput(f"unknown input {name!r} (expected: {', '.join(schema.inputs)})")
        if name in columns:
            raise BadInput(f"input {name!r} is given twice")
        if len(tensor.shape) > 2 or tensor.shape[1:] not in ((), (1,)):
            raise BadInput(
                f"input {name!r}: shape must be [N] or [N, 1] (one value per row), "
                f"not {list(tensor.shape)}"
            )
        if columns:
            first, values = next(iter(columns.items()))
            if len(values) != tensor.shape[0]:
                raise BadInput(
                    f"input {name!r} holds {tensor.shape[0]} rows, input {first!r} {len(values)}"
                )
        columns[name] = tensor.values
    missing = [name for name in schema.inputs if name not in columns]
    if missing:
        raise BadInput(f"missing input {missing[0]!r}")
    count = len(next(iter(columns.values())))
    if count == 0:
        raise BadInput("the request holds no rows")
    rows = []
    for index in range(count):
        try:
            rows.append(schema.check({name: columns[name][index] for name in schema.inputs}))
        except BadInput as error:
            raise BadInput(f"row {index + 1} of {count}: {error}") from None
    return rows, dict(parameters), request_id


def requested_outputs(body: Any, output: OutputSpec) -> tuple[str, ...] | None:
    """The output fields a v2 request asks for by name (`outputs`), or None for all of
    them. Whatever their parameters ask (binary data), they are answered as JSON."""
    items = body.get("outputs") if isinstance(body, Mapping) else None
    if not items:
        return None
    if not isinstance(items, list):
        raise BadInput("the request's outputs must be a list of {name}")
    names = []
    for item in items:
        name = item.get("name") if isinstance(item, Mapping) else None
        if not isinstance(name, str):
            raise BadInput("each requested output needs a name")
        if name not in output.fields:
            known = ", ".join(output.fields)
            raise BadInput(f"unknown output {name!r} (the deployment's: {known})")
        names.append(name)
    return tuple(names)


def subjects_of(parameters: Mapping[str, Any], rows: int) -> list[str | None]:
    """The person each row is about, from the request's parameters: `subject` for a
    request of one row, or `subjects`, one per row (null for a row about no one)."""
    subject, subjects = parameters.get("subject"), parameters.get("subjects")
    if subject is not None and subjects is not None:
        raise BadInput("send parameters subject (one row) or subjects (one per row), not both")
    if subject is not None:
        if not isinstance(subject, str):
            raise BadInput("parameters.subject must be a string")
        if rows != 1:
            raise BadInput(
                f"parameters.subject names the person of a request of one row, not {rows}: "
                "send subjects, one per row"
            )
        return [subject]
    if subjects is None:
        return [None] * rows
    if not isinstance(subjects, list) or len(subjects) != rows:
        raise BadInput(f"parameters.subjects must list one subject per row ({rows})")
    if not all(each is None or isinstance(each, str) for each in subjects):
        raise BadInput("parameters.subjects must hold strings (null for a row about no one)")
    return list(subjects)


def outputs_of_response(body: Any, output: OutputSpec, rows: int) -> list[dict[str, Any]]:
    """A v2 inference response (JSON-decoded) as one outputs mapping per row, checked
    against the output fields; a tensor of no declared field is kept as an extra field
    (a row's slice of it nested as its shape, when it holds more than one value a row)."""
    if not isinstance(body, Mapping):
        raise BadInput("an inference response must be a JSON object")
    items = body.get("outputs")
    if not isinstance(items, list) or not items:
        raise BadInput("the response has no outputs")
    columns: dict[str, list[Any]] = {}
    for item in items:
        tensor = _tensor(item, "output", nulls=True)
        name, shape = tensor.name, tensor.shape
        if name in columns:
            raise BadInput(f"output {name!r} is given twice")
        if shape[0] != rows:
            raise BadInput(f"output {name!r} holds {shape[0]} rows, not {rows}")
        each = math.prod(shape[1:])  # values per row
        if name in output.fields and each != 1:
            raise BadInput(
                f"output {name!r}: shape must be [N] or [N, 1] (one value per row), "
                f"not {list(shape)}"
            )
        if each == 0:
            raise BadInput(f"output {name!r}: shape {list(shape)} holds no value per row")
        values = tensor.values
        columns[name] = [_nested(values[i * each : (i + 1) * each], shape[1:]) for i in range(rows)]
    answers = []
    for index in range(rows):
        try:
            answers.append(output.check({name: values[index] for name, values in columns.items()}))
        except BadInput as error:
            raise BadInput(f"row {index + 1} of {rows}: {error}") from None
    return answers


def response_of(
    model_name: str,
    model_version: str,
    request_id: str | None,
    outputs: list[dict[str, Any]],
    output: OutputSpec,
    parameters: dict[str, Any],
    *,
    requested: Sequence[str] | None = None,
) -> dict[str, Any]:
    """A v2 inference response: one tensor of shape [N] per output field (those
    `requested`, else all the schema declares) of the N rows' `outputs`."""
    names = tuple(output.fields) if requested is None else requested
    tensors = [
        {
            "name": name,
            "datatype": DATATYPES[output.fields[name].type],
            "shape": [len(outputs)],
            "data": [row[name] for row in outputs],
        }
        for name in names
    ]
    answer: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    if request_id is not None:
        answer["id"] = request_id
    return {**answer, "parameters": dict(parameters), "outputs": tensors}


def model_metadata(name: str, versions: list[str], schema: Schema) -> dict[str, Any]:
    """The v2 model metadata: one tensor of variable length per feature and output field."""
    return {
        "name": name,
        "versions": versions,
        "platform": PLATFORM,
        "inputs": _described(schema.inputs),
        "outputs": _described(schema.output.fields),
    }


def _described(features: Mapping[str, Feature]) -> list[dict[str, Any]]:
    return [
        {"name": name, "datatype": DATATYPES[feature.type], "shape": [-1]}
        for name, feature in features.items()
    ]


def _parameters(holder: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    parameters = holder.get("parameters")
    if parameters is None:
        return {}
    if not isinstance(parameters, Mapping):
        raise BadInput(f"{where}'s parameters must be a JSON object")
    return parameters


def _tensor(item: Any, kind: str, *, nulls: bool) -> _Tensor:
    """One tensor of a request or response, its data flat and of its datatype (JSON
    null allowed only where `nulls`)."""
    if not isinstance(item, Mapping):
        raise BadInput(f"each {kind} must be a JSON object")
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise BadInput(f"each {kind} needs a name")
    label = f"{kind} {name!r}"
    parameters = _parameters(item, label)
    if "binary_data_size" in parameters or "shared_memory_region" in parameters:
        raise BadInput(
            f"{label}: binary or shared-memory tensor data is not taken; send the data as "
            "JSON (tritonclient: binary_data=False)"
        )
    shape = item.get("shape")
    if (
        not isinstance(shape, list)
        or not shape
        or not all(type(size) is int and size >= 0 for size in shape)
    ):
        raise BadInput(f"{label}: shape must be a list of whole numbers, not {_shown(shape)}")
    datatype = item.get("datatype")
    if datatype not in KNOWN:
        known = ", ".join(KNOWN)
        raise BadInput(f"{label}: datatype must be one of {known}; not {_shown(datatype)}")
    data = item.get("data")
    if not isinstance(data, list):
        raise BadInput(f"{label}: data must be a JSON array")
    values = _flat(data, len(shape))
    if values is None:
        raise BadInput(f"{label}: data is nested unlike shape {shape}")
    if len(values) != math.prod(shape):
        raise BadInput(f"{label}: {len(values)} values do not fill shape {shape}")
    for value in values:
        if not (nulls and value is None) and not _fits(value, datatype):
            raise BadInput(f"{label}: {_shown(value)} is not {datatype}")
    return _Tensor(name, tuple(shape), datatype, values)


def _flat(data: list[Any], rank: int) -> list[Any] | None:
    """`data` flattened, nested at most `rank` deep, each level alike (None otherwise):
    the protocol takes a tensor's data flat or nested as its shape."""
    level = data
    for _ in range(rank - 1):
        nested = [isinstance(item, list) for item in level]
        if not any(nested):
            break
        if not all(nested):
            return None
        level = [value for item in level for value in item]
    return level


def _fits(value: Any, datatype: str) -> bool:
    if datatype == "BOOL":
        return isinstance(value, bool)
    if datatype == "BYTES":
        return isinstance(value, str)
    if isinstance(value, bool):  # a JSON true is no number
        return False
    if datatype in FLOATS:
        return isinstance(value, int | float)
    low, high = INTEGERS[datatype]
    return isinstance(value, int) and low <= value <= high


def _nested(values: list[Any], shape: Sequence[int]) -> Any:
    """One row's values of a tensor: a single value as itself, several nested as the
    tensor's shape past its first dimension."""
    if math.prod(shape) == 1:
        return values[0]
    nested: list[Any] = values
    for size in reversed(shape[1:]):
        nested = [nested[start : start + size] for start in range(0, len(nested), size)]
    return nested


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= SHOWN else text[: SHOWN - 3] + "..."
