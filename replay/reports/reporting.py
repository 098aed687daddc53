"""`replay report`: the decision report a compliance officer sends a person (or a
regulator), made from the ledger, the manifest and the original container re-executed
now. Making one is itself a ledger entry (kind `report`: which decision, who, the sha256
of each file)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from replay.errors import BadInput
from replay.execution.reexecution import replay
from replay.execution.warm import WarmDeployment, warm_for
from replay.ledger import open_ledger
from replay.ledger.chain import LedgerEntry, NewEntry, pseudonym
from replay.ledger.decisions import subject_key, verify_ledger
from replay.ledger.subjects import keep_sealed
from replay.manifests.canonical import sha256_bytes
from replay.questions.counterfactuals import CounterfactualSet, counterfactual
from replay.questions.explanations import explain
from replay.reports.content import Organisation, ReportContent, gather
from replay.reports.rendering import render_html, render_pdf
from replay.settings import Settings, load_settings
from replay.stores.keys import write_once

FORMATS = ("html", "pdf")


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
) -> DecisionReport:
    """Make the report of decision `txn_id` as `report-<txn>.html` and/or `.pdf` in
    `out` (created private: they hold a person's data). A decision whose re-execution
    diverges or fails still gets its report, which says so at the top."""
    settings = settings or load_settings()
    unknown = set(formats) - set(FORMATS)
    if unknown or not formats:
        raise BadInput(f"report formats are {', '.join(FORMATS)}, not {', '.join(unknown)}")
    ledger = open_ledger(settings)
    entry = ledger.get(txn_id).readable()  # erased: exit 5, before a container starts
    if entry.kind != "decision":
        raise BadInput(f"{txn_id} is a {entry.kind} entry; a report is made of a decision")
    if not out.is_dir():
        raise BadInput(f"{out} is not a folder to write the report in")
    targets = {kind: out / f"report-{txn_id}.{kind}" for kind in formats}
    for path in targets.values():
        if path.exists():
            raise BadInput(f"{path} exists; name another folder with --out")
    content = _content(txn_id, entry, warm, settings)
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
    decisions = open_ledger(settings).list(subject=person, kind="decision")
    if not decisions:
        raise BadInput(f"no decisions about subject {subject!r} in the ledger")
    return [
        report(entry.txn_id, out=out, formats=formats, settings=settings) for entry in decisions
    ]


def _content(
    txn_id: str, entry: LedgerEntry, warm: WarmDeployment | None, settings: Settings
) -> ReportContent:
    with warm_for(entry.manifest_id, warm, settings) as running:
        replayed = replay(txn_id, warm=running, settings=settings)
        explanation = explain(txn_id, warm=running, settings=settings)
        options: CounterfactualSet | None = None
        no_options = None
        try:
            options = counterfactual(txn_id, n=3, warm=running, settings=settings)
            no_options = options.none_found
        except BadInput as none:  # nothing to reach (already favourable), nothing to change
            no_options = str(none)
        manifest, fingerprint = running.manifest, running.fingerprint_id
    reviews = open_ledger(settings).list(kind="review", refers_to=txn_id)
    return gather(
        entry,
        reviews,
        manifest,
        fingerprint,
        replayed,
        explanation,
        options,
        no_options,
        verify_ledger(settings=settings),
        Organisation.load(settings.report_organisation),
    )
