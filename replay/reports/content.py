"""What a decision report says, gathered from the ledger, the manifest and the original
container re-executed now, as data (`--json` prints it as is): a letter to the person in
seven sections (inputs by their titles, values rounded, no protected attribute among the
reasons), then a section for the compliance reviewer and the evidence, exact."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from replay.errors import BadInput, Erased
from replay.execution.reexecution import ReplayResult
from replay.ledger.chain import LedgerEntry, LedgerVerification
from replay.ledger.reviews import Review
from replay.manifests.manifest import Manifest
from replay.manifests.schema import Feature
from replay.questions.counterfactuals import CounterfactualSet
from replay.questions.explanations import Explanation
from replay.reports import wording

ORGANISATION_FIELDS = ("name", "address", "contact", "supervisory_authority")


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
class Shown:
    """A logged value as the letter shows it and as the evidence keeps it."""

    name: str
    title: str  # the feature's label, else its description, else its name
    value: str  # for reading: rounded, with its unit; text on one short line
    exact: str  # as logged (JSON): every digit, the whole text


@dataclass(frozen=True)
class Answers:
    """What the original container said while the report was made."""

    replayed: ReplayResult
    explanation: Explanation
    options: CounterfactualSet | None
    unsearched: str | None  # why no counterfactual was searched (nothing may change)
    model: list[dict[str, Any]]  # the model objects it holds (`describe_model`)
    fingerprint: str


@dataclass(frozen=True)
class ReportContent:
    # 1. the decision
    txn_id: str
    decided_at: str
    deployment: str
    version: str
    decision: Any
    score: str | None  # two decimals; the exact score is among `outputs`
    score_title: str
    reviews: list[str]  # "reviewed by a person on DATE: ..." lines
    # 2. who decided
    organisation: Organisation
    # 3. reasons, for the person: never an immutable (protected) input
    given: list[Shown]  # the deployment's own reason text, quoted
    reasons: list[str]
    decided_by: str | None  # a draw or a rule, in words, when no input decided
    chart: list[dict[str, Any]]  # the inputs that moved the decision, by title
    # 4. the personal data used
    inputs: list[Shown]
    # 5. how it was decided
    model: str
    favourable: Any
    automated: bool
    # 6. what would have changed it
    options: list[str]
    kept_as_written: list[str]  # the texts no option changes, by title
    no_options: str | None  # why there are none, when there are none
    # 8. for the compliance reviewer
    immutable: list[str]  # every immutable input, by name
    flagged: list[str]  # immutable inputs that contributed, as `replay explain` says
    summary: str
    method: str
    contributions: list[dict[str, Any]]  # exact, every input
    described: list[dict[str, Any]]  # the model objects, as the container described them
    # 9. evidence
    outputs: dict[str, str]  # each output field as logged (JSON)
    evidence: dict[str, Any]
    replay: dict[str, Any]  # verdict, differences, error, recovery, seed
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
    answers: Answers,
    verification: LedgerVerification,
    organisation: Organisation,
) -> ReportContent:
    """The report's sections from what the ledger, the manifest and the container said."""
    schema = manifest.schema
    output = schema.output
    explanation, options, replayed = answers.explanation, answers.options, answers.replayed
    said = []
    for review in reviews:
        try:
            said.append(Review.from_entry(review).summary)
        except Erased:  # a review is erased with its decision
            continue
    features = schema.inputs
    moved = [c for c in explanation.contributions if not c.immutable and not c.negligible]
    found = options.options if options else []
    kept = [features[name].title for name in options.kept_as_written] if options else []
    no_options = answers.unsearched
    if options is not None and not found:
        no_options = wording.no_option(features, options)
    return ReportContent(
        txn_id=entry.txn_id,
        decided_at=entry.time,
        deployment=manifest.name,
        version=manifest.version,
        decision=entry.outputs.get(output.decision),
        score=wording.score_text(entry.outputs.get(output.score)),
        score_title=output.fields[output.score].title,
        reviews=said,
        organisation=organisation,
        given=[  # quoted whole: the deployment's own words
            Shown(name, feature.title, entry.outputs[name], wording.exact(entry.outputs[name]))
            for name, feature in output.fields.items()
            if name not in (output.decision, output.score)
            and feature.type in ("string", "text")
            and isinstance(entry.outputs.get(name), str)
        ],
        reasons=[
            wording.reason(features[c.feature], c, output.favourable) for c in explanation.main
        ],
        decided_by=wording.not_the_inputs(explanation),
        chart=[{"feature": features[c.feature].title, "decision": c.decision} for c in moved],
        inputs=[_shown(feature, entry.inputs[name]) for name, feature in features.items()],
        model=wording.model_sentence(answers.model, manifest),
        favourable=output.favourable,
        automated=not said,
        options=[wording.option(features, option, output.decision) for option in found],
        kept_as_written=kept if found else [],
        no_options=no_options,
        immutable=[feature.name for feature in features.values() if feature.immutable],
        flagged=explanation.protected,
        summary=explanation.summary,
        method=explanation.method,
        contributions=[asdict(item) for item in explanation.contributions],
        described=answers.model,
        outputs={name: wording.exact(value) for name, value in entry.outputs.items()},
        evidence={
            "manifest_id": manifest.manifest_id,
            # a model from a registry has no commit: its URI and version say what it is
            "code_commit": manifest.code.commit or _model_origin(manifest),
            "model_files": {model.path: model.sha256 for model in manifest.model_files},
            "base_image": manifest.image.base,
            "image_fingerprint": answers.fingerprint,
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
            "seed": replayed.seed,
        },
    )


def _shown(feature: Feature, value: Any) -> Shown:
    return Shown(
        feature.name, feature.title, wording.readable(feature, value), wording.exact(value)
    )


def _model_origin(manifest: Manifest) -> str:
    source = manifest.model_source
    if source is None:
        return "(none recorded)"
    version = f" version {source.version}" if source.version else ""
    run = f", run {source.run_id}" if source.run_id else ""
    return f"MLflow model {source.uri}{version}{run}"
