"""Re-execute logged decisions in their original container and compare bit for bit.

Outputs are compared as canonical JSON: equal text means equal bits (floats travel as
shortest round-trip reprs). Every replay is itself written to the ledger (kind
`replay`, referring to the decision) with its verdict and who ran it.
"""

from __future__ import annotations

import struct
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, TypeGuard

from replay.errors import BadInput, EnvironmentProblem, IntegrityError, ReplayError
from replay.execution.decision import Decision
from replay.execution.predictor import PredictionError
from replay.execution.warm import WarmDeployment, warm_for
from replay.images.container import RunnerFailed
from replay.ledger import open_ledger
from replay.ledger.chain import LedgerEntry, NewEntry
from replay.manifests.canonical import canonical_json
from replay.settings import Settings, load_settings

REPRODUCED, DIVERGED, FAILED = "reproduced", "diverged", "failed"


def ulp_distance(a: float, b: float) -> int:
    """How many representable doubles lie between a and b (0: same bits)."""

    def ordered(x: float) -> int:
        bits = struct.unpack("<q", struct.pack("<d", x))[0]
        return bits if bits >= 0 else -(bits & 0x7FFFFFFFFFFFFFFF)

    return abs(ordered(a) - ordered(b))


@dataclass(frozen=True)
class FieldDifference:
    field: str
    logged: Any
    replayed: Any
    absolute: float | None = None
    ulps: int | None = None


def _is_number(value: Any) -> TypeGuard[float | int]:
    return isinstance(value, float | int) and not isinstance(value, bool)


def compare_outputs(logged: dict[str, Any], replayed: dict[str, Any]) -> list[FieldDifference]:
    differences = []
    for name in sorted(set(logged) | set(replayed)):
        left, right = logged.get(name), replayed.get(name)
        if canonical_json(left) == canonical_json(right):
            continue
        if _is_number(left) and _is_number(right):
            absolute, ulps = (
                abs(float(left) - float(right)),
                ulp_distance(float(left), float(right)),
            )
        else:
            absolute, ulps = None, None
        differences.append(FieldDifference(name, left, right, absolute=absolute, ulps=ulps))
    return differences


@dataclass(frozen=True)
class ReplayResult:
    txn_id: str
    manifest_id: str
    verdict: str
    recovery: str
    logged: dict[str, Any]
    replayed: dict[str, Any] | None
    differences: list[FieldDifference] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    record_txn: str | None = None
    seed: int | None = None  # the seed it was re-run with

    @property
    def reproduced(self) -> bool:
        return self.verdict == REPRODUCED

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _replay_with(warm: WarmDeployment, entry: LedgerEntry) -> ReplayResult:
    started = time.perf_counter()
    logged = entry.outputs
    replayed, error = None, None
    seed = Decision.from_entry(entry, warm.manifest).seed
    try:
        replayed = warm.predict(entry.inputs, seed)
        warm.manifest.schema.output.check(replayed)
    except (PredictionError, RunnerFailed) as problem:
        error = str(problem)
    except BadInput as problem:  # answered, but not what the manifest declares
        error = f"the replayed outputs break the schema: {problem}"
    if entry.fingerprint and entry.fingerprint != warm.fingerprint_id:
        error = (
            f"the decision was made by fingerprint {entry.fingerprint[:12]}, "
            f"this image has {warm.fingerprint_id[:12]}"
        )
    differences = compare_outputs(logged, replayed) if replayed is not None else []
    verdict = FAILED if error else (DIVERGED if differences else REPRODUCED)
    return ReplayResult(
        entry.txn_id,
        entry.manifest_id,
        verdict,
        warm.recovered.path,
        logged,
        replayed,
        differences,
        error,
        time.perf_counter() - started,
        seed=seed,
    )


def _failed(entry: LedgerEntry, error: str) -> ReplayResult:
    return ReplayResult(
        entry.txn_id, entry.manifest_id, FAILED, "none", entry.outputs, None, error=error
    )


