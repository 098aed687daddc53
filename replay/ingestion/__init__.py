"""Decisions made by other serving stacks, logged into the ledger: files of decisions
(`files`), SageMaker Data Capture (`sagemaker`), KServe's payload logger (`kserve`),
the payload shapes they log (`tables`), how a source's records become events
(`reading`), and the `ingest` module that checks each against its frozen deployment,
pairs halves, leaves out what was logged already and quarantines the rest with its
reason (large files prepared in processes of their own: `preparing`).
"""

from replay.ingestion.events import Made, Unreadable
from replay.ingestion.ingest import IngestCounts, Ingestion, held_events, ingest
from replay.ingestion.kserve import CloudEvent

__all__ = [
    "CloudEvent",
    "IngestCounts",
    "Ingestion",
    "Made",
    "Unreadable",
    "held_events",
    "ingest",
]
