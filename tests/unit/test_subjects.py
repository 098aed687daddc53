"""Personal data sealed per subject, export and erasure: a real SQLite ledger, real key
files and real AES-GCM; the database is read and tampered with as someone holding the
file would."""

from __future__ import annotations

import json
import re
import sqlite3
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from replay.cli.main import cli

from replay.errors import BadInput, EnvironmentProblem, Erased, IntegrityError
from replay.ledger import open_ledger, subject_keys
from replay.ledger.chain import FORMAT, Ledger, NewEntry, pseudonym
from replay.ledger.decisions import (
    checkpoint_ledger,
    list_transactions,
    show_transaction,
    subject_key,
    verify_ledger,
)
from replay.ledger.subjects import erase_subject, export_subject
from replay.settings import load_settings
from tests.factories import ledger_decision

FIXTURES = Path(__file__).parent.parent / "fixtures"


@pytest.fixture
def settings(tmp_path):
    return load_settings({"REPLAY_HOME": str(tmp_path / "home")}, cwd=tmp_path)


def decide(settings, i, person=None, **extra):
    subject = pseudonym(person, subject_key(settings)) if person else None
    return open_ledger(settings).record(ledger_decision(i, subject=subject, **extra))


def replay_of(settings, decision, *, carries_subject=True):
    """A replay entry as `replay` writes it (or, without the subject, as it did before)."""
    return open_ledger(settings).record(
        NewEntry(
            manifest_id=decision.manifest_id,
            deployment=decision.deployment,
            inputs=decision.inputs,
            outputs={"verdict": "reproduced"},
            kind="replay",
            refers_to=decision.txn_id,
            subject=decision.subject if carries_subject else None,
            seed=decision.seed,
        )
    )


def stored(settings, txn_id):
    connection = sqlite3.connect(settings.ledger)
    return connection.execute(
        "SELECT inputs, outputs, format, sealed FROM entries WHERE txn_id = ?", [txn_id]
    ).fetchone()


def test_a_subjects_data_is_ciphertext_at_rest_and_clear_to_replay(settings):
    entry = decide(settings, 1, "ana@example.org")
    inputs, outputs, entry_format, sealed = stored(settings, entry.txn_id)
    assert (entry_format, sealed) == (FORMAT, 1)
    assert inputs.startswith("aes-256-gcm:") and outputs.startswith("aes-256-gcm:")
    assert "Zoë" not in inputs and "1001" not in inputs and "approved" not in outputs
    again = open_ledger(settings).get(entry.txn_id)
    assert again.inputs == {"income": 1001.0, "name": "Zoë"}
    assert again.outputs["score"].hex() == (1 / 7).hex()
    assert verify_ledger(settings=settings).ok
    keys = settings.key_folder / "subjects.db"
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600


def test_decisions_without_a_subject_stay_in_clear(settings):
    entry = decide(settings, 2)
    inputs, _, _, sealed = stored(settings, entry.txn_id)
    assert sealed == 0 and json.loads(inputs)["name"] == "Zoë"


def test_erasure_keeps_the_chain_valid_and_reads_as_erased(settings):
    first, second = decide(settings, 1, "ana"), decide(settings, 2, "ana")
    other = decide(settings, 3, "bo")
    replay_of(settings, first)
    checkpoint_ledger(settings=settings)
    erasure = erase_subject("ana", settings=settings)
    assert erasure.entries == 3 and not erasure.already

    report = verify_ledger(settings=settings)
    assert report.ok and report.entries == 5 and report.checkpoints == 1
    ledger = open_ledger(settings)
    for txn in (first.txn_id, second.txn_id):
        gone = ledger.get(txn)
        assert gone.erased_on == erasure.erased_on and gone.outcome == "erased"
        with pytest.raises(Erased, match=rf"{txn}: .* erased on \d{{4}}-\d\d-\d\d$"):
            gone.inputs  # noqa: B018
        assert gone.to_dict()["inputs"] is None
    assert ledger.get(other.txn_id).inputs["name"] == "Zoë"
    assert [e.kind for e in list_transactions(subject="ana", kind=None, settings=settings)] == [
        "decision",
        "decision",
        "replay",
        "erasure",
    ]
    again = erase_subject("ana", settings=settings)
    assert again.already and again.txn_id == erasure.txn_id
    assert verify_ledger(settings=settings).entries == 5  # nothing new recorded


