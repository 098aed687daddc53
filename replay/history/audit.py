"""`replay audit`: does what production decided equal what was frozen and validated?

The decisions ingested from another serving stack (all of them, or those of one
`source`) are re-executed in the containers of the manifests they were logged against,
with their logged inputs and seeds, on Dask as `replay --all` does (`replay_many`), and
compared with what production answered as the results come back (`AuditTally`):
reproduced, diverged (which fields, by how much) or failed, by source and by time window.
Out come a self-contained HTML summary with a plot, an MLflow run beside the
deployment's manifests, and one `audit` ledger entry naming the files' sha256; the
decisions' own replays are not written one by one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from replay.errors import BadInput
from replay.execution.reexecution import DIVERGED, FAILED, REPRODUCED, ReplayResult
from replay.history.batch_replay import replay_many
from replay.ledger import open_ledger
from replay.ledger.chain import LedgerEntry, NewEntry
from replay.manifests.canonical import sha256_bytes
from replay.settings import Settings, load_settings
from replay.stores.keys import write_once
from replay.stores.manifests import manifest_store

VERDICTS = (REPRODUCED, DIVERGED, FAILED)
EXAMPLES = 20  # diverged decisions shown whole in the summary
HOURS = 48  # time windows are hours up to this many of them, else days


class AuditTally:
    """Verdicts counted as results come back, in memory bounded by the number of
    sources, hours and output fields, never by the number of decisions."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter({verdict: 0 for verdict in VERDICTS})
        self.by_source: dict[str, Counter[str]] = {}
        self.by_hour: dict[str, Counter[str]] = {}
        self.fields: dict[str, dict[str, Any]] = {}
        self.examples: list[dict[str, Any]] = []
        self.failure: str | None = None  # the first, in words

    def add(self, entry: LedgerEntry, result: ReplayResult) -> None:
        verdict = result.verdict
        self.counts[verdict] += 1
        self.by_source.setdefault(entry.source or "serve", Counter())[verdict] += 1
        self.by_hour.setdefault(entry.time[:13], Counter())[verdict] += 1
        if verdict == FAILED and self.failure is None:
            self.failure = f"{entry.txn_id}: {result.error}"
        for difference in result.differences:
            seen = self.fields.setdefault(
                difference.field, {"diverged": 0, "max_absolute": None, "max_ulps": None}
            )
            seen["diverged"] += 1
            for key, value in (
                ("max_absolute", difference.absolute),
                ("max_ulps", difference.ulps),
            ):
                if value is not None and (seen[key] is None or value > seen[key]):
                    seen[key] = value
        if verdict == DIVERGED and len(self.examples) < EXAMPLES:
            self.examples.append(
                {
                    "txn_id": entry.txn_id,
                    "time": entry.time,
                    "source": entry.source,
                    "source_id": entry.source_id,
                    "differences": [
                        {"field": d.field, "logged": d.logged, "replayed": d.replayed}
                        for d in result.differences
                    ],
                }
            )

    @property
    def decisions(self) -> int:
        return sum(self.counts.values())

    def windows(self) -> list[dict[str, Any]]:
        """Counts by hour, or by day when the decisions span more than HOURS hours."""
        width = 13 if len(self.by_hour) <= HOURS else 10
        merged: dict[str, Counter[str]] = {}
        for hour, counts in sorted(self.by_hour.items()):
            merged.setdefault(hour[:width], Counter()).update(counts)
        return [
            {"window": window, **{verdict: counts[verdict] for verdict in VERDICTS}}
            for window, counts in merged.items()
        ]

    def to_dict(self) -> dict[str, Any]:
        decisions = self.decisions
        return {
            "decisions": decisions,
            "counts": {verdict: self.counts[verdict] for verdict in VERDICTS},
            "agreement": self.counts[REPRODUCED] / decisions if decisions else None,
            "by_source": {
                source: {verdict: counts[verdict] for verdict in VERDICTS}
                for source, counts in sorted(self.by_source.items())
            },
            "by_window": self.windows(),
            "fields": dict(sorted(self.fields.items(), key=lambda item: -item[1]["diverged"])),
            "examples": self.examples,
            "failure": self.failure,
        }


@dataclass(frozen=True)
class Audit:
    deployment: str
    selection: dict[str, Any]
    manifests: list[str]  # those that made the audited decisions, by first decision
    summary: dict[str, Any]  # AuditTally.to_dict()
    workers: int = 0
    files: dict[str, str] = field(default_factory=dict)  # html
    sha256: dict[str, str] = field(default_factory=dict)
    mlflow_run: str = ""
    record_txn: str = ""

    @property
    def all_reproduced(self) -> bool:
        return self.summary["counts"][REPRODUCED] == self.summary["decisions"]

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "all_reproduced": self.all_reproduced}


def audit(
    deployment: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    source: str | None = None,
    out: Path = Path("."),
    scheduler: str | None = None,
    workers: int | None = None,
    settings: Settings | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Audit:
    """Re-execute the ingested decisions of `deployment` (named) made from `since`
    until `until`, of every source or of `source`, and say how many production decided
    as the frozen deployment does, which fields differ and by how much."""
    from replay.history.report import render_audit

    settings = settings or load_settings()
    if not out.is_dir():
        raise BadInput(f"{out} is not a folder to write the audit in")
    ledger = open_ledger(settings)
    filters = ledger.selection(
        deployment=deployment, since=since, until=until, source=source, ingested=source is None
    )
    manifests = ledger.manifest_ids(**filters)
    if not manifests:
        where = f"from {source}" if source else "ingested"
        raise BadInput(f"no decisions of {deployment} {where} match: nothing to audit")
    tally = AuditTally()
    replayed = replay_many(
        deployment=deployment,
        since=since,
        until=until,
        source=source,
        ingested=source is None,
        record=False,  # one audit entry, not a replay entry per decision
        keep_reproduced=False,
        scheduler=scheduler,
        workers=workers,
        settings=settings,
        progress=progress,
        observe=tally.add,
    )
    selection = {
        "deployment": deployment,
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
        "source": source,
        "through": filters["through"],  # the ledger's last entry when the audit began
    }
    result = Audit(deployment, selection, manifests, tally.to_dict(), replayed.workers)
    store = manifest_store(settings)
    newest = store.load(manifests[-1])
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    html = out / f"audit-{deployment}-{stamp}.html"
    write_once(html, render_audit(result, newest).encode("utf-8"), 0o600)
    try:  # the summary, the MLflow run and the ledger entry, or no file
        digests = {"html": sha256_bytes(html.read_bytes())}
        summary = result.summary
        metrics = {verdict: float(count) for verdict, count in summary["counts"].items()}
        run_id = store.log_run(
            newest.name,
            f"audit {stamp}",
            metrics={"decisions": float(summary["decisions"]), **metrics},
            params={key: str(value) for key, value in selection.items()},
            tags={"replay.kind": "audit"},
            files=[html],
        )
        recorded = ledger.record(
            NewEntry(
                manifest_id=newest.manifest_id,
                deployment=deployment,
                kind="audit",
                inputs=selection,
                outputs={
                    "manifests": manifests,
                    "counts": summary["counts"],
                    "by_source": summary["by_source"],
                    "fields": {name: seen["diverged"] for name, seen in summary["fields"].items()},
                    "sha256": digests,
                    "mlflow_run": run_id,
                    "by": settings.user,
                },
            )
        )
    except BaseException:
        html.unlink(missing_ok=True)
        raise
    return replace(
        result,
        files={"html": str(html)},
        sha256=digests,
        mlflow_run=run_id,
        record_txn=recorded.txn_id,
    )
