"""Inputs from files, and values as a person reads them.

Checking and normalising inputs is the typed schema's job (`Schema.check`): the
normalised values are both logged and sent to the model, so a replay sends exactly
what was decided on.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from replay.manifests.schema import Schema


def read_rows(path: Path | str, schema: Schema) -> list[dict[str, Any]]:
    """A CSV file of inputs (one column per feature) as checked, typed rows."""
    with open(path, newline="") as handle:
        return [
            schema.check(
                {name: feature.parse(row[name]) for name, feature in schema.inputs.items()}
            )
            for row in csv.DictReader(handle)
        ]


def format_value(value: Any) -> str:
    """A value as a person reads it: 69,000 or 15.4, not 69000.0 or 15.400000000000002."""
    if isinstance(value, float):
        return f"{value:,.2f}".rstrip("0").rstrip(".")
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)