def test_an_interrupted_erasure_is_finished_by_running_it_again(settings, monkeypatch):
    """The key destroyed, then the machine stops before the erasure is recorded: the
    entries read as a missing key (not as erased) until erase runs again."""
    entry = decide(settings, 1, "ana")
    record = Ledger.record

    def stops_at_the_record(ledger, new):
        if new.kind == "erasure":
            raise OSError("the machine stopped")
        return record(ledger, new)

    monkeypatch.setattr(Ledger, "record", stops_at_the_record)
    with pytest.raises(OSError):
        erase_subject("ana", settings=settings)
    monkeypatch.setattr(Ledger, "record", record)
    with pytest.raises(EnvironmentProblem, match="finish an interrupted erasure"):
        open_ledger(settings).get(entry.txn_id).readable()
    finished = erase_subject("ana", settings=settings)
    assert finished.entries == 1 and not finished.already
    assert open_ledger(settings).get(entry.txn_id).erased_on == finished.erased_on
    kinds = [e.kind for e in list_transactions(subject="ana", kind=None, settings=settings)]
    assert kinds == ["decision", "erasure"]  # one erasure, recorded once


def test_an_erased_key_is_gone_from_the_key_files(settings):
    entry = decide(settings, 1, "ana")
    secret = subject_keys(settings).current(entry.subject).secret
    keys = settings.key_folder / "subjects.db"
    held = keys.read_bytes() + Path(f"{keys}-wal").read_bytes()
    assert secret in held
    erase_subject("ana", settings=settings)
    wal = Path(f"{keys}-wal")
    assert secret not in keys.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def test_a_subject_who_returns_gets_a_new_key(settings):
    before = decide(settings, 1, "ana")
    erase_subject("ana", settings=settings)
    after = decide(settings, 2, "ana")
    ledger = open_ledger(settings)
    assert ledger.get(after.txn_id).inputs["income"] == 1002.0
    assert ledger.get(before.txn_id).erased_on is not None
    assert erase_subject("ana", settings=settings).entries == 1  # the new decision only


def test_a_lost_key_is_not_mistaken_for_an_erasure(settings):
    entry = decide(settings, 1, "ana")
    subject_keys(settings).destroy(entry.subject)  # no erasure recorded
    with pytest.raises(EnvironmentProblem, match="not in the key store and that no erasure"):
        open_ledger(settings).get(entry.txn_id).readable()


def test_sealed_data_moved_to_another_entry_does_not_open(settings):
    first, second = decide(settings, 1, "ana"), decide(settings, 2, "ana")
    connection = sqlite3.connect(settings.ledger)
    connection.execute("DROP TRIGGER entries_no_update")
    connection.execute(
        "UPDATE entries SET inputs = (SELECT inputs FROM entries WHERE seq = ?) WHERE seq = ?",
        [first.seq, second.seq],
    )
    connection.commit()
    moved = open_ledger(settings).get(second.txn_id)  # read, and named when used
    with pytest.raises(IntegrityError, match=f"{second.txn_id}/inputs"):
        moved.readable()
    assert open_ledger(settings).get(first.txn_id).inputs["income"] == 1001.0
    assert verify_ledger(settings=settings).first_bad == second.seq


def test_export_holds_every_entry_about_the_person(settings, tmp_path):
    decision = decide(settings, 1, "ana")
    decide(settings, 2, "bo")
    replay_of(settings, decision)
    legacy = replay_of(settings, decision, carries_subject=False)  # as written before
    show_transaction(decision.txn_id, settings=settings)  # reading is recorded

    out = tmp_path / "ana.json"
    export = export_subject("ana", out=out, settings=settings)
    kinds = [(entry["kind"], entry.get("refers_to")) for entry in export.entries]
    assert kinds == [
        ("decision", None),
        ("replay", decision.txn_id),
        ("replay", decision.txn_id),
        ("access", decision.txn_id),
        ("access", None),  # this export
    ]
    assert legacy.txn_id in {entry["txn_id"] for entry in export.entries}
    assert export.entries[0]["inputs"] == {"income": 1001.0, "name": "Zoë"}
    assert export.entries[-1]["outputs"]["action"] == "export"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert json.loads(out.read_text(encoding="utf-8"))["entries"] == export.entries
    with pytest.raises(BadInput, match="exists"):
        export_subject("ana", out=out, settings=settings)
    with pytest.raises(BadInput, match="nothing about subject 'nobody'"):
        export_subject("nobody", settings=settings)

    erase_subject("ana", settings=settings)
    after = export_subject("ana", settings=settings)
    assert after.entries[0]["inputs"] is None and after.entries[0]["erased_on"]
    assert [entry["kind"] for entry in after.entries][-2:] == ["erasure", "access"]


