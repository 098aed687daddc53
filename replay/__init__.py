"""replay: freeze ML deployments, log their decisions, and replay them bit for bit.

The public functions live in `replay.api`; they are re-exported here lazily so that
`import replay` (and `replay --help`) stays fast.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_API = {
    "capture",
    "build",
    "list_deployments",
    "show_manifest",
    "verify_manifest",
    "up",
}


def __getattr__(name: str) -> Any:
    if name in _API:
        from replay import api

        return getattr(api, name)
    raise AttributeError(f"module 'replay' has no attribute {name!r}")
