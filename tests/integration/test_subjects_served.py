"""A person's rights over decisions `replay serve` made: their data is ciphertext at
rest, reading it through the API is recorded, the export holds every entry about them
(replays included) and erasure leaves a chain that verifies and decisions that answer
"erased" with exit 5."""

from __future__ import annotations

import json
import sqlite3
import stat

import httpx
import pytest

from tests.integration.conftest import read_new_cases, run_cli

pytestmark = pytest.mark.integration

PERSON = "subject-rights-person-7"


@pytest.fixture(scope="module")
def decided(server, tokens, workspace):
    inputs = read_new_cases(workspace, "credit")[70]
    answer = httpx.post(
        f"{server}/decisions",
        headers=tokens["decide"],
        timeout=60,
        json={"inputs": inputs, "subject": PERSON},
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["transaction_id"], inputs


def test_a_persons_decision_from_serve_is_exported_then_erased(
    decided, server, tokens, replay_env, tmp_path
):
    from replay.settings import load_settings

    txn, inputs = decided
    row = (
        sqlite3.connect(load_settings().ledger)
        .execute("SELECT inputs, outputs, sealed FROM entries WHERE txn_id = ?", [txn])
        .fetchone()
    )
    assert row[2] == 1 and row[0].startswith("aes-256-gcm:")
    assert "income" not in row[0] and "decision" not in row[1]

    shown = httpx.get(f"{server}/decisions/{txn}", headers=tokens["read"])
    assert shown.status_code == 200 and shown.json()["inputs"]["income"] == inputs["income"]
    replayed = run_cli("replay", txn, "--json")
    assert replayed.returncode == 0, replayed.stderr

    out = tmp_path / "export.json"
    exported = run_cli("subject", "export", PERSON, "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    entries = json.loads(out.read_text(encoding="utf-8"))["entries"]
    kinds = [(entry["kind"], entry["refers_to"] == txn) for entry in entries]
    assert kinds == [("decision", False), ("access", True), ("replay", True), ("access", False)]
    assert entries[1]["outputs"]["by"] == "token tests-read"
    assert entries[2]["outputs"]["verdict"] == "reproduced"

    erased = run_cli("subject", "erase", PERSON, "--yes", "--json")
    assert erased.returncode == 0, erased.stderr
    assert json.loads(erased.stdout)["entries"] == 2  # the decision and its replay
    assert run_cli("ledger", "verify").returncode == 0
    gone = httpx.get(f"{server}/decisions/{txn}", headers=tokens["read"]).json()
    assert gone["inputs"] is None and gone["erased_on"]
    for command in (["replay", txn], ["whatif", txn, "--set", "income=1"]):
        refused = run_cli(*command)
        assert refused.returncode == 5, refused.stderr
        day = json.loads(erased.stdout)["erased_on"][:10]
        assert (
            refused.stderr == f"error: transaction {txn}: its subject's data was erased on {day}\n"
        )
