"""Values as a person reads them.

Checking, normalising and reading inputs is the typed schema's job (`Schema.check`,
`Schema.read_rows`): the normalised values are both logged and sent to the model, so a
replay sends exactly what was decided on.
"""

from __future__ import annotations

from typing import Any

from replay.display import shorten


def format_value(value: Any) -> str:
    """A value as a person reads it: 69,000 or 15.4, not 69000.0 or 15.400000000000002;
    text on one line of at most 60 characters (the full value stays in the JSON)."""
    if isinstance(value, float):
        return f"{value:,.2f}".rstrip("0").rstrip(".")
    if isinstance(value, str):
        return shorten(value)
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)
