"""replay: freeze ML deployments, log their decisions, and replay them bit for bit.

The public functions are re-exported here lazily so that `import replay` (and
`replay --help`) does not pay for MLflow, DVC and docker-py up front. No submodule may
share a name with a function here: importing it would replace the function.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_PUBLIC = {
    "up": "replay.environment",
    "capture": "replay.deployments",
    "build": "replay.deployments",
    "list_deployments": "replay.deployments",
    "show_manifest": "replay.deployments",
    "verify_manifest": "replay.deployments",
    "publish": "replay.publishing",
    "serve": "replay.serving",
    "record_decision": "replay.decisions",
    "show_transaction": "replay.decisions",
    "list_transactions": "replay.decisions",
    "verify_ledger": "replay.decisions",
    "replay": "replay.reexecution",
    "replay_many": "replay.reexecution",
    "whatif": "replay.what_if",
    "sweep": "replay.sweeps",
    "explain": "replay.explanations",
    "counterfactual": "replay.counterfactuals",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'replay' has no attribute {name!r}")
