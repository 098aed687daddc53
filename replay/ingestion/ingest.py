"""Decisions made elsewhere, logged: each checked against its deployment's frozen
manifest and appended in batches, one transaction each, with the events that could not
be logged quarantined in that same transaction (so an event is always either logged or
held, never both, never neither). An event logged already adds nothing.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from replay.deployments.history import resolve_target
from replay.errors import BadInput, one_line
from replay.ingestion.events import Event, Made, Unreadable
from replay.ingestion.files import FORMATS, Record, records, source_files
from replay.ingestion.kserve import SOURCE as KSERVE
from replay.ingestion.kserve import CloudEvent, decisions_of, pair_payload, row_ids, subjects_of
from replay.ingestion.preparing import Prepared, default_workers, preparing_processes
from replay.ingestion.reading import Reading
from replay.ledger import open_ledger
from replay.ledger.chain import NewEntry, PreparedEntry, pseudonym
from replay.ledger.decisions import subject_key
from replay.ledger.holding import QUARANTINED, HeldEvent, Holding
from replay.manifests.manifest import Manifest
from replay.manifests.pyfunc import decided_by_rule
from replay.settings import Settings, load_settings
from replay.stores.manifests import manifest_store
from replay.stores.subject_keys import SubjectKey

# Records (a decision each, or a capture of several) per transaction: fewer, larger
# commits write each page of the subject index (its keys are random) fewer times
# (100,000 decisions in batches of 10,000 committed in 4.6 s, in batches of 2,000 in 6.6 s).
BATCH = 10_000
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
        both = zip(vars(self).values(), vars(other).values(), strict=True)
        return IngestCounts(*(a + b for a, b in both))

    @property
    def total(self) -> int:
        return self.logged + self.duplicate + self.pending + self.quarantined

    def to_dict(self) -> dict[str, int]:
        return dict(vars(self))

    def __str__(self) -> str:
        return (
            f"{self.logged:,} logged, {self.duplicate:,} duplicate, {self.pending:,} pending, "
            f"{self.quarantined:,} quarantined"
        )


class Ingestion:
    """Logs the decisions of other serving stacks into the ledger the settings name.

    A source names its deployment (a deployment name, a manifest id, or a KServe
    InferenceService): `mapping` turns a source's name into a deployment, and `default`
    is the deployment of events whose name is not mapped (without it, the name itself).
    `manifests` are the manifests of deployments by name, known already."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        default: str | None = None,
        mapping: Mapping[str, str] | None = None,
        manifests: Mapping[str, Manifest] | None = None,
    ) -> None:
        self.settings = settings or load_settings()
        self.ledger = open_ledger(self.settings)
        self.holding = Holding(self.ledger)
        self.key = subject_key(self.settings)
        self.default = default
        self.mapping = dict(mapping or {})
        self._manifests: dict[str, Manifest] = dict(manifests or {})
        self._unknown: dict[str, tuple[float, str]] = {}  # name: (when, why)
        if default is not None:
            self.manifest_of("")  # a default that names nothing is the caller's mistake now

    def maker(self) -> Callable[[], Ingestion]:
        """What makes an Ingestion like this one, knowing the manifests it found, in
        another process."""
        return partial(
            Ingestion,
            self.settings,
            default=self.default,
            mapping=self.mapping,
            manifests=self._manifests,
        )

    def _target(self, named: str) -> str:
        return self.mapping.get(named) or self.default or named

    def knows(self, named: str) -> bool:
        """Whether `manifest_of(named)` is answered without a lookup."""
        target = self._target(named)
        when, _ = self._unknown.get(target, (0.0, ""))
        return target in self._manifests or time.monotonic() - when < FORGET_UNKNOWN_S

    def manifest_of(self, named: str) -> Manifest:
        """The manifest an event's deployment name means (its newest, for a name)."""
        target = self._target(named)
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

    def log(
        self,
        records: Iterable[Record],
        reading: Reading,
        *,
        batch: int = BATCH,
        workers: int | None = None,
    ) -> IngestCounts:
        """Log the decisions of `records` read as `reading` says, `batch` per
        transaction, in the order read. Beyond the first batch, they are prepared by
        `workers` processes while this one links and commits (0: all in this one)."""
        batches = _batches(records, batch)
        started = list(itertools.islice(batches, 2))
        workers = default_workers() if workers is None else workers
        if len(started) < 2 or workers == 0:  # one batch: no processes to start for it
            counts = IngestCounts()
            for each in itertools.chain(started, batches):
                counts += self._commit(*self.prepare(reading.events(each)))
            return counts
        with preparing_processes(self.maker(), reading, workers) as in_order:
            # the processes start on the later batches while this one does the first
            later = in_order(itertools.chain(started[1:], batches))
            counts = self._commit(*self.prepare(reading.events(started[0])))
            for entries, refused in later:
                counts += self._commit(entries, refused)
        return counts

    def prepare(self, events: Iterable[Event]) -> Prepared:
        """The entries of these events sealed and ready to link, and the quarantined
        rows of those that are no decision (saying why)."""
        entries: list[NewEntry] = []
        refused: list[dict[str, Any]] = []
        for event in events:
            if isinstance(event, Unreadable):
                refused.append(self.quarantined(event, event.reason))
                continue
            try:
                entries.append(self.entry_of(event))
            except BadInput as problem:
                refused.append(self.quarantined(event, str(problem)))
        return self.ledger._prepare(entries), refused

    def _commit(self, prepared: list[PreparedEntry], refused: list[dict[str, Any]]) -> IngestCounts:
        return self.ledger._write(lambda connection: self._logged(connection, prepared, refused))

    def _logged(
        self, connection: Any, prepared: list[PreparedEntry], refused: list[dict[str, Any]]
    ) -> IngestCounts:
        """Inside a transaction: append `prepared` (leaving out those logged already)
        and quarantine `refused` (each at most once)."""
        stored = self.ledger._link(connection, prepared, skip_known=True)
        added = self.holding.hold(connection, refused)
        return IngestCounts(
            logged=len(stored),
            duplicate=len(prepared) - len(stored) + len(refused) - added,
            quarantined=added,
        )

    def quarantine(self, event: Unreadable) -> IngestCounts:
        """Quarantine an event that cannot be read, with its reason."""
        return self._commit([], [self.quarantined(event, event.reason)])

    def receive(self, event: CloudEvent) -> IngestCounts:
        """One half of a decision from KServe's logger (see `receive_all`)."""
        return self.receive_all([event])[0]

    def receive_all(self, events: list[CloudEvent]) -> list[IngestCounts]:
        """Halves of decisions from KServe's logger, in order, each held until its other
        half comes, then logged (or quarantined, saying why) as the pending half is
        released; all in one transaction and one flush (halves that arrive together
        are committed together). What becomes of each half, in order."""
        # a held request is sealed under its person's key; one of several people's, in clear
        subjects = [self._held_subject(event) for event in events]
        # the keys of the people of these requests, made or read in one go (one flush),
        # and those of the people of the requests held for these responses, read as they
        # are: what was sealed under them is on disk, and an erased person gets no new one
        waiting = self.holding.subjects(KSERVE, [e.id for e in events if e.part == "response"])
        named = sorted({subject for subject in subjects if subject is not None})
        keys: dict[str, SubjectKey] = {}
        if self.ledger.keys is not None:
            keys.update(self.ledger.keys.existing(waiting) if waiting else {})
            keys.update(self.ledger.keys.current_many(named) if named else {})
        counts: list[IngestCounts] = self.ledger._write(
            lambda connection: _Arrivals(self, connection, keys).receive(events, subjects)
        )
        return counts

    def _held_subject(self, event: CloudEvent) -> str | None:
        """The pseudonym a held half is sealed under: its request's one person."""
        subjects = subjects_of(event) if event.part == "request" else None
        return self.pseudonym(subjects[0]) if subjects and len(subjects) == 1 else None

    def _pair(
        self, request: CloudEvent, response: CloudEvent
    ) -> tuple[list[NewEntry], dict[str, Any] | None]:
        """A request and its response: their decisions' entries, or the pair's
        quarantined row saying why they are none."""
        try:
            manifest = self.manifest_of(request.service)
            made = decisions_of(request, response, request.service, manifest)
            return [self.entry_of(decision) for decision in made], None
        except BadInput as problem:
            pair = Unreadable(
                KSERVE,
                request.id,
                request.service,
                str(problem),
                pair_payload(request, response),
                (subjects_of(request) or [None])[0],
            )
            return [], self.quarantined(pair, pair.reason)

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


