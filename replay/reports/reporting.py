"""`replay report`: the decision report a compliance officer sends a person (or a
regulator), made from the ledger, the manifest and the original container re-executed
now. Making one is itself a ledger entry (kind `report`: which decision, who, the sha256
of each file, the re-execution's verdict).

The ledger is opened once: the decision read from it is re-executed, explained and
searched for counterfactuals by the question algorithms with the running container as
their predictor (no question reads the ledger again, nor records an access of its own:
the report entry is the record)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from replay.errors import BadInput
from replay.execution.decision import Decision
from replay.execution.reexecution import replay_batch
from replay.execution.warm import WarmDeployment, warm_for
from replay.ledger import Ledger, open_ledger
from replay.ledger.chain import LedgerEntry, NewEntry, pseudonym
from replay.ledger.decisions import subject_key, verify_ledger
from replay.ledger.subjects import keep_sealed
from replay.manifests.canonical import sha256_bytes
from replay.questions import (
    COUNTERFACTUAL_ROWS,
    EXPLANATION_ROWS,
    counterfactuals_of,
    explanation_of,
)
from replay.questions.counterfactuals import CounterfactualSet
from replay.reports.content import Answers, Organisation, ReportContent, gather
from replay.reports.rendering import render_html, render_pdf
from replay.settings import Settings, load_settings
from replay.stores.keys import write_once

FORMATS = ("html", "pdf")
OPTIONS = 3  # verified changes offered to the person


@dataclass(frozen=True)
class DecisionReport:
    content: ReportContent
    files: dict[str, str] = field(default_factory=dict)  # format: path written
    sha256: dict[str, str] = field(default_factory=dict)  # format: sha256 of the file
    record_txn: str = ""  # the `report` ledger entry

    def to_dict(self) -> dict[str, Any]:
        made = {"files": self.files, "sha256": self.sha256, "record_txn": self.record_txn}
        return {**self.content.to_dict(), **made}


def report(
    txn_id: str,
    *,
    out: Path = Path("."),
    formats: tuple[str, ...] = FORMATS,
    warm: WarmDeployment | None = None,
    settings: Settings | None = None,
    ledger: Ledger | None = None,
) -> DecisionReport:
    """Make the report of decision `txn_id` as `report-<txn>.html` and/or `.pdf` in
    `out` (created private: they hold a person's data), reading `ledger` (else the one
    the settings name). A decision whose re-execution diverges or fails still gets its
    report, which says so at the top."""
    settings = settings or load_settings()
    unknown = set(formats) - set(FORMATS)
    if unknown or not formats:
        raise BadInput(f"report formats are {', '.join(FORMATS)}, not {', '.join(unknown)}")
    ledger = ledger or open_ledger(settings)
    entry = ledger.get(txn_id).readable()  # erased: exit 5, before a container starts
    if entry.kind != "decision":
        raise BadInput(f"{txn_id} is a {entry.kind} entry; a report is made of a decision")
    if not out.is_dir():
        raise BadInput(f"{out} is not a folder to write the report in")
    targets = {kind: out / f"report-{txn_id}.{kind}" for kind in formats}
    for path in targets.values():
        if path.exists():
            raise BadInput(f"{path} exists; a report is never written over another")
    content = _content(entry, ledger, warm, settings)
    html = render_html(content, settings.report_templates)
    data = {"html": html.encode("utf-8")}
    if "pdf" in formats:
        data["pdf"] = render_pdf(html)
    for kind, path in targets.items():
        write_once(path, data[kind], 0o600)
    digests = {kind: sha256_bytes(data[kind]) for kind in formats}
    made: dict[str, Any] = {"by": settings.user, "sha256": digests}
    if entry.subject is not None and "pdf" in data:  # kept for the person's export
        made["sealed_pdf"] = keep_sealed(data["pdf"], entry.subject, txn_id, settings)
    recorded = ledger.record(
        NewEntry(
            manifest_id=entry.manifest_id,
            deployment=entry.deployment,
            kind="report",
            refers_to=txn_id,
            subject=entry.subject,  # found in the person's export; not their data itself
            inputs={},
            outputs={**made, "replay": content.replay["verdict"]},
        )
    )
    written = {kind: str(path) for kind, path in targets.items()}
    return DecisionReport(content, written, digests, recorded.txn_id)


def report_subject(
    subject: str,
    *,
    out: Path = Path("."),
    formats: tuple[str, ...] = FORMATS,
    settings: Settings | None = None,
) -> list[DecisionReport]:
    """One report per decision of a person (named by their identifier), oldest first."""
    settings = settings or load_settings()
    person = pseudonym(subject, subject_key(settings))
    ledger = open_ledger(settings)
    decisions = ledger.list(subject=person, kind="decision")
    if not decisions:
        raise BadInput(f"no decisions about subject {subject!r} in the ledger")
    return [
        report(entry.txn_id, out=out, formats=formats, settings=settings, ledger=ledger)
        for entry in decisions
    ]


def _content(
    entry: LedgerEntry, ledger: Ledger, warm: WarmDeployment | None, settings: Settings
) -> ReportContent:
    with warm_for(entry.manifest_id, warm, settings) as running:
        manifest = running.manifest
        schema = manifest.schema
        decision = Decision.from_entry(entry, manifest)
        [replayed] = replay_batch(running, [entry])  # the entry held, not read again
        reasons = explanation_of(
            schema, decision, running, running.reference_rows(EXPLANATION_ROWS)
        )
        options: CounterfactualSet | None = None
        unsearched = None
        try:
            reference = running.reference_rows(COUNTERFACTUAL_ROWS)
            options = counterfactuals_of(schema, decision, running, reference, OPTIONS)
        except BadInput as why:  # nothing may change, or the deployment refused a variant
            unsearched = str(why)
        answers = Answers(
            replayed, reasons, options, unsearched, running.describe_model(), running.fingerprint_id
        )
    return gather(
        entry,
        ledger.list(kind="review", refers_to=entry.txn_id),
        manifest,
        answers,
        verify_ledger(settings=settings, ledger=ledger),
        Organisation.load(settings.report_organisation),
    )
