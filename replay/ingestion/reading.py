"""How the records of a source become decisions: `Reading` says what a record is (a
plain decision, or a SageMaker capture of a request and its response) and which
deployment made it. It is sent whole to the processes that prepare decisions."""

from __future__ import annotations

from dataclasses import dataclass

from replay.errors import BadInput
from replay.ingestion.events import Event
from replay.ingestion.files import FORMATS, Record, record_event
from replay.ingestion.sagemaker import record_events
from replay.manifests.manifest import Manifest


@dataclass(frozen=True)
class Reading:
    """Records in `format` (jsonl, parquet, sagemaker) of decisions made by
    `deployment` (as the source names it); a capture's CSV values are in the order of
    `columns` (default: the manifest's inputs), and its payloads are decoded by the
    deployment's `manifest`."""

    format: str
    deployment: str
    manifest: Manifest | None = None
    columns: list[str] | None = None

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise BadInput(f"format must be one of {', '.join(FORMATS)}")
        if self.format == "sagemaker" and self.manifest is None:
            raise BadInput("SageMaker captures are read by their deployment's manifest")

    def events(self, records: list[Record]) -> list[Event]:
        """The events of these records, in order (a capture may hold several)."""
        if self.format != "sagemaker":
            return [record_event(line, where, self.deployment) for line, where in records]
        assert self.manifest is not None  # checked when made
        return [
            event
            for line, where in records
            for event in record_events(line, where, self.deployment, self.manifest, self.columns)
        ]
