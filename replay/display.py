"""How a logged value is shown to a person: numbers as people write them, text on one
short line.

Checking, normalising and reading inputs is the typed schema's job (`Schema.check`,
`Schema.read_rows`): the normalised values are both logged and sent to the model, so a
replay sends exactly what was decided on; this module only shows them. Free text
(`type: text`) can be thousands of characters with newlines: every table, page and
report shows it through `shorten`, while `--json`, the ledger and exports keep the full
value.
"""

from __future__ import annotations

from typing import Any

LINE = 60  # characters of text a table cell, a page or a report shows


def shorten(text: str, limit: int = LINE) -> str:
    """`text` on one line (runs of whitespace, newlines included, become one space) of
    at most `limit` characters, `…` marking a cut."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    return flat[: limit - 1].rstrip() + "…"


def format_value(value: Any) -> str:
    """A value as a person reads it: 69,000 or 15.4, not 69000.0 or 15.400000000000002;
    text on one line of at most LINE characters."""
    if isinstance(value, float):
        return f"{value:,.2f}".rstrip("0").rstrip(".")
    if isinstance(value, str):
        return shorten(value)
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)
