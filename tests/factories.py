"""Small valid documents and ledger entries for tests (built, not copied from a real
capture)."""

from __future__ import annotations

import copy
from typing import Any

from replay.manifests.canonical import sha256_bytes
from replay.manifests.schema import Schema

from replay.ledger import NewEntry, open_ledger_at

LOCK = """\
joblib==1.4.2 \\
    --hash=sha256:06d478d5674cbc267e7496a410ee875abd68e4340feff4490bcb7afb88060ae6
    # via -r requirements.in
numpy==2.1.3 ; python_version >= "3.10" \\
    --hash=sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa \\
    --hash=sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb
    # via scikit-learn
"""


def manifest_document(**changes: Any) -> dict[str, Any]:
    document = {
        "schema_version": 1,
        "name": "credit-approval",
        "version": "1.0",
        "created_at": "2026-01-02T03:04:05+00:00",
        "code": {
            "repository": "/srv/credit",
            "subdirectory": "",
            "commit": "a" * 40,
            "dirty": False,
            "archive_sha256": "1" * 64,
            "archive_size": 1024,
            "entrypoint": "credit.model:predict",
        },
        "model": {
            "files": [
                {
                    "path": "model/model.joblib",
                    "sha256": "2" * 64,
                    "size": 10,
                    "dvc": {"md5": "3" * 32, "remote": "local", "remote_url": "/srv/dvc"},
                }
            ]
        },
        "environment": {
            "python": "3.11",
            "platforms": ["manylinux_2_17_x86_64"],
            "lock": LOCK,
            "lock_sha256": sha256_bytes(LOCK.encode()),
            "wheels": [
                {
                    "name": "joblib",
                    "version": "1.4.2",
                    "filename": "joblib-1.4.2-py3-none-any.whl",
                    "sha256": "4" * 64,
                }
            ],
        },
        "image": {
            "base": "127.0.0.1:5000/replay/python@sha256:" + "5" * 64,
            "requested_base": "127.0.0.1:5000/replay/python:3.11-bookworm",
            "runner_sha256": "7" * 64,
            "recipe": 2,
        },
        "runtime": {
            "seeds": {"global": 1729},
            "threads": 1,
            "env": {"OMP_NUM_THREADS": "1", "TZ": "UTC"},
            "cpu": {"model": "test cpu", "flags": ["avx2"]},
            "engine": {
                "version": "20.10",
                "api_version": "1.41",
                "os": "linux",
                "architecture": "amd64",
                "kernel": "6.1",
            },
        },
        "io": {
            "inputs": {
                "income": {"type": "number", "min": 0, "monotone": "increasing"},
                "age": {"type": "integer", "immutable": True},
            },
            "output": {
                "decision": "decision",
                "score": "score",
                "favourable": "approved",
                "fields": {"decision": {"type": "string"}, "score": {"type": "number"}},
            },
        },
        "reference": {"path": "data/reference.csv", "sha256": "6" * 64, "rows": 300},
    }
    document = copy.deepcopy(document)
    for path, value in changes.items():
        target = document
        *parents, last = path.split("__")
        for key in parents:
            target = target[key]
        target[last] = value
    return document


def ledger_decision(i: int, **extra: Any) -> NewEntry:
    """A decision entry whose seed is `i`, with a float that must survive bit for bit."""
    return NewEntry(
        manifest_id="m" * 64,
        deployment=extra.pop("deployment", "credit"),
        inputs={"income": 1000.0 + i, "name": "Zoë"},
        outputs={"decision": "approved", "score": i / 7},
        seed=i,
        **extra,
    )


def write_decisions(location: str, worker: int, count: int) -> None:
    """One writer process: `count` decisions, seeds `worker * 10_000 + i`."""
    ledger = open_ledger_at(location)
    for i in range(count):
        ledger.record(ledger_decision(worker * 10_000 + i))


def schema(inputs: dict[str, Any], **output: Any) -> Schema:
    """A typed schema of `inputs` (JSON feature specs) deciding `decision` from `score`."""
    fields = output.pop(
        "fields", {"decision": {"type": "string"}, "score": {"type": "number", "nullable": True}}
    )
    return Schema.from_json(
        {
            "inputs": inputs,
            "output": {
                "decision": "decision",
                "score": "score",
                "favourable": "approved",
                "fields": fields,
                **output,
            },
        }
    )
