"""`replay audit`'s pure parts: which decisions it selects (ingested ones, of a source)
and how it counts verdicts, fields and time windows as results come back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from replay.execution.reexecution import FieldDifference, ReplayResult
from replay.history.audit import EXAMPLES, HOURS, AuditTally
from replay.history.report import render_audit
from replay.ledger import LocalSubjectKeys, SQLiteLedger
from tests.factories import ledger_decision


@pytest.fixture
def ledger(tmp_path):
    return SQLiteLedger(
        tmp_path / "ledger.db", keys=LocalSubjectKeys(tmp_path / "keys" / "subjects.db")
    )


START = datetime(2026, 6, 1, 9, 30, tzinfo=UTC)


def ingested(ledger, count: int, source: str | None, *, hours: float = 1, first: int = 0):
    """`count` decisions, `hours` apart, from `source` (None: made by replay serve)."""
    return ledger.append(
        [
            ledger_decision(
                first + i,
                time=START + timedelta(hours=hours * i),
                source=source,
                source_id=None if source is None else f"{source}-{first + i}",
            )
            for i in range(count)
        ]
    )


def result(entry, verdict: str, *differences: FieldDifference) -> ReplayResult:
    return ReplayResult(
        txn_id=entry.txn_id,
        manifest_id=entry.manifest_id,
        verdict=verdict,
        recovery="local",
        logged=entry.outputs,
        replayed=None if verdict == "failed" else entry.outputs,
        differences=list(differences),
        error="the runner exited" if verdict == "failed" else None,
    )


def test_the_audit_selects_ingested_decisions_or_one_source(ledger):
    ingested(ledger, 2, None)
    ingested(ledger, 3, "kserve", first=10)
    ingested(ledger, 1, "sagemaker", first=20)
    assert ledger.count(ingested=True) == 4
    assert [e.seed for e in ledger.list(ingested=True)] == [10, 11, 12, 20]
    assert [e.seed for e in ledger.list(source="sagemaker")] == [20]
    assert ledger.count() == 6  # replay --all still sees every decision


def test_verdicts_fields_and_sources_are_counted_with_the_largest_difference(ledger):
    entries = ingested(ledger, 3, "kserve") + ingested(ledger, 2, "file", first=10)
    tally = AuditTally()
    tally.add(entries[0], result(entries[0], "reproduced"))
    tally.add(
        entries[1],
        result(entries[1], "diverged", FieldDifference("score", 0.25, 0.5, 0.25, 10)),
    )
    tally.add(
        entries[2],
        result(
            entries[2],
            "diverged",
            FieldDifference("score", 0.5, 0.25, 0.25, 40),
            FieldDifference("decision", "approved", "rejected"),
        ),
    )
    tally.add(entries[3], result(entries[3], "failed"))
    tally.add(entries[4], result(entries[4], "reproduced"))
    summary = tally.to_dict()
    assert summary["counts"] == {"reproduced": 2, "diverged": 2, "failed": 1}
    assert summary["agreement"] == pytest.approx(0.4)
    assert summary["by_source"] == {
        "file": {"reproduced": 1, "diverged": 0, "failed": 1},
        "kserve": {"reproduced": 1, "diverged": 2, "failed": 0},
    }
    assert summary["fields"] == {
        "score": {"diverged": 2, "max_absolute": 0.25, "max_ulps": 40},
        "decision": {"diverged": 1, "max_absolute": None, "max_ulps": None},
    }
    assert [e["txn_id"] for e in summary["examples"]] == [entries[1].txn_id, entries[2].txn_id]
    assert summary["failure"] == f"{entries[3].txn_id}: the runner exited"


def test_windows_are_hours_then_days_and_examples_are_bounded(ledger):
    few = ingested(ledger, 3, "file", hours=1)
    tally = AuditTally()
    for entry in few:
        tally.add(entry, result(entry, "reproduced"))
    assert [w["window"] for w in tally.windows()] == [
        "2026-06-01T09", "2026-06-01T10", "2026-06-01T11"
    ]  # fmt: skip
    many = ingested(ledger, HOURS + 1, "kserve", hours=1, first=100)
    for entry in many:
        tally.add(entry, result(entry, "diverged", FieldDifference("score", 0.1, 0.2, 0.1, 1)))
    windows = tally.windows()
    assert [w["window"] for w in windows] == ["2026-06-01", "2026-06-02", "2026-06-03"]
    assert sum(w["reproduced"] + w["diverged"] for w in windows) == 3 + HOURS + 1
    assert windows[0] == {"window": "2026-06-01", "reproduced": 3, "diverged": 15, "failed": 0}
    assert len(tally.to_dict()["examples"]) == EXAMPLES


def test_the_summary_page_names_the_diverged_field_and_draws_the_windows(ledger, tmp_path):
    from types import SimpleNamespace

    from replay.history.audit import Audit

    (entry,) = ingested(ledger, 1, "sagemaker")
    tally = AuditTally()
    tally.add(entry, result(entry, "diverged", FieldDifference("score", 0.125, 0.5, 0.375, 7)))
    audit = Audit("credit", {"source": "sagemaker"}, [entry.manifest_id], tally.to_dict(), 1)
    page = render_audit(audit, SimpleNamespace(name="credit"))
    assert "<svg" in page and "ingested from sagemaker" in page
    assert "<td>score</td><td>1</td><td>0.375</td>" in page
    assert entry.txn_id in page
