"""What if: a logged decision re-run with edited inputs, in its original container."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from replay.errors import BadInput
from replay.execution.decision import Decision
from replay.execution.predictor import Predictor
from replay.execution.warm import WarmDeployment
from replay.manifests.schema import OutputSpec, Schema
from replay.questions.asking import answered, asking, immutable_edits
from replay.settings import Settings


@dataclass(frozen=True)
class WhatIf:
    decision: Decision  # as logged
    modified_inputs: dict[str, Any]
    modified_outputs: dict[str, Any]  # from the decision's container, with its seed
    output: OutputSpec
    probed: tuple[str, ...] = ()  # immutable inputs changed, as compliance probing allowed

    @property
    def txn_id(self) -> str:
        return self.decision.txn_id

    @property
    def original_inputs(self) -> dict[str, Any]:
        return self.decision.inputs

    @property
    def original_outputs(self) -> dict[str, Any]:
        return self.decision.outputs

    @property
    def changed(self) -> dict[str, tuple[Any, Any]]:
        return {
            name: (self.original_inputs[name], value)
            for name, value in self.modified_inputs.items()
            if value != self.original_inputs[name]
        }

    @property
    def decision_changed(self) -> bool:
        field = self.output.decision
        return bool(self.original_outputs[field] != self.modified_outputs[field])

    def to_dict(self) -> dict[str, Any]:
        return {
            "txn_id": self.txn_id,
            "manifest_id": self.decision.manifest_id,
            "seed": self.decision.seed,
            "original_inputs": self.original_inputs,
            "modified_inputs": self.modified_inputs,
            "original_outputs": self.original_outputs,
            "modified_outputs": self.modified_outputs,
            "decision_field": self.output.decision,
            "score_field": self.output.score,
            "favourable": self.output.favourable,
            "changed": {k: list(v) for k, v in self.changed.items()},
            "decision_changed": self.decision_changed,
            "probed_immutable": list(self.probed),
        }


def whatif_of(
    schema: Schema,
    decision: Decision,
    changes: Mapping[str, Any],
    predictor: Predictor,
    *,
    allow_immutable: bool = False,
) -> WhatIf:
    """`decision` re-run by `predictor` with `changes` applied, with the decision's seed:
    only the edited inputs differ. A value may be given as text ("65000"). An immutable
    input is refused unless `allow_immutable` (compliance probing), and then named."""
    edits = schema.edits(changes)
    if not edits:
        raise BadInput("nothing to change: no input was edited")
    changed = [name for name, value in edits.items() if value != decision.inputs[name]]
    probed = immutable_edits(schema, changed, allow_immutable)
    modified = schema.check({**decision.inputs, **edits})
    outputs = predictor.predict(modified, decision.seed)
    answered(schema, {name: [value] for name, value in outputs.items()})
    return WhatIf(decision, modified, outputs, schema.output, probed)


def whatif(
    txn_id: str,
    changes: Mapping[str, Any],
    *,
    allow_immutable: bool = False,
    warm: WarmDeployment | None = None,
    settings: Settings | None = None,
) -> WhatIf:
    """Re-run a logged decision with `changes` applied, in its original container; an
    immutable input only with `allow_immutable` (compliance probing).

    Pass a running `warm` deployment to answer many questions without a container start.
    """
    with asking(txn_id, warm, settings, "what-if") as (decision, running):
        schema = running.manifest.schema
        return whatif_of(schema, decision, changes, running, allow_immutable=allow_immutable)
