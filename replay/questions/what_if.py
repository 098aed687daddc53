"""What if: a logged decision re-run with edited inputs, in its original container."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from replay.errors import BadInput
from replay.execution.inputs import check_inputs, parse_assignments
from replay.execution.warm import WarmDeployment, warm_for
from replay.ledger.decisions import open_ledger
from replay.settings import Settings, load_settings


@dataclass(frozen=True)
class WhatIf:
    txn_id: str
    manifest_id: str
    original_inputs: dict[str, Any]
    modified_inputs: dict[str, Any]
    original_outputs: dict[str, Any]  # as logged
    modified_outputs: dict[str, Any]
    decision_field: str
    score_field: str
    favourable: Any

    @property
    def changed(self) -> dict[str, tuple[Any, Any]]:
        return {
            name: (self.original_inputs[name], value)
            for name, value in self.modified_inputs.items()
            if value != self.original_inputs[name]
        }

    @property
    def decision_changed(self) -> bool:
        return (
            self.original_outputs[self.decision_field] != self.modified_outputs[self.decision_field]
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "changed": {k: list(v) for k, v in self.changed.items()},
            "decision_changed": self.decision_changed,
        }


def whatif(
    txn_id: str,
    changes: dict[str, Any] | list[str],
    *,
    warm: WarmDeployment | None = None,
    settings: Settings | None = None,
) -> WhatIf:
    """Re-run a logged decision with `changes` (values, or `NAME=VALUE` texts) applied.

    Same container, same seed: only the edited inputs differ from the decision.
    Pass a running `warm` deployment to answer many questions without a container start.
    """
    settings = settings or load_settings()
    entry = open_ledger(settings).get(txn_id)
    with warm_for(entry.manifest_id, warm, settings) as warm:
        schema = warm.manifest.io["inputs"]
        edits = parse_assignments(schema, changes) if isinstance(changes, list) else changes
        if not edits:
            raise BadInput("nothing to change: give at least one --set NAME=VALUE")
        modified = check_inputs(schema, {**entry.input_values, **edits})
        outputs = warm.predict(modified, entry.run_seed)
    output = warm.manifest.io["output"]
    return WhatIf(
        txn_id,
        entry.manifest_id,
        entry.input_values,
        modified,
        entry.output_values,
        outputs,
        output["decision"],
        output["score"],
        output["favourable"],
    )
