"""Signed checkpoints close what a hash chain alone leaves open: a cut end and a chain
rewritten (every hash recomputed) after an edit. A real SQLite ledger, tampered with as
someone with the database file would."""

from __future__ import annotations

import json
import sqlite3
import stat

import pytest

from replay.errors import IntegrityError
from replay.ledger import SQLiteLedger
from replay.ledger.chain import _body, entry_hash
from replay.ledger.decisions import checkpoint_ledger, verify_ledger
from replay.settings import load_settings
from tests.factories import ledger_decision


@pytest.fixture
def settings(tmp_path):
    return load_settings({"REPLAY_HOME": str(tmp_path / "home")}, cwd=tmp_path)


@pytest.fixture
def ledger(settings):
    settings.home.mkdir(parents=True)
    ledger = SQLiteLedger(settings.ledger)
    ledger.append([ledger_decision(i) for i in range(1, 201)])
    return ledger


def tamper(path, sql: str, *parameters) -> None:
    """What someone holding the database file can do: drop the triggers and write."""
    connection = sqlite3.connect(path)
    connection.execute("DROP TRIGGER IF EXISTS entries_no_update")
    connection.execute("DROP TRIGGER IF EXISTS entries_no_delete")
    connection.execute(sql, parameters)
    connection.commit()
    connection.close()


def test_an_intact_chain_holds_against_its_checkpoints(ledger, settings):
    first = checkpoint_ledger(settings=settings)
    ledger.append([ledger_decision(201)])
    second = checkpoint_ledger(settings=settings)
    assert (first.count, second.count) == (200, 201)
    report = verify_ledger(settings=settings)
    assert report.ok and (report.entries, report.checkpoints) == (201, 2)


def test_the_signing_key_is_private_and_verifying_needs_only_its_public_half(ledger, settings):
    checkpoint_ledger(settings=settings)
    folder = settings.key_folder
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "ledger-signing.key").stat().st_mode) == 0o600
    (folder / "ledger-signing.key").unlink()  # an auditor's machine
    assert verify_ledger(settings=settings).ok


def test_a_cut_end_is_named(ledger, settings):
    checkpoint_ledger(settings=settings)
    tamper(ledger.path, "DELETE FROM entries WHERE seq > 150")
    assert ledger.verify().ok  # the chain alone cannot tell
    report = verify_ledger(settings=settings)
    assert report.first_bad == 151
    with pytest.raises(
        IntegrityError,
        match=r"ledger entry 151 is missing: the ledger ends "
        r"at entry 150, but a checkpoint signed at .* covers 200 entries",
    ):
        report.raise_for_mismatch()


def test_a_rewritten_chain_is_named(ledger, settings):
    checkpoint_ledger(settings=settings)
    prev_hash = ledger.at(99).hash
    for seq in range(100, 201):  # edit entry 100, then recompute every hash after it
        columns = ledger.at(seq).columns()
        if seq == 100:
            columns["outputs"] = columns["outputs"].replace("approved", "rejected")
        columns["prev_hash"] = prev_hash
        columns["hash"] = entry_hash(prev_hash, _body(columns))
        tamper(
            ledger.path,
            "UPDATE entries SET outputs = ?, prev_hash = ?, hash = ? WHERE seq = ?",
            columns["outputs"],
            columns["prev_hash"],
            columns["hash"],
            seq,
        )
        prev_hash = columns["hash"]
    assert ledger.verify().ok
    report = verify_ledger(settings=settings)
    assert report.first_bad == 200 and "the chain up to it was rewritten" in report.reason


def test_a_forged_checkpoint_is_named(ledger, settings):
    checkpoint = checkpoint_ledger(settings=settings)
    folder = next(settings.home.rglob(checkpoint.name)).parent
    forged = {**json.loads((folder / checkpoint.name).read_text()), "count": 150}
    (folder / "000000000150-forged.json").write_text(json.dumps(forged))
    report = verify_ledger(settings=settings)
    assert report.first_bad == 150 and "signature does not hold" in report.reason


def test_checkpoints_are_written_once_and_read_only(ledger, settings):
    checkpoint = checkpoint_ledger(settings=settings)
    assert checkpoint_ledger(settings=settings).name == checkpoint.name  # same head
    (path,) = settings.home.rglob("*.json")
    assert stat.S_IMODE(path.stat().st_mode) == 0o444


def test_an_empty_ledger_has_nothing_to_checkpoint(settings):
    settings.home.mkdir(parents=True)
    assert checkpoint_ledger(settings=settings) is None
    assert verify_ledger(settings=settings).checkpoints == 0


def test_a_server_checkpoints_on_a_schedule_and_on_the_way_out(ledger, settings):
    import time

    from replay.ledger.checkpoints import Checkpointer

    written = []
    with Checkpointer(lambda: written.append(checkpoint_ledger(settings=settings)), 0.05):
        time.sleep(0.3)
        ledger.append([ledger_decision(201)])
        time.sleep(0.3)
    assert len(written) >= 3 and written[-1].count == 201
    assert verify_ledger(settings=settings).checkpoints == 2  # one file per head


def test_a_junk_or_misfiled_checkpoint_is_named(ledger, settings):
    checkpoint = checkpoint_ledger(settings=settings)
    folder = next(settings.home.rglob(checkpoint.name)).parent
    (folder / "000000000150-0000000000000000.json").write_bytes(
        (folder / checkpoint.name).read_bytes()  # genuine, but filed as entry 150's
    )
    report = verify_ledger(settings=settings)
    assert report.first_bad == 200 and "filed as 000000000150" in report.reason
    (folder / "000000000150-0000000000000000.json").unlink()
    (folder / "000000000001-junk.json").write_text("not json")
    with pytest.raises(IntegrityError, match=r"000000000001-junk\.json .* is not a checkpoint"):
        verify_ledger(settings=settings)
