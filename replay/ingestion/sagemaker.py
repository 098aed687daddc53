"""SageMaker Data Capture files: JSON lines written under
`ENDPOINT/VARIANT/yyyy/mm/dd/hh/`, each one request and its response:

    {"captureData": {"endpointInput": {"observedContentType": "text/csv", "mode": "INPUT",
                                       "data": "41000,12000,35,salaried", "encoding": "CSV"},
                     "endpointOutput": {"observedContentType": "text/csv", "mode": "OUTPUT",
                                        "data": "0.27", "encoding": "CSV"}},
     "eventMetadata": {"eventId": "a1b2...", "inferenceTime": "2026-03-01T09:30:00Z"},
     "eventVersion": "0"}

A payload is CSV or JSON (`encoding` CSV, JSON, or BASE64 of either, told apart by the
content type). A request of several rows is several decisions, `EVENTID/0`, `/1`, ...
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from replay.errors import BadInput
from replay.ingestion.events import Event, Made, Unreadable, parse_time, read_json
from replay.ingestion.tables import csv_outputs, csv_rows, json_outputs, json_rows
from replay.manifests.canonical import sha256_bytes
from replay.manifests.manifest import Manifest

SOURCE = "sagemaker"


def record_events(
    line: bytes,
    where: str,
    deployment: str,
    manifest: Manifest,
    columns: list[str] | None = None,
) -> list[Event]:
    """The decisions of one captured request and response, or why there are none."""
    event_id = sha256_bytes(line)
    try:
        record = read_json(line)
        if not isinstance(record, Mapping):
            raise BadInput("a capture record must be a JSON object")
        metadata = record.get("eventMetadata")
        if not isinstance(metadata, Mapping) or not isinstance(metadata.get("eventId"), str):
            raise BadInput("the record has no eventMetadata.eventId")
        event_id = metadata["eventId"]
        data = record.get("captureData")
        if not isinstance(data, Mapping):
            raise BadInput("the record has no captureData")
        if not isinstance(data.get("endpointOutput"), Mapping):
            raise BadInput("the record has no endpointOutput: a request without its response")
        rows = _payload(data.get("endpointInput"), "endpointInput", manifest, columns)
        outputs = _payload(data["endpointOutput"], "endpointOutput", manifest, None)
        if len(rows) != len(outputs):
            raise BadInput(f"{len(rows)} input rows but {len(outputs)} outputs")
        moment = parse_time(metadata.get("inferenceTime"))
    except (BadInput, ValueError) as problem:
        return [Unreadable(SOURCE, str(event_id), deployment, f"{where}: {problem}", line)]
    return [
        Made(
            source=SOURCE,
            source_id=event_id if len(rows) == 1 else f"{event_id}/{index}",
            deployment=deployment,
            time=moment,
            inputs=row,
            outputs=row_outputs,
            payload=line,
        )
        for index, (row, row_outputs) in enumerate(zip(rows, outputs, strict=True))
    ]


def _payload(
    part: Any, name: str, manifest: Manifest, columns: list[str] | None
) -> list[dict[str, Any]]:
    """A captured payload's rows (`endpointInput`) or outputs, decoded as its encoding
    says."""
    inputs = name == "endpointInput"
    if not isinstance(part, Mapping) or not isinstance(part.get("data"), str):
        raise BadInput(f"{name} has no data")
    encoding = str(part.get("encoding", "")).upper()
    kind = str(part.get("observedContentType", "")).lower()
    text = part["data"]
    if encoding == "BASE64":
        try:
            text = base64.b64decode(text, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise BadInput(f"{name}: its BASE64 data does not decode to UTF-8 text") from None
        encoding = "JSON" if "json" in kind else "CSV" if "csv" in kind else ""
    if encoding == "CSV":
        return csv_rows(text, manifest, columns) if inputs else csv_outputs(text, manifest)
    if encoding == "JSON":
        try:
            data = read_json(text)
        except BadInput as problem:
            raise BadInput(f"{name}: its JSON data does not parse: {problem}") from None
        return json_rows(data, manifest) if inputs else json_outputs(data, manifest)
    raise BadInput(f"{name}: encoding {part.get('encoding')!r} of {kind or 'no content type'}")
