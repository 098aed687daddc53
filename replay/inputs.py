"""Inputs checked against a manifest's schema: names, types and bounds.

Values are normalised to their declared type (a `number` is a float, an `integer` an
int), and the normalised values are both logged and sent to the model, so a replay
sends exactly what was decided on.
"""

from __future__ import annotations

import math
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
