"""A person's review beside the decision: recorded by `replay review`, shown by `ledger
show`, sealed and exported with the decision; every bad review is one line and its
exit code, and nothing is recorded for it."""

from __future__ import annotations

import json
import re
import shlex
import sqlite3

import httpx
import pytest

from tests.integration.conftest import read_new_cases, run_cli

pytestmark = pytest.mark.integration


def rejected(served) -> str:
    return next(a["transaction_id"] for a in served if a["decision"] == "rejected")


def test_an_overturned_decision_is_shown_sealed_and_exported_with_it(served, replay_env):
    from replay.settings import load_settings

    txn = rejected(served)
    made = run_cli(
        "review", txn, "--outcome", "overturned", "--decision", "approved",
        "--note", "income proof arrived late", "--json",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    review = json.loads(made.stdout)
    assert re.fullmatch(
        r"reviewed by a person on \d{4}-\d\d-\d\d: overturned to approved", review["summary"]
    )
    assert review["reviews"] == txn and review["decision"] == "approved"

    shown = run_cli("ledger", "show", txn)
    assert (
        f"review       {review['summary']} ({review['by']}): income proof arrived late"
        in shown.stdout
    )
    data = json.loads(run_cli("ledger", "show", txn, "--json").stdout)
    assert [r["outputs"]["outcome"] for r in data["reviews"]] == ["overturned"]

    row = (
        sqlite3.connect(load_settings().ledger)
        .execute("SELECT sealed, outputs FROM entries WHERE txn_id = ?", [review["txn_id"]])
        .fetchone()
    )
    assert row[0] == 1 and "income proof" not in row[1]  # the note is the person's data too
    person = f"applicant-{next(i for i, a in enumerate(served) if a['transaction_id'] == txn)}"
    exported = json.loads(run_cli("subject", "export", person).stdout)["entries"]
    assert review["txn_id"] in {entry["txn_id"] for entry in exported}


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ("--outcome overturned --note x", "needs the decision that stands now"),
        ("--outcome overturned --decision maybe --note x", "one of approved, rejected"),
        ("--outcome upheld --decision approved --note x", "a review that changes it is overturned"),
        ("--outcome upheld --note ' '", "needs a note"),
        ("--outcome lost --note x", "'lost' is not one of 'upheld', 'overturned'"),
    ],
)
def test_a_bad_review_is_one_line_exit_2_and_records_nothing(served, arguments, message):
    import replay

    before = replay.verify_ledger().entries
    result = run_cli("review", rejected(served), *shlex.split(arguments))
    assert result.returncode == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert replay.verify_ledger().entries == before


def test_only_a_known_readable_decision_can_be_reviewed(server, tokens, workspace, served):
    import replay

    unknown = run_cli("review", "txn_nope", "--outcome", "upheld", "--note", "x")
    assert unknown.returncode == 2 and "no transaction txn_nope" in unknown.stderr
    replayed = replay.replay(rejected(served)).record_txn
    not_a_decision = run_cli("review", replayed, "--outcome", "upheld", "--note", "x")
    assert not_a_decision.returncode == 2 and "only a decision" in not_a_decision.stderr

    answer = httpx.post(
        f"{server}/decisions",
        headers=tokens["decide"],
        timeout=60,
        json={"inputs": read_new_cases(workspace, "credit")[71], "subject": "review-erased-9"},
    ).json()
    assert run_cli("subject", "erase", "review-erased-9", "--yes").returncode == 0
    erased = run_cli("review", answer["transaction_id"], "--outcome", "upheld", "--note", "x")
    assert erased.returncode == 5 and "erased on" in erased.stderr
