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
    "up": "replay.deployments.environment",
    "capture": "replay.deployments.lifecycle",
    "build": "replay.deployments.lifecycle",
    "list_deployments": "replay.deployments.lifecycle",
    "show_manifest": "replay.deployments.lifecycle",
    "verify_manifest": "replay.deployments.lifecycle",
    "publish": "replay.deployments.publishing",
    "serve": "replay.web.serving",
    "record_decision": "replay.ledger.decisions",
    "show_transaction": "replay.ledger.decisions",
    "list_transactions": "replay.ledger.decisions",
    "verify_ledger": "replay.ledger.decisions",
    "replay": "replay.execution.reexecution",
    "replay_many": "replay.execution.reexecution",
    "whatif": "replay.questions.what_if",
    "sweep": "replay.questions.sweeps",
    "explain": "replay.questions.explanations",
    "counterfactual": "replay.questions.counterfactuals",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'replay' has no attribute {name!r}")