def test_a_ledger_written_before_entry_formats_keeps_verifying(settings):
    settings.home.mkdir(parents=True)
    sqlite3.connect(settings.ledger).executescript((FIXTURES / "ledger-format-1.sql").read_text())
    ledger = open_ledger(settings)  # gains the format columns
    assert verify_ledger(settings=settings).entries == 3
    old = ledger.list(kind=None)
    assert [entry.format for entry in old] == [None, None, None]
    assert old[0].inputs == {"income": 52000.5, "name": "Zoë"}
    decide(settings, 4, "ana")
    report = verify_ledger(settings=settings)
    assert report.ok and report.entries == 4
    # format 1 is still checked: an edit to an old entry is found
    connection = sqlite3.connect(settings.ledger)
    connection.execute("DROP TRIGGER entries_no_update")
    connection.execute("UPDATE entries SET inputs = replace(inputs, '52000.5', '92000.5')")
    connection.commit()
    assert verify_ledger(settings=settings).first_bad == 1


def test_the_cli_erases_and_answers_erased_with_exit_5(settings, monkeypatch):
    monkeypatch.setenv("REPLAY_HOME", str(settings.home))
    entry = decide(settings, 1, "ana")
    runner = CliRunner()
    kept = runner.invoke(cli, ["subject", "erase", "ana"], input="n\n")
    assert kept.exit_code != 0 and open_ledger(settings).get(entry.txn_id).opened
    erased = runner.invoke(cli, ["subject", "erase", "ana"], input="y\n")
    assert erased.exit_code == 0
    assert re.search(r"^erased on \d{4}-\d\d-\d\d: 1 sealed", erased.output, re.MULTILINE)
    replayed = runner.invoke(cli, ["replay", entry.txn_id])
    assert replayed.exit_code == 5
    assert re.fullmatch(
        r"error: transaction \S+: its subject's data was erased on \S+\n", replayed.output
    )
    asked = runner.invoke(cli, ["whatif", entry.txn_id, "--set", "income=1"])
    assert asked.exit_code == 5 and "erased on" in asked.output
    exported = runner.invoke(cli, ["subject", "export", "ana"])
    assert exported.exit_code == 0 and json.loads(exported.output)["entries"][0]["inputs"] is None


def test_an_entry_sealed_while_its_key_was_destroyed_reads_as_that_erasure(settings):
    """An append that fetched the key just before an erasure destroyed it: the entry is
    erased by that erasure, and keeps that date when the subject returns and is erased
    again."""
    decide(settings, 1, "ana")
    subject = pseudonym("ana", subject_key(settings))
    stale = subject_keys(settings).current(subject)
    first = erase_subject("ana", settings=settings)
    ledger = open_ledger(settings)
    ledger.keys.current_many = lambda subjects: {subject: stale}  # fetched before
    raced = ledger.record(ledger_decision(2, subject=subject))
    decide(settings, 3, "ana")  # back, with a new key
    second = erase_subject("ana", settings=settings)
    assert second.erased_on != first.erased_on
    assert open_ledger(settings).get(raced.txn_id).erased_on == first.erased_on


def test_erasure_names_entries_written_in_clear_before_sealing(settings):
    decision = decide(settings, 1, "ana")
    legacy = replay_of(settings, decision, carries_subject=False)  # copies the inputs
    erasure = erase_subject("ana", settings=settings)
    assert erasure.in_clear == [legacy.txn_id]
    assert open_ledger(settings).get(legacy.txn_id).inputs["name"] == "Zoë"


def test_one_damaged_sealed_entry_does_not_stop_the_others_being_read(settings):
    first, second = decide(settings, 1, "ana"), decide(settings, 2, "bo")
    connection = sqlite3.connect(settings.ledger)
    connection.execute("DROP TRIGGER entries_no_update")
    cipher, key_id, _ = first.inputs_json.split(":", 2)
    damaged = f"{cipher}:{key_id}:not base64!"
    connection.execute("UPDATE entries SET inputs = ? WHERE seq = ?", [damaged, first.seq])
    connection.commit()
    entries = open_ledger(settings).list()
    assert [entry.outcome for entry in entries] == ["unreadable", "approved"]
    with pytest.raises(IntegrityError, match="does not open"):
        entries[0].readable()
    assert entries[1].inputs["income"] == 1002.0 and second.seq == 2


def test_a_format_1_entry_given_format_2_columns_is_named(settings):
    settings.home.mkdir(parents=True)
    sqlite3.connect(settings.ledger).executescript((FIXTURES / "ledger-format-1.sql").read_text())
    open_ledger(settings)
    connection = sqlite3.connect(settings.ledger)
    connection.execute("DROP TRIGGER entries_no_update")
    connection.execute("UPDATE entries SET sealed = 1 WHERE seq = 2")
    connection.commit()
    report = verify_ledger(settings=settings)
    assert report.first_bad == 2 and report.reason == "was changed after it was written"