class _Arrivals:
    """The halves of decisions received together, inside their one transaction: what
    is held, logged and released is read for all of them at once, followed in memory
    as each half arrives in turn (exactly as if each had its own transaction), and
    written at the end."""

    def __init__(
        self, ingestion: Ingestion, connection: Any, keys: Mapping[str, SubjectKey]
    ) -> None:
        self.ingestion = ingestion
        self.holding = ingestion.holding
        self.connection = connection
        self.keys = keys
        # halves new in this batch, each with the person it is sealed under: written
        # (sealed) only at the batch's end, if their other half did not come in it too
        self.halves: dict[tuple[str, str], tuple[CloudEvent, str | None]] = {}
        self.released: list[str] = []
        self.entries: list[NewEntry] = []

    def receive(self, events: list[CloudEvent], subjects: list[str | None]) -> list[IngestCounts]:
        ids = [event.id for event in events]
        first_rows = [row_ids(event_id, 2)[0] for event_id in ids]  # a request of many rows
        self.known = self.holding.known(self.connection, KSERVE, [*ids, *first_rows])
        self.held: dict[str, dict[str, Any]] = dict(self.holding.held(self.connection, KSERVE, ids))
        outcomes = [
            self._arrive(event, subject, first_row)
            for event, subject, first_row in zip(events, subjects, first_rows, strict=True)
        ]
        self.holding.hold(self.connection, [self._held(*half) for half in self.halves.values()])
        self.holding.release(self.connection, KSERVE, self.released)
        prepared = self.ingestion.ledger._prepare(self.entries, self.keys)
        stored = self.ingestion.ledger._link(self.connection, prepared, skip_known=True)
        logged = {entry.source_id for entry in stored}
        counts = []
        for outcome in outcomes:
            if isinstance(outcome, str):
                counts.append(IngestCounts(**{outcome: 1}))
            elif isinstance(outcome, dict):  # a pair quarantined
                added = self.holding.hold(self.connection, [outcome])
                counts.append(IngestCounts(quarantined=added, duplicate=1 - added))
            else:
                found = sum(1 for entry in outcome if entry.source_id in logged)
                counts.append(IngestCounts(logged=found, duplicate=len(outcome) - found))
        return counts

    def _arrive(
        self, event: CloudEvent, subject: str | None, first_row: str
    ) -> str | dict[str, Any] | list[NewEntry]:
        """What becomes of one half: `duplicate`, `pending`, the entries of the pair
        it completes, or the pair's quarantined row."""
        if event.id in self.known or first_row in self.known:
            return "duplicate"
        held = self.held.setdefault(event.id, {})
        if event.part in held or QUARANTINED in held:
            return "duplicate"
        other_part = "response" if event.part == "request" else "request"
        other = held.pop(other_part, None)
        if other is None:
            held[event.part] = _NEW
            self.halves[(event.id, event.part)] = (event, subject)
            return "pending"
        if other is _NEW:  # held by this very batch: never written
            other_event: CloudEvent | None = self.halves.pop((event.id, other_part))[0]
        else:
            self.released.append(event.id)
            payload = self.holding.opened(other, self.keys).payload
            other_event = None if payload is None else CloudEvent.held(payload)
        if other_event is None:
            held[QUARANTINED] = True
            erased = Unreadable(
                KSERVE, event.id, event.service, "its subject's data was erased", b""
            )
            return self.ingestion.quarantined(erased, erased.reason)
        request, response = (
            (event, other_event) if event.part == "request" else (other_event, event)
        )
        entries, refused = self.ingestion._pair(request, response)
        if refused is not None:
            held[QUARANTINED] = True
            return refused
        self.entries.extend(entries)
        self.known.update(entry.source_id for entry in entries if entry.source_id)
        return entries

    def _held(self, event: CloudEvent, subject: str | None) -> dict[str, Any]:
        """The row of a half left waiting, sealed under its person's key (in clear if
        it names no one person)."""
        key = self.keys.get(subject) if subject else None
        return self.holding.half(
            KSERVE, event.id, event.part, event.service, event.payload, subject, key
        )


