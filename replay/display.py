"""How a logged value is shown to a person: on one short line.

Free text (`type: text`) can be thousands of characters with newlines; every table,
page and report shows it through `shorten`, while `--json`, the ledger and exports keep
the full value.
"""

from __future__ import annotations

from typing import Any

from replay.manifests.schema import Feature

LINE = 60  # characters of text a table cell, a page or a report shows


def shorten(text: str, limit: int = LINE) -> str:
    """`text` on one line (runs of whitespace, newlines included, become one space) of
    at most `limit` characters, `…` marking a cut."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    return flat[: limit - 1].rstrip() + "…"


def shown(feature: Feature | None, value: Any) -> Any:
    """`value` as a table or page shows it: text and long strings shortened, the rest
    as it is."""
    if isinstance(value, str) and (feature is None or feature.text or len(value) > LINE):
        return shorten(value)
    return value
