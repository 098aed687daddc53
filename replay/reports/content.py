"""What a decision report says, gathered from the ledger, the manifest and the original
container re-executed now: the eight sections, as data (`--json` prints it as is)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from replay.errors import BadInput, Erased
from replay.execution.inputs import format_value
from replay.execution.reexecution import ReplayResult
from replay.ledger.chain import LedgerEntry, LedgerVerification
from replay.ledger.reviews import Review
from replay.manifests.manifest import Manifest
from replay.questions.counterfactuals import CounterfactualSet
from replay.questions.explanations import Explanation

ORGANISATION_FIELDS = ("name", "address", "contact", "supervisory_authority")
# Libraries that say what kind of model a deployment runs, most telling first.
MODEL_LIBRARIES = (
    "scikit-learn",
    "xgboost",
    "lightgbm",
    "catboost",
    "torch",
    "tensorflow",
    "statsmodels",
)


@dataclass(frozen=True)
class Organisation:
    """Who decided and whom to contact (`report.yaml`); unset fields stay None."""

    name: str | None = None
    address: str | None = None
    contact: str | None = None
    supervisory_authority: str | None = None

    @classmethod
    def load(cls, path: Path) -> Organisation:
        if not path.exists():
            return cls()
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as error:
            raise BadInput(f"{path}: not YAML: {str(error).splitlines()[0]}") from None
        if not isinstance(document, dict) or set(document) - set(ORGANISATION_FIELDS):
            fields = ", ".join(ORGANISATION_FIELDS)
            raise BadInput(f"{path} must be a mapping of {fields}")
        return cls(**{key: str(value) for key, value in document.items() if value is not None})

    @property
    def unset(self) -> list[str]:
        return [name for name in ORGANISATION_FIELDS if getattr(self, name) is None]


@dataclass(frozen=True)
class PersonalInput:
    name: str
    value: str  # as logged, in words
    unit: str | None
    description: str | None


@dataclass(frozen=True)
class ReportContent:
    # 1. the decision
    txn_id: str
    decided_at: str
    deployment: str
    version: str
    decision: Any
    score: Any
    reviews: list[str]  # "reviewed by a person on DATE: ..." lines
    # 2. who decided
    organisation: Organisation
    # 3. reasons
    reasons: list[str]
    protected: list[str]
    summary: str
    method: str
    contributions: list[dict[str, Any]]
    # 4. the personal data used
    inputs: list[PersonalInput]
    # 5. how it was decided
    model: str
    score_field: str
    decision_field: str
    favourable: Any
    automated: bool
    # 6. what would have changed it
    options: list[str]
    no_options: str | None  # why there are none, when there are none
    # 8. evidence
    evidence: dict[str, Any]
    replay: dict[str, Any]  # verdict, differences, error, at
    made_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def reproduced(self) -> bool:
        return self.replay["verdict"] == "reproduced"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "reproduced": self.reproduced}


def gather(
    entry: LedgerEntry,
    reviews: list[LedgerEntry],
    manifest: Manifest,
    fingerprint: str,
    replayed: ReplayResult,
    explanation: Explanation,
    options: CounterfactualSet | None,
    no_options: str | None,
    verification: LedgerVerification,
    organisation: Organisation,
) -> ReportContent:
    """The report's sections from what the ledger, the manifest and the container said."""
    schema = manifest.schema
    output = schema.output
    said = []
    for review in reviews:
        try:
            said.append(Review.from_entry(review).summary)
        except Erased:  # a review is erased with its decision
            continue
    return ReportContent(
        txn_id=entry.txn_id,
        decided_at=entry.time,
        deployment=manifest.name,
        version=manifest.version,
        decision=entry.outputs.get(output.decision),
        score=entry.outputs.get(output.score),
        reviews=said,
        organisation=organisation,
        reasons=explanation.reasons,
        protected=explanation.protected,
        summary=explanation.summary,
        method=explanation.method,
        contributions=[asdict(item) for item in explanation.contributions],
        inputs=[
            PersonalInput(
                name,
                format_value(entry.inputs[name]),
                feature.unit,
                feature.description,
            )
            for name, feature in schema.inputs.items()
        ],
        model=_model_kind(manifest),
        score_field=output.score,
        decision_field=output.decision,
        favourable=output.favourable,
        automated=not said,
        options=[option.description for option in options.options] if options else [],
        no_options=no_options,
        evidence={
            "manifest_id": manifest.manifest_id,
            "code_commit": manifest.code.commit,
            "model_files": {model.path: model.sha256 for model in manifest.model_files},
            "base_image": manifest.image.base,
            "image_fingerprint": fingerprint,
            "entry_hash": entry.hash,
            "entry_seq": entry.seq,
            "chain": {
                "ok": verification.ok,
                "entries": verification.entries,
                "checkpoints": verification.checkpoints,
                "first_bad": verification.first_bad,
                "reason": verification.reason,
            },
        },
        replay={
            "verdict": replayed.verdict,
            "differences": [asdict(item) for item in replayed.differences],
            "error": replayed.error,
            "recovery": replayed.recovery,
            "record_txn": replayed.record_txn,
        },
    )


def _model_kind(manifest: Manifest) -> str:
    """What kind of model, in words: its files and the library that runs it."""
    files = ", ".join(Path(model.path).name for model in manifest.model_files) or "no model file"
    wheels = {
        wheel.name.lower().replace("_", "-"): wheel.version for wheel in manifest.environment.wheels
    }
    library = next((name for name in MODEL_LIBRARIES if name in wheels), None)
    runs = f" with {library} {wheels[library]}" if library else ""
    return f"a statistical model ({files}) run by the deployment's code{runs}"
