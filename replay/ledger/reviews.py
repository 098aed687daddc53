"""Human review beside the decision: a person's review is part of the record.

`review_decision` writes a `review` entry linked to the decision it reviews: who, when,
the outcome (`upheld`, or `overturned` to another decision) and a note. It carries the
decision's subject, so it is sealed, exported and erased with it. `show_transaction`
shows a decision's reviews with it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from replay.errors import BadInput
from replay.ledger import open_ledger
from replay.ledger.chain import LedgerEntry, NewEntry
from replay.manifests.schema import OutputSpec
from replay.settings import Settings, load_settings
from replay.stores.manifests import manifest_store

OUTCOMES = ("upheld", "overturned")
MAX_NOTE = 2000  # characters: a reviewer's reasons, not a document


@dataclass(frozen=True)
class Review:
    txn_id: str  # the review's own entry
    reviews: str  # the decision's transaction id
    outcome: str  # upheld | overturned
    decision: Any  # the decision that stands after the review
    note: str
    by: str
    time: str

    @classmethod
    def from_entry(cls, entry: LedgerEntry) -> Review:
        outputs = entry.outputs
        return cls(
            entry.txn_id,
            entry.refers_to or "",
            outputs["outcome"],
            outputs["decision"],
            outputs["note"],
            outputs["by"],
            entry.time,
        )

    @property
    def summary(self) -> str:
        """In one line, as the report's first section and `ledger show` say it."""
        day = self.time[:10]
        if self.outcome == "overturned":
            return f"reviewed by a person on {day}: overturned to {self.decision}"
        return f"reviewed by a person on {day}: upheld"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "summary": self.summary}


def review_decision(
    txn_id: str,
    outcome: str,
    note: str,
    *,
    decision: str | None = None,
    by: str | None = None,
    settings: Settings | None = None,
) -> Review:
    """Record a person's review of decision `txn_id`. `overturned` needs the decision
    that replaces it (`decision`, text typed by the manifest's output schema); `upheld`
    keeps the logged one."""
    settings = settings or load_settings()
    if outcome not in OUTCOMES:
        raise BadInput(f"a review's outcome is {' or '.join(OUTCOMES)}, not {outcome!r}")
    note = note.strip()
    if not note or len(note) > MAX_NOTE:
        raise BadInput(f"a review needs a note of 1 to {MAX_NOTE:,} characters")
    ledger = open_ledger(settings)
    entry = ledger.get(txn_id).readable()  # unknown: exit 2; erased: exit 5
    if entry.kind != "decision":
        raise BadInput(f"{txn_id} is a {entry.kind} entry; only a decision can be reviewed")
    output = manifest_store(settings).load(entry.manifest_id).schema.output
    logged = entry.outputs.get(output.decision)
    stands = logged if decision is None else _typed(decision, logged, output)
    if outcome == "overturned" and stands == logged:
        raise BadInput(
            f"an overturned decision needs the decision that stands now, another than {logged!r}"
        )
    if outcome == "upheld" and stands != logged:
        raise BadInput(
            f"an upheld decision stays {logged!r}; a review that changes it is overturned"
        )
    recorded = ledger.record(
        NewEntry(
            manifest_id=entry.manifest_id,
            deployment=entry.deployment,
            kind="review",
            refers_to=entry.txn_id,
            subject=entry.subject,  # sealed, exported and erased with the decision
            inputs={},
            outputs={
                "outcome": outcome,
                "decision": stands,
                "note": note,
                "by": by or settings.user,
            },
        )
    )
    return Review.from_entry(recorded)


def _typed(text: str, logged: Any, output: OutputSpec) -> Any:
    """A decision value written as text, in the type (and among the values) the output
    schema declares for the decision; undeclared, only text is taken."""
    if output.decision in output.fields:
        return output.fields[output.decision].parse(text)
    if not isinstance(logged, str):
        raise BadInput(f"the output schema does not declare {output.decision!r}: cannot type it")
    return text
