"""How `replay serve` makes and logs decisions, whichever API asked (`POST /decisions`,
the Open Inference Protocol's infer): each row decided by the deployment's own
container with a new seed, its outputs checked against the output schema, and every
row of the request in the ledger, on disk, before the answer leaves."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from replay.errors import BadInput, ReplayError
from replay.execution.warm import WarmDeployment
from replay.ledger.chain import NewEntry, pseudonym
from replay.ledger.decisions import new_seed, subject_key
from replay.ledger.group_commit import GroupCommit
from replay.manifests.canonical import canonical_json
from replay.settings import Settings
from replay.web.running import claim_answer

if TYPE_CHECKING:  # FastAPI loads in about 0.3 s: only a running server pays it
    from starlette.requests import Request

MAX_SUBJECT = 256  # characters of a subject id


class BrokenOutputs(ReplayError):
    """The deployment answered outputs that break its schema: its fault, not the
    caller's (502), and nothing of the request is logged."""


@dataclass(frozen=True)
class Decision:
    txn_id: str
    outputs: dict[str, Any]


class Decider:
    """Decides checked rows through a warm deployment and logs each as a decision."""

    def __init__(self, warm: WarmDeployment, settings: Settings, group: GroupCommit) -> None:
        self.warm = warm
        self.settings = settings
        self.group = group
        self.key = subject_key(settings)

    def decide(
        self, request: Request, rows: list[dict[str, Any]], subjects: list[str | None]
    ) -> list[Decision]:
        """Each of `rows` (checked with the schema) decided with its own new seed and
        logged with its subject (pseudonymised), all in one commit once every row's
        outputs are known good; BrokenOutputs if any row's are not."""
        for subject in subjects:
            if subject is not None and not _fit_subject(subject):
                raise BadInput(f"subject must be UTF-8 text of at most {MAX_SUBJECT} characters")
        warm, manifest = self.warm, self.warm.manifest
        seeds = [new_seed() for _ in rows]
        # One row is one request, as decisions always were; several are answered each as
        # alone (the exact-batch rule), in one batch where the runner allows
        answers = (
            [warm.predict(rows[0], seeds[0])] if len(rows) == 1 else warm.predict_each(rows, seeds)
        )
        for answer in answers:
            self._check(answer)
        claim_answer(request)  # not once the server stopping has answered it 503
        entries = self.group.record_all(  # logged, and on disk, before the answer leaves
            [
                NewEntry(
                    manifest_id=manifest.manifest_id,
                    deployment=manifest.name,
                    inputs=row,
                    outputs=answer,
                    seed=seed,
                    fingerprint=warm.fingerprint_id,
                    subject=pseudonym(subject, self.key) if subject else None,
                )
                for row, answer, seed, subject in zip(rows, answers, seeds, subjects, strict=True)
            ]
        )
        return [
            Decision(entry.txn_id, answer) for entry, answer in zip(entries, answers, strict=True)
        ]

    def _check(self, outputs: dict[str, Any]) -> None:
        """Refuse outputs that break the output schema or REPLAY_MAX_OUTPUT; those kept
        are logged as the deployment answered them, for replays to compare bit for bit."""
        try:
            self.warm.manifest.schema.output.check(outputs)
            size = len(canonical_json(outputs))
            if size > self.settings.max_output:
                limit = f"{self.settings.max_output:,}"
                raise BadInput(f"{size:,} bytes, over {limit} (REPLAY_MAX_OUTPUT)")
        except BadInput as error:  # the deployment's fault, not the caller's: not logged
            raise BrokenOutputs(f"the deployment's outputs break its schema: {error}") from None


def _fit_subject(subject: str) -> bool:
    try:
        subject.encode("utf-8")  # a lone surrogate cannot be: refused before the model runs
    except UnicodeEncodeError:
        return False
    return 0 < len(subject) <= MAX_SUBJECT
