"""`replay backtest`: would another model have decided the logged decisions otherwise?

The selected decisions are re-run in the challenger's own container, with their logged
inputs and seeds, on Dask (batches, a warm container per worker), and compared with what
was logged as the answers come back (`BacktestTally`). Out come: the decisions that
flipped, with their inputs (Parquet, written as they come); a self-contained HTML
summary with plots; an MLflow run in the challenger's experiment; and a `backtest`
ledger entry with the selection, both sides' manifests and the files' sha256.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from replay.deployments.history import resolve_target
from replay.errors import BadInput, ReplayError
from replay.execution.decision import logged_seed
from replay.history.cluster import dask_client, streamed, workers_of
from replay.history.comparison import BacktestTally
from replay.history.sampling import Reservoir
from replay.history.selection import BATCH_ROWS, READ_ROWS
from replay.history.workers import WarmContainers, rerun_on_worker, worker_settings
from replay.ledger import open_ledger
from replay.ledger.chain import LedgerEntry, NewEntry
from replay.manifests.canonical import sha256_bytes
from replay.manifests.manifest import Manifest
from replay.settings import Settings, load_settings
from replay.stores.keys import write_once
from replay.stores.manifests import manifest_store


@dataclass(frozen=True)
class Backtest:
    challenger: str  # manifest id
    deployment: str
    logged_manifests: list[str]  # the manifests that made the selected decisions
    selection: dict[str, Any]
    summary: dict[str, Any]  # BacktestTally.to_dict(): flip table, rates, shift, segments
    refused: int  # decisions whose inputs the challenger's schema or code refused
    refusal: str | None  # the first refusal, in words
    files: dict[str, str] = field(default_factory=dict)  # html, parquet
    sha256: dict[str, str] = field(default_factory=dict)
    mlflow_run: str = ""
    record_txn: str = ""
    workers: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items()}


@dataclass
class _Refusals:
    """Decisions the challenger refused: how many, and the first, in words."""

    count: int = 0
    first: str | None = None

    def add(self, why: str) -> None:
        self.count += 1
        self.first = self.first or why


def _sampled(
    chunks: Iterator[list[LedgerEntry]], size: int, seed: int = 0
) -> Iterator[list[LedgerEntry]]:
    """A uniform sample of `size` entries of the chunks (reservoir sampling: memory for
    the sample only), in ledger order."""
    sample: Reservoir[LedgerEntry] = Reservoir(size, seed)
    for chunk in chunks:
        for entry in chunk:
            if entry.erased_on is None:  # an erased decision cannot be re-run
                sample.add(entry)
    kept = sorted(sample.items, key=lambda entry: entry.seq)
    for start in range(0, len(kept), READ_ROWS):
        yield kept[start : start + READ_ROWS]


def backtest(
    challenger: str,
    *,
    deployment: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    sample: int | None = None,
    out: Path = Path("."),
    scheduler: str | None = None,
    workers: int | None = None,
    settings: Settings | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Backtest:
    """Re-run the selected logged decisions (of `deployment`, by default the
    challenger's) in the challenger's container (a manifest id or a deployment name
    meaning its newest manifest) and compare them with what was logged."""
    from replay.history.report import render_backtest

    settings = settings or load_settings()
    store = manifest_store(settings)
    manifest = store.load(resolve_target(challenger, settings))
    deployment = deployment or manifest.name
    if sample is not None and sample < 1:
        raise BadInput(f"a sample is at least one decision, not {sample}")
    if not out.is_dir():
        raise BadInput(f"{out} is not a folder to write the backtest in")
    ledger = open_ledger(settings)
    filters: dict[str, Any] = ledger.selection(
        kind="decision", deployment=deployment, since=since, until=until
    )
    logged_manifests = ledger.manifest_ids(**filters)
    if not logged_manifests:
        raise BadInput(f"no logged decisions of {deployment} match: nothing written")
    total = ledger.count(**filters)
    chunks = ledger.chunks(READ_ROWS, **filters)
    if sample is not None:
        chunks, total = _sampled(chunks, sample), min(sample, total)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    stem = out / f"backtest-{manifest.short_id}-{stamp}"
    paths = {"parquet": stem.with_suffix(".parquet"), "html": stem.with_suffix(".html")}
    reference = manifest.schema.read_rows(store.reference_sample(manifest))
    tally = BacktestTally.for_schema(manifest.schema, reference)
    seeds = {mid: store.load(mid).runtime.seed for mid in logged_manifests}
    refused = _Refusals()
    flips = _FlipWriter(paths["parquet"], manifest)
    try:
        with dask_client(scheduler, workers) as client:
            client.register_plugin(WarmContainers())
            used = workers_of(client)
            shipped = worker_settings(settings)  # the stores, not the key
            jobs = _jobs(chunks, manifest, seeds, shipped, refused)
            for batch, answers in streamed(client, rerun_on_worker, jobs):
                if isinstance(answers, ReplayError):  # the challenger's image, say
                    raise answers
                if isinstance(answers, Exception):
                    raise ReplayError(f"a Dask worker failed: {answers}") from answers
                for entry, answer in zip(batch, answers, strict=True):
                    if isinstance(answer, str):
                        refused.add(f"{entry.txn_id}: {answer}")
                        continue
                    if tally.add(entry.inputs, entry.outputs, answer):
                        flips.add(entry, answer)
                if progress:
                    progress(tally.decisions + refused.count, total)
        if not tally.decisions:
            raise BadInput(
                f"the challenger took none of the {refused.count} selected decisions: "
                f"{refused.first or 'all erased'}; nothing written"
            )
        flips.close()
    except BaseException:
        flips.discard()
        raise
    selection = {
        "deployment": deployment,
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
        "sample": sample,
        "through": filters["through"],  # the ledger's last entry when the backtest began
    }
    result = Backtest(
        challenger=manifest.manifest_id,
        deployment=deployment,
        logged_manifests=logged_manifests,
        selection=selection,
        summary=tally.to_dict(),
        refused=refused.count,
        refusal=refused.first,
        workers=used,
    )
    try:  # the summary, the MLflow run and the ledger entry, or none of the files
        html = render_backtest(result, tally, manifest).encode("utf-8")
        write_once(paths["html"], html, 0o600)
        digests = {kind: sha256_bytes(path.read_bytes()) for kind, path in paths.items()}
        summary = result.summary
        run_id = store.log_run(
            manifest.name,
            f"backtest {stamp}",
            metrics={
                "decisions": float(summary["decisions"]),
                "flip_rate": summary["flip_rate"],
                "favourable_rate_before": summary["favourable_rate_before"],
                "favourable_rate_after": summary["favourable_rate_after"],
                **(
                    {"mean_score_shift": summary["mean_score_shift"]}
                    if summary["mean_score_shift"] is not None
                    else {}
                ),
            },
            params={key: str(value) for key, value in selection.items()},
            tags={"replay.kind": "backtest", "replay.challenger": manifest.manifest_id},
            files=list(paths.values()),
        )
        recorded = ledger.record(
            NewEntry(
                manifest_id=manifest.manifest_id,
                deployment=deployment,
                kind="backtest",
                inputs=selection,
                outputs={
                    "challenger": manifest.manifest_id,
                    "logged_manifests": logged_manifests,
                    "decisions": summary["decisions"],
                    "flips": summary["flips"],
                    "refused": refused.count,
                    "sha256": digests,
                    "mlflow_run": run_id,
                    "by": settings.user,
                },
            )
        )
    except BaseException:
        for path in paths.values():
            path.unlink(missing_ok=True)
        raise
    return replace(
        result,
        files={kind: str(path) for kind, path in paths.items()},
        sha256=digests,
        mlflow_run=run_id,
        record_txn=recorded.txn_id,
    )


def _jobs(
    chunks: Iterator[list[LedgerEntry]],
    manifest: Manifest,
    seeds: dict[str, int],
    settings: Settings,
    refused: _Refusals,
) -> Iterator[tuple[list[LedgerEntry], tuple[Any, ...]]]:
    """Batches of decisions the challenger's schema takes, with the worker's arguments;
    erased decisions are left out, refused ones counted with why."""
    for chunk in chunks:
        taken = []
        for entry in chunk:
            if entry.erased_on is not None:
                continue
            try:
                manifest.schema.check(entry.inputs)
            except BadInput as problem:
                refused.add(f"{entry.txn_id}: the challenger's schema refuses it: {problem}")
                continue
            taken.append(entry)
        for start in range(0, len(taken), BATCH_ROWS):
            batch = taken[start : start + BATCH_ROWS]
            rows = [entry.inputs for entry in batch]
            logged = [logged_seed(e, seeds[e.manifest_id]) for e in batch]
            yield batch, (manifest.manifest_id, rows, logged, settings)


class _FlipWriter:
    """The decisions that flipped, with their inputs, streamed to Parquet (0600) and
    renamed into place only when whole."""

    def __init__(self, path: Path, manifest: Manifest) -> None:
        import pyarrow as pa

        from replay.history.export import arrow_type

        self.path = path
        self.partial = path.with_name(f".{path.name}.partial")
        output = manifest.schema.output
        self.decision, self.score = output.decision, output.score
        score_type = (
            arrow_type(output.fields[output.score])
            if output.score in output.fields
            else pa.float64()
        )
        decision_type = (
            arrow_type(output.fields[output.decision])
            if output.decision in output.fields
            else pa.string()
        )
        self.inputs = list(manifest.schema.inputs)
        self.schema = pa.schema(
            [
                pa.field("txn_id", pa.string()),
                pa.field("time", pa.string()),
                pa.field("manifest_id", pa.string()),
                pa.field("logged_decision", decision_type),
                pa.field("challenger_decision", decision_type),
                pa.field("logged_score", score_type),
                pa.field("challenger_score", score_type),
                *(
                    pa.field(f"inputs.{name}", arrow_type(feature))
                    for name, feature in manifest.schema.inputs.items()
                ),
            ]
        )
        self.rows: list[dict[str, Any]] = []
        self.writer: Any = None
        self.count = 0

    def add(self, entry: LedgerEntry, answer: dict[str, Any]) -> None:
        self.rows.append(
            {
                "txn_id": entry.txn_id,
                "time": entry.time,
                "manifest_id": entry.manifest_id,
                "logged_decision": entry.outputs.get(self.decision),
                "challenger_decision": answer.get(self.decision),
                "logged_score": entry.outputs.get(self.score),
                "challenger_score": answer.get(self.score),
                **{f"inputs.{name}": entry.inputs.get(name) for name in self.inputs},
            }
        )
        if len(self.rows) >= READ_ROWS:
            self._flush()

    def _flush(self) -> None:
        import os

        import pyarrow as pa
        import pyarrow.parquet as pq

        if self.writer is None:
            descriptor = os.open(self.partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            self.sink = os.fdopen(descriptor, "wb")
            self.writer = pq.ParquetWriter(self.sink, self.schema)
        self.writer.write_table(pa.Table.from_pylist(self.rows, self.schema))
        self.count += len(self.rows)
        self.rows = []

    def close(self) -> None:
        import os

        self._flush()  # at least the schema: no flips is an empty table, not no file
        self.writer.close()
        self.sink.flush()
        os.fsync(self.sink.fileno())
        self.sink.close()
        os.replace(self.partial, self.path)

    def discard(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.sink.close()
        self.partial.unlink(missing_ok=True)
