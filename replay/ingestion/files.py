"""Where decisions made elsewhere are read from: a file, a folder of files (in name
order) or an `s3://bucket/prefix` (in key order), and the plain formats replay reads,
JSON lines and Parquet, one decision per line or row:

    {"time": "2026-03-01T09:30:00Z", "inputs": {...}, "outputs": {...},
     "subject": "applicant-17", "seed": 7, "id": "order-5512"}

`subject`, `seed` and `id` may be left out; without an `id` a decision's source id is
the hash of its line, so the same file read twice logs nothing new.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from replay.errors import BadInput
from replay.ingestion.events import Event, Made, Unreadable, parse_time, read_json
from replay.manifests.canonical import canonical_json, sha256_bytes

FORMATS = ("jsonl", "parquet", "sagemaker")
RECORD_KEYS = frozenset({"time", "inputs", "outputs", "subject", "seed", "id"})


@dataclass(frozen=True)
class SourceFile:
    """One file to read: its name for messages, and how to get its bytes."""

    name: str
    path: Path | None = None  # a local file
    bucket: str | None = None  # or an S3 object
    key: str | None = None

    def read(self) -> bytes:
        if self.path is not None:
            return self.path.read_bytes()
        from replay.stores.blobs import reaching_s3, s3_client

        with reaching_s3(f"s3://{self.bucket}"):
            body = s3_client().get_object(Bucket=self.bucket, Key=self.key)["Body"]
            data: bytes = body.read()
        return data


def source_files(location: str) -> list[SourceFile]:
    """The files at `location`: a file, every file under a folder (hidden ones left out),
    or every object under an `s3://bucket/prefix`, in name order."""
    if location.startswith("s3://"):
        return _s3_files(location)
    path = Path(location)
    if path.is_file():
        return [SourceFile(str(path), path=path)]
    if path.is_dir():
        found = sorted(
            item
            for item in path.rglob("*")
            if item.is_file() and not any(part.startswith(".") for part in item.parts)
        )
        return [SourceFile(str(item), path=item) for item in found]
    raise BadInput(f"no file or folder {location}")


def _s3_files(location: str) -> list[SourceFile]:
    from replay.stores.blobs import reaching_s3, s3_client

    bucket, _, prefix = location[len("s3://") :].partition("/")
    if not bucket:
        raise BadInput(f"{location} names no bucket (s3://bucket/prefix)")
    found = []
    with reaching_s3(f"s3://{bucket}"):
        pages = s3_client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for page in pages:
            for item in page.get("Contents", []):
                if not item["Key"].endswith("/"):
                    key = item["Key"]
                    found.append(SourceFile(f"s3://{bucket}/{key}", bucket=bucket, key=key))
    return sorted(found, key=lambda file: file.name)


Record = tuple[bytes, str]  # one decision's record as read, and where: `file:line`


def records(file: SourceFile, format: str) -> Iterator[Record]:
    """The records of one file: its lines (JSON lines, SageMaker captures; blank ones
    skipped), or the rows of a Parquet file, each as a JSON line."""
    if format == "parquet":
        yield from _parquet_rows(file)
        return
    for number, line in enumerate(file.read().splitlines(), 1):
        if line.strip():
            yield line, f"{file.name}:{number}"


def _parquet_rows(file: SourceFile) -> Iterator[Record]:
    """The rows of a Parquet file: columns `time`, `inputs`, `outputs` (structs, or
    JSON text), and optionally `subject`, `seed`, `id`."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(io.BytesIO(file.read()))
    except Exception as error:  # pyarrow raises its own kinds for a damaged file
        raise BadInput(f"{file.name} is not a Parquet file: {error}") from None
    for number, row in enumerate(table.to_pylist(), 1):
        for key in ("inputs", "outputs"):
            if isinstance(row.get(key), str):
                with contextlib.suppress(BadInput):  # else refused: not an object
                    row[key] = read_json(row[key])
        line = canonical_json({key: _plain(value) for key, value in row.items()})
        yield line, f"{file.name}:{number}"


def _plain(value: Any) -> Any:
    """A Parquet value as JSON has it (times as ISO text)."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def record_event(line: bytes, where: str, deployment: str) -> Event:
    """One plain record: a decision, or unreadable (not JSON, not a record)."""
    try:
        record = read_json(line)
    except BadInput as problem:
        return Unreadable("file", sha256_bytes(line), deployment, f"{where}: {problem}", line)
    source_id = record.get("id") if isinstance(record, dict) else None
    if not isinstance(source_id, str | int) or isinstance(source_id, bool):
        source_id = sha256_bytes(canonical_json(record))
    try:
        if not isinstance(record, dict):
            raise BadInput("a record must be a JSON object")
        unknown = sorted(set(record) - RECORD_KEYS)
        if unknown:
            raise BadInput(
                f"unknown key {unknown[0]!r} (a record has {', '.join(sorted(RECORD_KEYS))})"
            )
        for key in ("time", "inputs", "outputs"):
            if key not in record:
                raise BadInput(f"the record has no {key!r}")
        seed = record.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise BadInput("seed must be an integer")
        subject = record.get("subject")
        if subject is not None and not isinstance(subject, str):
            raise BadInput("subject must be text")
        moment = parse_time(record["time"])
    except BadInput as problem:
        return Unreadable("file", str(source_id), deployment, f"{where}: {problem}", line)
    return Made(
        source="file",
        source_id=str(source_id),
        deployment=deployment,
        time=moment,
        inputs=record["inputs"],
        outputs=record["outputs"],
        payload=line,
        subject=subject,
        seed=seed,
    )
