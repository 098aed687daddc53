"""Decisions made elsewhere, logged: each checked against its deployment's frozen
manifest and appended in batches, one transaction each, with the events that could not
be logged quarantined in that same transaction (so an event is always either logged or
held, never both, never neither). An event logged already adds nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from replay.deployments.history import resolve_target
from replay.errors import BadInput, one_line
from replay.ingestion.events import Event, Made, Unreadable
from replay.ingestion.files import FORMATS, json_lines, parquet_rows, source_files
from replay.ingestion.kserve import SOURCE as KSERVE
from replay.ingestion.kserve import CloudEvent, decisions_of, pair_payload, row_ids, subjects_of
from replay.ingestion.sagemaker import capture_events
from replay.ledger import open_ledger
from replay.ledger.chain import NewEntry, pseudonym
from replay.ledger.decisions import subject_key
from replay.ledger.holding import QUARANTINED, HeldEvent, Holding
from replay.manifests.manifest import Manifest
from replay.manifests.pyfunc import decided_by_rule
from replay.settings import Settings, load_settings
from replay.stores.manifests import manifest_store

BATCH = 2000  # decisions appended per transaction
FORGET_UNKNOWN_S = 30.0  # a deployment not found is looked up again after this long


@dataclass(frozen=True)
class IngestCounts:
    """What became of the events read: logged, duplicates of events logged or held
    already, pending (half a decision, waiting for the other half), quarantined."""

    logged: int = 0
    duplicate: int = 0
    pending: int = 0
    quarantined: int = 0

    def __add__(self, other: IngestCounts) -> IngestCounts:
        return IngestCounts(
            *(a + b for a, b in zip(asdict(self).values(), asdict(other).values(), strict=True))
        )

    @property
    def total(self) -> int:
        return self.logged + self.duplicate + self.pending + self.quarantined

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    def __str__(self) -> str:
        return (
            f"{self.logged:,} logged, {self.duplicate:,} duplicate, {self.pending:,} pending, "
            f"{self.quarantined:,} quarantined"
        )


class Ingestion:
    """Logs the decisions of other serving stacks into the ledger the settings name.

    A source names its deployment (a deployment name, a manifest id, or a KServe
    InferenceService): `mapping` turns a source's name into a deployment, and `default`
    is the deployment of events whose name is not mapped (without it, the name itself)."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        default: str | None = None,
        mapping: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings or load_settings()
        self.ledger = open_ledger(self.settings)
        self.holding = Holding(self.ledger)
        self.key = subject_key(self.settings)
        self.default = default
        self.mapping = dict(mapping or {})
        self._manifests: dict[str, Manifest] = {}
        self._unknown: dict[str, tuple[float, str]] = {}  # name: (when, why)
        if default is not None:
            self.manifest_of("")  # a default that names nothing is the caller's mistake now

    def manifest_of(self, named: str) -> Manifest:
        """The manifest an event's deployment name means (its newest, for a name)."""
        target = self.mapping.get(named) or self.default or named
        if target in self._manifests:
            return self._manifests[target]
        when, why = self._unknown.get(target, (0.0, ""))
        if time.monotonic() - when < FORGET_UNKNOWN_S:
            raise BadInput(why)
        if not target:
            raise BadInput("the event names no deployment, and none was given")
        try:
            manifest = manifest_store(self.settings).load(resolve_target(target, self.settings))
        except BadInput as unknown:
            why = f"unknown deployment {target!r}: {unknown}"
            self._unknown[target] = (time.monotonic(), why)
            raise BadInput(why) from None
        self._manifests[target] = manifest
        return manifest

    def entry_of(self, made: Made) -> NewEntry:
        """The ledger entry of one decision made elsewhere; BadInput says why it is not
        one (unknown deployment, inputs outside the schema, an output missing)."""
        manifest = self.manifest_of(made.deployment)
        inputs = manifest.schema.check(made.inputs)
        outputs = completed(made.outputs, manifest)
        return NewEntry(
            manifest_id=manifest.manifest_id,
            deployment=manifest.name,
            inputs=inputs,
            outputs=outputs,
            seed=made.seed,
            subject=self.pseudonym(made.subject),
            time=made.time or datetime.now(UTC),
            source=made.source,
            source_id=made.source_id,
        )

    def pseudonym(self, subject: str | None) -> str | None:
        return pseudonym(subject, self.key) if subject else None

    def log(self, events: Iterable[Event], batch: int = BATCH) -> IngestCounts:
        """Log every event read (in order), `batch` decisions per transaction."""
        counts = IngestCounts()
        entries: list[NewEntry] = []
        refused: list[dict[str, Any]] = []
        for event in events:
            if isinstance(event, Unreadable):
                refused.append(self.quarantined(event, event.reason))
            else:
                try:
                    entries.append(self.entry_of(event))
                except BadInput as problem:
                    refused.append(self.quarantined(event, str(problem)))
            if len(entries) + len(refused) >= batch:
                counts += self.commit(entries, refused)
                entries, refused = [], []
        if entries or refused:
            counts += self.commit(entries, refused)
        return counts

    def commit(
        self, entries: list[NewEntry], refused: list[dict[str, Any]], also: Any = None
    ) -> IngestCounts:
        """Append `entries` (leaving out those logged already) and quarantine `refused`
        (each at most once) in one transaction; `also(connection)` runs in it too."""
        quarantine = self.holding.quarantine(refused)

        def both(connection: Any) -> None:
            quarantine(connection)
            if also is not None:
                also(connection)

        stored = self.ledger.append(entries, skip_known=True, also=both)
        return IngestCounts(
            logged=len(stored),
            duplicate=len(entries) - len(stored) + len(refused) - quarantine.added,
            quarantined=quarantine.added,
        )

    def receive(self, event: CloudEvent) -> IngestCounts:
        """One half of a decision from KServe's logger: held until its other half comes,
        then logged (or quarantined, saying why) as the pending half is released."""
        subjects = subjects_of(event) if event.part == "request" else None
        # a held request is sealed under its person's key; one of several people, in clear
        subject = self.pseudonym(subjects[0]) if subjects and len(subjects) == 1 else None
        arrival = self.holding.arrive(
            KSERVE,
            event.id,
            event.part,
            event.service,
            event.payload,
            subject,
            logged_as=(row_ids(event.id, 2)[0],),
        )
        if arrival.state != "paired":
            return IngestCounts(**{arrival.state: 1})
        assert arrival.other is not None
        release = self.holding.release(KSERVE, event.id)
        if arrival.other.payload is None:
            refused = Unreadable(
                KSERVE, event.id, event.service, "its subject's data was erased", b""
            )
            return self.commit([], [self.quarantined(refused, refused.reason)], also=release)
        other = CloudEvent.held(arrival.other.payload)
        request, response = (event, other) if event.part == "request" else (other, event)
        entries: list[NewEntry] = []
        try:
            manifest = self.manifest_of(event.service)
            for made in decisions_of(request, response, event.service, manifest):
                entries.append(self.entry_of(made))
        except BadInput as problem:
            pair = Unreadable(
                KSERVE,
                event.id,
                event.service,
                str(problem),
                pair_payload(request, response),
                (subjects_of(request) or [None])[0],
            )
            return self.commit([], [self.quarantined(pair, pair.reason)], also=release)
        return self.commit(entries, [], also=release)

    def quarantined(self, event: Event, reason: str) -> dict[str, Any]:
        """A held row for an event that cannot be logged, with the reason."""
        subject = self.pseudonym(event.subject)
        return self.holding.row(
            event.source,
            event.source_id,
            QUARANTINED,
            event.deployment,
            one_line(reason, 300),
            event.payload,
            subject,
        )