def _record(
    results: list[ReplayResult], entries: dict[str, LedgerEntry], settings: Settings
) -> list[ReplayResult]:
    """Write each replay to the ledger (one transaction for the lot)."""
    who = settings.user
    stored = open_ledger(settings).append(
        NewEntry(
            manifest_id=result.manifest_id,
            deployment=entries[result.txn_id].deployment,
            inputs=entries[result.txn_id].inputs,
            subject=entries[result.txn_id].subject,  # found, sealed and erased with the decision
            kind="replay",
            refers_to=result.txn_id,
            seed=result.seed,
            outputs={
                "verdict": result.verdict,
                "recovery": result.recovery,
                "replayed": result.replayed,
                "error": result.error,
                "checked_by": who,
            },
        )
        for result in results
    )
    return [
        ReplayResult(**{**result.__dict__, "record_txn": entry.txn_id})
        for result, entry in zip(results, stored, strict=True)
    ]


def replay(
    txn_id: str,
    *,
    record: bool = True,
    warm: WarmDeployment | None = None,
    settings: Settings | None = None,
) -> ReplayResult:
    """Re-execute one logged decision in its original container (the caller's `warm`,
    checked to be the decision's manifest, or one started for it); compare bit for bit."""
    settings = settings or load_settings()
    started = time.perf_counter()
    entry = open_ledger(settings).get(txn_id).readable()  # erased: said before starting
    with warm_for(entry.manifest_id, warm, settings) as running:
        result = _replay_with(running, entry)
    result = ReplayResult(**{**result.__dict__, "seconds": time.perf_counter() - started})
    return _record([result], {txn_id: entry}, settings)[0] if record else result


@dataclass(frozen=True)
class ReplaySummary:
    results: list[ReplayResult]
    erased: int = 0  # decisions left out because their subject's data was erased

    @property
    def counts(self) -> dict[str, int]:
        counted = Counter(result.verdict for result in self.results)
        return {verdict: counted.get(verdict, 0) for verdict in (REPRODUCED, DIVERGED, FAILED)}

    @property
    def all_reproduced(self) -> bool:
        return all(result.reproduced for result in self.results)

    def to_dict(self) -> dict[str, Any]:
        return {
            "counts": self.counts,
            "erased": self.erased,
            "results": [result.to_dict() for result in self.results],
        }


def replay_many(
    *,
    deployment: str | None = None,
    since: datetime | None = None,
    txn_ids: list[str] | None = None,
    record: bool = True,
    settings: Settings | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ReplaySummary:
    """Replay many decisions, one warm container per manifest; `progress(done, total)`."""
    settings = settings or load_settings()
    ledger = open_ledger(settings)
    entries = (
        [ledger.get(txn) for txn in txn_ids]
        if txn_ids is not None
        else ledger.list(deployment=deployment, since=since)
    )
    erased = [entry for entry in entries if entry.erased_on is not None]
    entries = [entry for entry in entries if entry.erased_on is None]
    by_manifest: dict[str, list[LedgerEntry]] = {}
    for entry in entries:
        by_manifest.setdefault(entry.manifest_id, []).append(entry)
    results: list[ReplayResult] = []
    for manifest_id, group in by_manifest.items():
        try:
            with WarmDeployment(manifest_id, settings=settings) as warm:
                for entry in group:
                    try:
                        results.append(_replay_with(warm, entry))
                    except (EnvironmentProblem, IntegrityError):
                        raise  # the container, not the entry: the group's rest fails below
                    except Exception as problem:  # this entry broke: say so, go on
                        results.append(_failed(entry, f"{type(problem).__name__}: {problem}"))
                    if progress:
                        progress(len(results), len(entries))
        except ReplayError as problem:  # e.g. the image was refused: the group failed
            done = {result.txn_id for result in results}
            results += [_failed(entry, str(problem)) for entry in group if entry.txn_id not in done]
            if progress:
                progress(len(results), len(entries))
    if record and results:
        results = _record(results, {entry.txn_id: entry for entry in entries}, settings)
    return ReplaySummary(results, erased=len(erased))
