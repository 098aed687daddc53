"""Re-execute logged decisions in their original container and compare bit for bit.

Outputs are compared as canonical JSON: equal text means equal bits (floats travel as
shortest round-trip reprs). Every replay is itself written to the ledger (kind
`replay`, referring to the decision) with its verdict and who ran it.
"""

from __future__ import annotations

import struct
import time
from dataclasses import asdict, dataclass, field
from typing import Any, TypeGuard

from replay.errors import BadInput, EnvironmentProblem, IntegrityError
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
    replayed, error = None, None
    seed = Decision.from_entry(entry, warm.manifest).seed
    try:
        replayed = warm.predict(entry.inputs, seed)
    except (PredictionError, RunnerFailed) as problem:
        error = str(problem)
    return _judged(warm, entry, seed, replayed, error, time.perf_counter() - started)


def replay_batch(warm: WarmDeployment, entries: list[LedgerEntry]) -> list[ReplayResult]:
    """Decisions of one manifest replayed in one batch, each row with its own logged seed
    (as its single request would be answered); a batch the deployment refuses is
    replayed one decision at a time, so each result names its own error."""
    started = time.perf_counter()
    try:
        seeds = [Decision.from_entry(entry, warm.manifest).seed for entry in entries]
        answers = warm.predict_each([entry.inputs for entry in entries], seeds)
    except Exception as problem:
        machine = isinstance(problem, EnvironmentProblem | IntegrityError)
        if machine and not isinstance(problem, RunnerFailed):
            raise  # the container, not an entry: the caller fails the group's rest
        # a decision refused, broke or killed the runner: find which, one at a time
        return [_replay_alone(warm, entry) for entry in entries]
    share = (time.perf_counter() - started) / len(entries)
    results = []
    for entry, seed, replayed in zip(entries, seeds, answers, strict=True):
        try:
            results.append(_judged(warm, entry, seed, replayed, None, share))
        except Exception as problem:  # this entry broke (a logged row no tool reads)
            results.append(failed(entry, f"{type(problem).__name__}: {problem}"))
    return results


def _replay_alone(warm: WarmDeployment, entry: LedgerEntry) -> ReplayResult:
    try:
        return _replay_with(warm, entry)
    except (EnvironmentProblem, IntegrityError):
        raise
    except Exception as problem:  # this entry broke: say so, go on
        return failed(entry, f"{type(problem).__name__}: {problem}")


def _judged(
    warm: WarmDeployment,
    entry: LedgerEntry,
    seed: int,
    replayed: dict[str, Any] | None,
    error: str | None,
    seconds: float,
) -> ReplayResult:
    """The verdict on one decision re-run: its outputs against the logged ones."""
    logged = entry.outputs
    if replayed is not None and error is None:
        try:
            warm.manifest.schema.output.check(replayed)
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
        seconds,
        seed=seed,
    )


def failed(entry: LedgerEntry, error: str) -> ReplayResult:
    return ReplayResult(
        entry.txn_id, entry.manifest_id, FAILED, "none", entry.outputs, None, error=error
    )


def record_replays(
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
    return record_replays([result], {txn_id: entry}, settings)[0] if record else result
