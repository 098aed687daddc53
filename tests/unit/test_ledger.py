import multiprocessing
import sqlite3
from datetime import UTC, datetime

import pytest

from replay.errors import BadInput, IntegrityError
from replay.ledger import LocalSubjectKeys, SQLiteLedger, pseudonym
from replay.ledger.chain import GENESIS
from tests.factories import ledger_decision, write_decisions


@pytest.fixture
def ledger(tmp_path):
    return SQLiteLedger(tmp_path / "ledger.db", keys=LocalSubjectKeys(tmp_path / "keys"))


def test_entries_chain_from_genesis(ledger):
    first, second = ledger.append([ledger_decision(1), ledger_decision(2)])
    assert (first.seq, second.seq) == (1, 2)
    assert first.prev_hash == GENESIS and second.prev_hash == first.hash
    assert ledger.get(second.txn_id) == second
    assert ledger.verify().ok


def test_values_round_trip_bit_for_bit(ledger):
    stored = ledger.record(ledger_decision(3))
    again = ledger.get(stored.txn_id)
    assert again.outputs["score"].hex() == (3 / 7).hex()
    assert again.inputs["name"] == "Zoë"


def test_list_filters(ledger):
    ledger.record(ledger_decision(1, deployment="a", subject="s_1"))
    ledger.record(ledger_decision(2, deployment="b", subject="s_2"))
    ledger.record(ledger_decision(3, deployment="a", kind="review"))
    assert [e.seed for e in ledger.list(deployment="a")] == [1]
    assert [e.seed for e in ledger.list(subject="s_2")] == [2]
    assert [e.seed for e in ledger.list(kind=None)] == [1, 2, 3]
    assert ledger.list(since=datetime(2999, 1, 1)) == []
    assert len(ledger.list(since=datetime(2000, 1, 1, tzinfo=UTC), kind=None)) == 3


def test_unknown_transaction_and_kind(ledger):
    with pytest.raises(BadInput, match="no transaction txn_nope"):
        ledger.get("txn_nope")
    with pytest.raises(BadInput, match="kind"):
        ledger.record(ledger_decision(1, kind="gossip"))


def test_sqlite_refuses_updates_and_deletes(ledger):
    entry = ledger.record(ledger_decision(1))
    connection = sqlite3.connect(ledger.path)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        connection.execute("UPDATE entries SET outputs = '{}' WHERE seq = ?", [entry.seq])
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        connection.execute("DELETE FROM entries")


def tamper(path, sql, *parameters):
    connection = sqlite3.connect(path)
    connection.execute("DROP TRIGGER entries_no_update")
    connection.execute("DROP TRIGGER entries_no_delete")
    connection.execute(sql, parameters)
    connection.commit()


def test_a_changed_byte_names_its_entry(ledger):
    entries = ledger.append([ledger_decision(i) for i in range(1, 6)])
    changed = entries[2].outputs_json.replace("approved", "approveD")
    tamper(ledger.path, "UPDATE entries SET outputs = ? WHERE seq = 3", changed)
    report = ledger.verify()
    assert (report.ok, report.first_bad) == (False, 3)
    with pytest.raises(IntegrityError, match="ledger entry 3 was changed"):
        report.raise_for_mismatch()


def test_a_removed_entry_is_found(ledger):
    ledger.append([ledger_decision(i) for i in range(1, 6)])
    tamper(ledger.path, "DELETE FROM entries WHERE seq = 2")
    assert ledger.verify().first_bad == 2


def test_a_rehashed_entry_still_breaks_the_link(ledger):
    from replay.ledger.chain import _body, entry_hash

    entries = ledger.append([ledger_decision(i) for i in range(1, 4)])
    forged = {**entries[1].columns(), "seed": 999}
    forged_hash = entry_hash(forged["prev_hash"], _body(forged))
    tamper(ledger.path, "UPDATE entries SET seed = 999, hash = ? WHERE seq = 2", forged_hash)
    assert ledger.verify().first_bad == 3


def test_pseudonyms_are_stable_and_keyed():
    assert pseudonym("applicant-7", b"k1") == pseudonym("applicant-7", b"k1")
    assert pseudonym("applicant-7", b"k1") != pseudonym("applicant-7", b"k2")
    assert "applicant" not in pseudonym("applicant-7", b"k1")


def test_concurrent_writers_lose_nothing_and_never_fork(tmp_path):
    path = str(tmp_path / "ledger.db")
    workers = [
        multiprocessing.Process(target=write_decisions, args=(path, w, 150)) for w in range(8)
    ]
    for process in workers:
        process.start()
    for process in workers:
        process.join(120)
        assert process.exitcode == 0
    ledger = SQLiteLedger(path)
    entries = ledger.list()
    assert len(entries) == 8 * 150
    assert sorted(e.seed for e in entries) == sorted(
        w * 10_000 + i for w in range(8) for i in range(150)
    )
    assert ledger.verify().ok
