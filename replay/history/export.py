"""`replay ledger export`: the logged decisions as a Parquet or CSV file that pandas,
Dask or DuckDB read directly.

The ledger is read in chunks and each chunk written as it comes (pyarrow), so memory
stays bounded whatever the ledger's size. Inputs and declared outputs are typed columns
(`inputs.income`, `outputs.score`), their types from the manifests' schemas; outputs a
schema does not declare go to `outputs.other` as JSON. Subjects appear only as the
ledger's pseudonyms; an erased person's decisions keep their row, with no inputs or
outputs and the day of the erasure. The file is written private (0600) and appears
whole or not at all.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from replay.errors import BadInput
from replay.ledger import open_ledger
from replay.ledger.chain import LedgerEntry, NewEntry
from replay.manifests.schema import Feature
from replay.settings import Settings, load_settings
from replay.stores.manifests import manifest_store

if TYPE_CHECKING:
    import pyarrow as pa

FORMATS = ("parquet", "csv")
EXPORT_ROWS = 10_000  # decisions read and written at a time
FIXED = ("seq", "txn_id", "time", "deployment", "manifest_id", "subject", "seed", "hash")


@dataclass(frozen=True)
class LedgerExport:
    path: str
    format: str
    decisions: int
    erased: int  # decisions whose subject's data was erased: rows without inputs
    columns: list[str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def arrow_type(feature: Feature) -> pa.DataType:
    import pyarrow as pa

    return {
        "number": pa.float64(),
        "integer": pa.int64(),
        "boolean": pa.bool_(),
        "string": pa.string(),
        "text": pa.string(),  # the whole text, as logged: only displays shorten it
    }[feature.type]


def _schema(manifest_ids: list[str], settings: Settings) -> pa.Schema:
    """Fixed columns, then every input and declared output of the manifests, typed."""
    import pyarrow as pa

    store = manifest_store(settings)
    typed: dict[str, pa.DataType] = {}
    for manifest_id in manifest_ids:
        schema = store.load(manifest_id).schema
        named = [(f"inputs.{n}", f) for n, f in schema.inputs.items()]
        named += [(f"outputs.{n}", f) for n, f in schema.output.fields.items()]
        for column, feature in named:
            kind = arrow_type(feature)
            if typed.setdefault(column, kind) != kind:
                raise BadInput(
                    f"{column} is {typed[column]} in one deployment and {kind} in another: "
                    "export one deployment at a time"
                )
    inputs = sorted(c for c in typed if c.startswith("inputs."))
    outputs = sorted(c for c in typed if c.startswith("outputs."))
    return pa.schema(
        [
            pa.field("seq", pa.int64()),
            pa.field("txn_id", pa.string()),
            pa.field("time", pa.timestamp("us", tz="UTC")),
            pa.field("deployment", pa.string()),
            pa.field("manifest_id", pa.string()),
            pa.field("subject", pa.string()),  # the ledger's pseudonym, never the identifier
            pa.field("seed", pa.int64()),
            pa.field("hash", pa.string()),
            pa.field("erased_on", pa.string()),
            *(pa.field(column, typed[column]) for column in inputs + outputs),
            pa.field("outputs.other", pa.string()),
        ]
    )


def _columns(entries: list[LedgerEntry], schema: pa.Schema) -> dict[str, list[Any]]:
    data: dict[str, list[Any]] = {name: [] for name in schema.names}
    declared = {name.removeprefix("outputs.") for name in schema.names if name[:8] == "outputs."}
    for entry in entries:
        for name in FIXED:
            data[name].append(getattr(entry, name))
        data["time"][-1] = datetime.fromisoformat(entry.time)
        erased_on = entry.erased_on
        data["erased_on"].append(erased_on[:10] if erased_on else None)
        inputs, outputs = ({}, {}) if erased_on else (entry.inputs, entry.outputs)
        for name in schema.names:
            if name.startswith("inputs."):
                data[name].append(inputs.get(name[7:]))
            elif name.startswith("outputs.") and name != "outputs.other":
                data[name].append(outputs.get(name[8:]))
        other = {k: v for k, v in outputs.items() if k not in declared}
        data["outputs.other"].append(json.dumps(other, sort_keys=True) if other else None)
    return data


def export_ledger(
    out: Path,
    *,
    format: str = "parquet",
    deployment: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    settings: Settings | None = None,
) -> LedgerExport:
    """Write the selected decisions to `out` (a new file), oldest first."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    settings = settings or load_settings()
    if format not in FORMATS:
        raise BadInput(f"an export is {' or '.join(FORMATS)}, not {format!r}")
    if out.exists():
        raise BadInput(f"{out} exists; name a new file")
    if not out.parent.is_dir():
        raise BadInput(f"{out.parent} is not a folder to write the export in")
    ledger = open_ledger(settings)
    filters: dict[str, Any] = ledger.selection(
        kind="decision", deployment=deployment, since=since, until=until
    )
    manifest_ids = ledger.manifest_ids(**filters)
    if not manifest_ids:
        raise BadInput("no decisions match: nothing written")
    schema = _schema(manifest_ids, settings)
    partial = out.with_name(f".{out.name}.{os.getpid()}.partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    decisions = erased = 0
    try:
        with os.fdopen(descriptor, "wb") as sink:
            writer: Any = (
                pq.ParquetWriter(sink, schema)
                if format == "parquet"
                else pa_csv.CSVWriter(sink, schema)
            )
            with writer:
                for chunk in ledger.chunks(EXPORT_ROWS, **filters):
                    writer.write_table(pa.Table.from_pydict(_columns(chunk, schema), schema))
                    decisions += len(chunk)
                    erased += sum(entry.erased_on is not None for entry in chunk)
            sink.flush()
            os.fsync(sink.fileno())
        os.replace(partial, out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    # Reading people's data in bulk is recorded once, with what was selected.
    ledger.record(
        NewEntry(
            manifest_id="",
            deployment=deployment or "",
            kind="access",
            inputs={},
            outputs={
                "action": "export",
                "by": settings.user,
                "decisions": decisions,
                "since": since.isoformat() if since else None,
                "until": until.isoformat() if until else None,
                "file": out.name,
            },
        )
    )
    return LedgerExport(str(out), format, decisions, erased, schema.names)
