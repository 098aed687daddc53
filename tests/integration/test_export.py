"""`replay ledger export`: every decision back from Parquet and CSV, in order, inputs and
outputs as typed columns of two unlike deployments (credit: numbers; claims: categories,
a boolean, null scores), subjects as pseudonyms only, an erased person's rows without
their data, and refusals that write nothing."""

from __future__ import annotations

import json
import math
import stat

import pytest

from tests.integration.conftest import run_cli

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def decisions(served, claims_decided):
    from replay.ledger import open_ledger
    from replay.settings import load_settings

    return open_ledger(load_settings()).list(kind="decision")


def same(exported, logged) -> bool:
    if logged is None or exported is None:
        return logged is None and exported is None
    if isinstance(logged, float):
        return math.isclose(exported, logged, rel_tol=0, abs_tol=0)
    return exported == logged


@pytest.mark.parametrize("form", ["parquet", "csv"])
def test_every_decision_comes_back_in_order_with_typed_columns(decisions, tmp_path, form):
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    out = tmp_path / f"history.{form}"
    made = run_cli("ledger", "export", str(out), "--format", form, "--json")
    assert made.returncode == 0, made.stderr
    summary = json.loads(made.stdout)
    assert summary["decisions"] == len(decisions)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600  # people's data
    if form == "parquet":
        table = pq.read_table(out)
        assert str(table.schema.field("inputs.claim_amount").type) == "double"
        assert str(table.schema.field("inputs.police_report").type) == "bool"
        assert str(table.schema.field("inputs.age").type) == "int64"
    else:
        # CSV has no null but an empty field: read it back as null
        table = pa_csv.read_csv(
            out, convert_options=pa_csv.ConvertOptions(strings_can_be_null=True)
        )
    rows = table.to_pylist()
    assert [row["txn_id"] for row in rows] == [e.txn_id for e in decisions]
    assert [row["seq"] for row in rows] == sorted(row["seq"] for row in rows)
    for row, entry in zip(rows, decisions, strict=True):
        assert row["manifest_id"] == entry.manifest_id and row["hash"] == entry.hash
        assert row["subject"] == entry.subject  # the pseudonym, or none
        for name, value in entry.inputs.items():
            if form == "csv" and value == "":
                value = None  # an empty text is the same empty field as a null in CSV
            assert same(row[f"inputs.{name}"], value), (name, row[f"inputs.{name}"], value)
        declared = {c[8:] for c in row if c.startswith("outputs.") and c != "outputs.other"}
        for name, value in entry.outputs.items():
            if name in declared:
                assert same(row[f"outputs.{name}"], value), name
        other = {k: v for k, v in entry.outputs.items() if k not in declared}
        assert (json.loads(row["outputs.other"]) if row["outputs.other"] else {}) == other
    referred = [r for r in rows if r["outputs.decision"] == "refer"]
    assert referred and all(r["outputs.score"] is None for r in referred)
    assert not any(str(row.get("subject", "")).startswith("applicant-") for row in rows)


def test_an_erased_persons_rows_keep_their_place_without_their_data(claims_decided, tmp_path):
    import pyarrow.parquet as pq

    import replay
    from replay.ledger.decisions import record_decision

    logged = claims_decided["deny"][0]
    kept = [
        record_decision(
            logged.manifest_id, logged.inputs, logged.outputs, seed=logged.seed, subject=who
        )
        for who in ("claimant-erased", "claimant-kept")
    ]
    erased = replay.erase_subject("claimant-erased")
    out = tmp_path / "after-erasure.parquet"
    made = replay.export_ledger(out, deployment=logged.deployment)
    assert made.erased == 1
    rows = {r["txn_id"]: r for r in pq.read_table(out).to_pylist()}
    gone, there = rows[kept[0].txn_id], rows[kept[1].txn_id]
    assert gone["subject"] == erased.subject and gone["erased_on"] == erased.erased_on[:10]
    assert gone["inputs.claim_amount"] is None and gone["outputs.decision"] is None
    assert there["inputs.claim_amount"] == logged.inputs["claim_amount"]


def test_refusals_write_nothing(decisions, tmp_path):
    from replay.ledger import open_ledger
    from replay.settings import load_settings

    ledger = open_ledger(load_settings())
    before = ledger.count(kind=None)
    taken = tmp_path / "taken.parquet"
    taken.write_bytes(b"mine")
    for arguments, says in (
        ([str(taken)], "exists; name a new file"),
        ([str(tmp_path / "a.csv"), "--deployment", "nobody"], "no decisions match"),
        ([str(tmp_path / "none" / "a.csv")], "is not a folder"),
        ([str(tmp_path / "b.csv"), "--format", "xlsx"], "xlsx"),
    ):
        refused = run_cli("ledger", "export", *arguments)
        assert refused.returncode == 2 and says in refused.stderr, refused.stderr
    assert taken.read_bytes() == b"mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken.parquet"]
    assert ledger.count(kind=None) == before
