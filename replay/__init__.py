"""replay: freeze ML deployments, log their decisions, and replay them bit for bit.

Every `replay` command is one of these functions. They are looked up when first used,
so that importing a leaf of the package (`replay.errors`, which `replay.manifests` and
`replay.images` raise) does not load the whole library with it. No submodule directly
under `replay` may share a name with a function here: importing it would replace it.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers and editors see; at run time, __getattr__
    from replay.deployments.building import build
    from replay.deployments.capturing import capture
    from replay.deployments.environment import up
    from replay.deployments.history import list_deployments, show_manifest, verify_manifest
    from replay.deployments.publishing import publish
    from replay.execution.reexecution import replay
    from replay.execution.warm import WarmDeployment
    from replay.history.backtest import backtest
    from replay.history.batch_replay import replay_many
    from replay.history.drift import drift
    from replay.history.export import export_ledger
    from replay.history.fairness import fairness
    from replay.ingestion.ingest import held_events, ingest
    from replay.ledger.decisions import (
        checkpoint_ledger,
        list_transactions,
        record_decision,
        show_transaction,
        verify_ledger,
    )
    from replay.ledger.reviews import review_decision
    from replay.ledger.subjects import erase_subject, export_subject
    from replay.questions.counterfactuals import counterfactual
    from replay.questions.explanations import explain
    from replay.questions.sweeps import Range, sweep
    from replay.questions.what_if import whatif
    from replay.reports.reporting import report, report_subject
    from replay.web.access import (
        add_token,
        add_user,
        list_tokens,
        list_users,
        remove_user,
        revoke_token,
    )
    from replay.web.console import console
    from replay.web.listening import listen
    from replay.web.serving import serve

__version__ = "0.1.0"

_PUBLIC = {
    "up": "replay.deployments.environment",
    "capture": "replay.deployments.capturing",
    "build": "replay.deployments.building",
    "list_deployments": "replay.deployments.history",
    "show_manifest": "replay.deployments.history",
    "verify_manifest": "replay.deployments.history",
    "publish": "replay.deployments.publishing",
    "replay": "replay.execution.reexecution",
    "replay_many": "replay.history.batch_replay",
    "backtest": "replay.history.backtest",
    "audit": "replay.history.audit",
    "fairness": "replay.history.fairness",
    "drift": "replay.history.drift",
    "export_ledger": "replay.history.export",
    "WarmDeployment": "replay.execution.warm",
    "ingest": "replay.ingestion.ingest",
    "held_events": "replay.ingestion.ingest",
    "record_decision": "replay.ledger.decisions",
    "show_transaction": "replay.ledger.decisions",
    "list_transactions": "replay.ledger.decisions",
    "verify_ledger": "replay.ledger.decisions",
    "checkpoint_ledger": "replay.ledger.decisions",
    "export_subject": "replay.ledger.subjects",
    "review_decision": "replay.ledger.reviews",
    "erase_subject": "replay.ledger.subjects",
    "whatif": "replay.questions.what_if",
    "sweep": "replay.questions.sweeps",
    "Range": "replay.questions.sweeps",
    "counterfactual": "replay.questions.counterfactuals",
    "explain": "replay.questions.explanations",
    "serve": "replay.web.serving",
    "console": "replay.web.console",
    "listen": "replay.web.listening",
    "report": "replay.reports.reporting",
    "report_subject": "replay.reports.reporting",
    "add_token": "replay.web.access",
    "list_tokens": "replay.web.access",
    "revoke_token": "replay.web.access",
    "add_user": "replay.web.access",
    "list_users": "replay.web.access",
    "remove_user": "replay.web.access",
}

__all__ = [
    "Range",
    "WarmDeployment",
    "add_token",
    "add_user",
    "audit",
    "backtest",
    "build",
    "capture",
    "checkpoint_ledger",
    "console",
    "counterfactual",
    "drift",
    "erase_subject",
    "explain",
    "export_ledger",
    "export_subject",
    "fairness",
    "held_events",
    "ingest",
    "list_deployments",
    "list_tokens",
    "list_transactions",
    "list_users",
    "listen",
    "publish",
    "record_decision",
    "remove_user",
    "replay",
    "replay_many",
    "report",
    "report_subject",
    "review_decision",
    "revoke_token",
    "serve",
    "show_manifest",
    "show_transaction",
    "sweep",
    "up",
    "verify_ledger",
    "verify_manifest",
    "whatif",
]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'replay' has no attribute {name!r}")
