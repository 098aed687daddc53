"""Inputs checked against a manifest's schema: names, types and bounds.

Values are normalised to their declared type (a `number` is a float, an `integer` an
int), and the normalised values are both logged and sent to the model, so a replay
sends exactly what was decided on.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from replay.errors import BadInput


def check_value(name: str, spec: dict[str, Any], value: Any) -> Any:
    kind = spec["type"]
    if kind == "boolean":
        if not isinstance(value, bool):
            raise BadInput(f"{name} must be true or false, not {value!r}")
        return value
    if kind == "string":
        if not isinstance(value, str):
            raise BadInput(f"{name} must be a string, not {value!r}")
        if "values" in spec and value not in spec["values"]:
            raise BadInput(f"{name} must be one of {', '.join(spec['values'])}, not {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadInput(f"{name} must be a {kind}, not {value!r}")
    if not math.isfinite(value):
        raise BadInput(f"{name} must be finite, not {value!r}")
    if kind == "integer":
        if float(value) != int(value):
            raise BadInput(f"{name} must be a whole number, not {value!r}")
        value = int(value)
    else:
        value = float(value)
    if "min" in spec and value < spec["min"]:
        raise BadInput(f"{name}={value:g} is below its minimum {spec['min']:g}")
    if "max" in spec and value > spec["max"]:
        raise BadInput(f"{name}={value:g} is above its maximum {spec['max']:g}")
    return value


def parse_value(name: str, spec: dict[str, Any], text: str) -> Any:
    """A command-line value (`--set income=65000`) as the feature's type, checked."""
    kind = spec["type"]
    try:
        if kind == "boolean":
            lowered = text.strip().lower()
            if lowered not in {"true", "false", "yes", "no", "1", "0"}:
                raise ValueError
            value: Any = lowered in {"true", "yes", "1"}
        elif kind == "string":
            value = text
        else:
            value = float(text.replace("_", ""))
    except ValueError:
        raise BadInput(f"{name}={text!r} is not a {kind}") from None
    return check_value(name, spec, value)


def parse_assignments(schema: dict[str, dict[str, Any]], texts: list[str]) -> dict[str, Any]:
    """`["income=65000", "debt=1200"]` → checked values, naming what is wrong."""
    values = {}
    for text in texts:
        name, separator, raw = text.partition("=")
        name = name.strip()
        if not separator or not name:
            raise BadInput(f"--set {text!r} is not NAME=VALUE")
        if name not in schema:
            raise BadInput(f"unknown feature {name!r} (expected: {', '.join(schema)})")
        values[name] = parse_value(name, schema[name], raw.strip())
    return values


def check_inputs(schema: dict[str, dict[str, Any]], inputs: dict[str, Any]) -> dict[str, Any]:
    """Every declared feature present, nothing unknown, each value valid; normalised."""
    if not isinstance(inputs, dict):
        raise BadInput("inputs must be a JSON object of feature values")
    unknown = sorted(set(inputs) - set(schema))
    if unknown:
        raise BadInput(f"unknown feature {unknown[0]!r} (expected: {', '.join(schema)})")
    missing = [name for name in schema if name not in inputs]
    if missing:
        raise BadInput(f"missing feature {missing[0]!r}")
    return {name: check_value(name, schema[name], inputs[name]) for name in schema}


def read_rows(path: Path | str, schema: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """A CSV file of inputs (one column per feature) as checked, typed rows."""

    def typed(spec: dict[str, Any], text: str) -> Any:
        if spec["type"] == "string":
            return text
        if spec["type"] == "boolean":
            return text.strip().lower() == "true"
        return float(text)

    with open(path, newline="") as handle:
        return [
            check_inputs(schema, {name: typed(spec, row[name]) for name, spec in schema.items()})
            for row in csv.DictReader(handle)
        ]


def format_value(value: Any) -> str:
    """A value as a person reads it: 69,000 or 15.4, not 69000.0 or 15.400000000000002."""
    if isinstance(value, float):
        return f"{value:,.2f}".rstrip("0").rstrip(".")
    return f"{value:,}" if isinstance(value, int) else str(value)