_NEW = object()  # a half held by this very batch (`_Arrivals.halves`)


def _batches(records: Iterable[Record], size: int) -> Iterator[list[Record]]:
    batch: list[Record] = []
    for record in records:
        batch.append(record)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


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
    workers: int | None = None,
) -> IngestCounts:
    """Log the decisions of a file, a folder or an `s3://` prefix, made elsewhere by
    `deployment` (a name: its newest manifest, or a manifest id); `format` is `jsonl`,
    `parquet` or `sagemaker`; `columns` orders the values of CSV payloads (default: the
    manifest's inputs, in its order). `progress(files done, files)` after each file is
    read; `workers` processes prepare the decisions (default: one per core)."""
    if format not in FORMATS:  # before any lookup of the deployment
        raise BadInput(f"format must be one of {', '.join(FORMATS)}")
    ingestion = Ingestion(settings, default=deployment)
    reading = Reading(format, deployment, ingestion.manifest_of(deployment), columns)
    files = source_files(location)
    if not files:
        raise BadInput(f"no files at {location}")

    def read() -> Iterator[Record]:
        for done, file in enumerate(files):
            yield from records(file, format)
            if progress is not None:
                progress(done + 1, len(files))

    return ingestion.log(read(), reading, workers=workers)


def held_events(
    state: str, *, limit: int | None = None, settings: Settings | None = None
) -> list[HeldEvent]:
    """The events held beside the ledger: `pending` halves of decisions waiting for
    their other half, or `quarantined` events that could not be logged, with why."""
    return Holding(open_ledger(settings or load_settings())).events(state, limit)
