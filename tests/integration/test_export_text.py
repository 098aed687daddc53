"""Free text leaves the ledger whole: `replay ledger export` of the fraud screen's
payments gives every descriptor back as logged (a newline, accents, an empty one, one of
5,000 characters), in Parquet and CSV; only tables and pages shorten it."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("form", ["parquet", "csv"])
def test_every_descriptor_comes_back_whole(fraud_decided, tmp_path, form):
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    import replay

    entries = sorted((e for found in fraud_decided.values() for e in found), key=lambda e: e.seq)
    out = tmp_path / f"payments.{form}"
    replay.export_ledger(out, format=form, deployment="fraud-screen")
    if form == "parquet":
        table = pq.read_table(out)
        assert table.schema.field("inputs.descriptor").type == pa.string()
    else:  # an empty text and a missing one both read as empty from CSV
        types = {"inputs.descriptor": pa.string()}
        options = pa_csv.ConvertOptions(column_types=types, strings_can_be_null=False)
        table = pa_csv.read_csv(out, convert_options=options)
    ids, texts = table["txn_id"].to_pylist(), table["inputs.descriptor"].to_pylist()
    exported = dict(zip(ids, texts, strict=True))
    logged = {e.txn_id: e.inputs["descriptor"] for e in entries}
    assert {txn: exported[txn] for txn in logged} == logged
    kept = set(logged.values())
    assert {"SHELL 0423\nHAMBURG", "BÄCKEREI ŠKODA — ZÜRICH ☕", ""} <= kept
    assert max(map(len, kept)) == 5000