def completed(outputs: Any, manifest: Manifest) -> dict[str, Any]:
    """The outputs a source logged, checked against the deployment's output schema; a
    decision the deployment makes from its score by a declared threshold rule is made
    so from the logged score when the source logged only the score."""
    if not isinstance(outputs, Mapping):
        raise BadInput("outputs must be an object of output fields")
    rule = manifest.model_source.rule if manifest.model_source is not None else None
    if rule is not None and rule["decision"] not in outputs:
        outputs = decided_by_rule(outputs, rule)
    manifest.schema.output.check(outputs)
    return dict(outputs)


def ingest(
    location: str,
    *,
    format: str,
    deployment: str,
    columns: list[str] | None = None,
    settings: Settings | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> IngestCounts:
    """Log the decisions of a file, a folder or an `s3://` prefix, made elsewhere by
    `deployment` (a name: its newest manifest, or a manifest id); `format` is `jsonl`,
    `parquet` or `sagemaker`; `columns` orders the values of CSV payloads (default: the
    manifest's inputs, in its order). `progress(files done, files)` after each file."""
    if format not in FORMATS:
        raise BadInput(f"format must be one of {', '.join(FORMATS)}")
    ingestion = Ingestion(settings, default=deployment)
    manifest = ingestion.manifest_of(deployment)
    files = source_files(location)
    if not files:
        raise BadInput(f"no files at {location}")

    def events() -> Iterator[Event]:
        for done, file in enumerate(files):
            if format == "jsonl":
                yield from json_lines(file, deployment)
            elif format == "parquet":
                yield from parquet_rows(file, deployment)
            else:
                yield from capture_events(file, deployment, manifest, columns)
            if progress is not None:
                progress(done + 1, len(files))

    return ingestion.log(events())


def held_events(
    state: str, *, limit: int | None = None, settings: Settings | None = None
) -> list[HeldEvent]:
    """The events held beside the ledger: `pending` halves of decisions waiting for
    their other half, or `quarantined` events that could not be logged, with why."""
    return Holding(open_ledger(settings or load_settings())).events(state, limit)
