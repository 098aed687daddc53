"""The way into every question: a logged decision and a container that can answer it,
and the rules every question keeps."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from replay.errors import BadInput, ImmutableInput
from replay.execution.decision import Decision
from replay.execution.predictor import PredictionError
from replay.execution.warm import WarmDeployment, warm_for
from replay.ledger import open_ledger
from replay.ledger.chain import access_entry
from replay.manifests.schema import Schema
from replay.settings import Settings, load_settings


@contextmanager
def asking(
    txn_id: str, warm: WarmDeployment | None, settings: Settings | None, question: str
) -> Iterator[tuple[Decision, WarmDeployment]]:
    """The decision `txn_id` and its original container (the caller's `warm`, checked to
    be the decision's manifest, or one started and closed around the block). A question
    answered about a person's decision is recorded as an `access` entry naming it (a
    refused one records nothing), as the console records its pages."""
    if settings is None:  # a caller's warm container brings the settings it runs with
        settings = warm.settings if warm is not None else load_settings()
    ledger = open_ledger(settings)
    entry = ledger.get(txn_id).readable()  # erased: said before starting
    with warm_for(entry.manifest_id, warm, settings) as running:
        yield Decision.from_entry(entry, running.manifest), running
    if entry.subject is not None and entry.opened is not None:
        ledger.record(access_entry(entry.subject, settings.user, question, refers_to=txn_id))


def immutable_edits(schema: Schema, names: Iterable[str], allowed: bool) -> tuple[str, ...]:
    """The immutable inputs among `names`; refused unless `allowed` (compliance probing:
    would the decision differ for another age?)."""
    immutable = tuple(name for name in names if schema.feature(name).immutable)
    if immutable and not allowed:
        feature = schema.feature(immutable[0])
        why = f" ({feature.description})" if feature.description else ""
        raise ImmutableInput(
            f"{feature.name} is immutable{why}: a question never changes it unless "
            "immutable inputs are allowed, for compliance probing"
        )
    return immutable


def answered(schema: Schema, columns: Mapping[str, Iterable[Any]]) -> None:
    """Refuse answers (by output field) holding NaN or an infinity: an answer to a
    question must print as JSON, and a deployment that answers so is broken (a type the
    fields do not declare is shown as it came, as a score a plot cannot draw)."""
    try:
        schema.output.check_finite_columns(columns)
    except BadInput as problem:
        raise PredictionError(f"the deployment's outputs break its schema: {problem}") from None
