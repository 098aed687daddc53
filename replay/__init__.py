"""replay: freeze ML deployments, log their decisions, and replay them bit for bit.

Every `replay` command is one of these functions. Heavy libraries (MLflow, DVC,
docker-py, pandas) are imported by the functions that use them, so `import replay`
stays quick. No submodule directly under `replay` may share a name with a function
here: importing it would replace the function.
"""

from __future__ import annotations

from replay.deployments.environment import up
from replay.deployments.lifecycle import (
    build,
    capture,
    list_deployments,
    show_manifest,
    verify_manifest,
)
from replay.deployments.publishing import publish
from replay.execution.reexecution import replay, replay_many
from replay.ledger.decisions import (
    list_transactions,
    record_decision,
    show_transaction,
    verify_ledger,
)
from replay.questions.counterfactuals import counterfactual
from replay.questions.explanations import explain
from replay.questions.sweeps import Range, sweep
from replay.questions.what_if import whatif
from replay.web.serving import serve

__version__ = "0.1.0"

__all__ = [
    "Range",
    "build",
    "capture",
    "counterfactual",
    "explain",
    "list_deployments",
    "list_transactions",
    "publish",
    "record_decision",
    "replay",
    "replay_many",
    "serve",
    "show_manifest",
    "show_transaction",
    "sweep",
    "up",
    "verify_ledger",
    "verify_manifest",
    "whatif",
]
