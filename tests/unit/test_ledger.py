import multiprocessing
import os
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest

from replay.errors import BadInput, EnvironmentProblem, IntegrityError
from replay.ledger import LocalSubjectKeys, SQLiteLedger, pseudonym
from replay.ledger.chain import GENESIS
from replay.ledger.group_commit import GroupCommit
from tests.factories import ledger_decision, write_decisions


@pytest.fixture
def ledger(tmp_path):
    return SQLiteLedger(
        tmp_path / "ledger.db", keys=LocalSubjectKeys(tmp_path / "keys" / "subjects.db")
    )


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


def test_a_commit_is_flushed_to_disk_before_append_returns(ledger, monkeypatch):
    """Commits skip SQLite's own sync under the lock; the writer must then fsync the WAL
    file itself, or an acknowledged decision could be lost with the machine's power."""
    flushed = []
    real_fsync = os.fsync

    def fsync(descriptor):  # what the flushed file held when it was flushed
        flushed.append(
            (os.fstat(descriptor).st_ino, Path(f"/proc/self/fd/{descriptor}").read_bytes())
        )
        real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", fsync)
    entry = ledger.record(ledger_decision(1))
    wal = Path(f"{ledger.path}-wal").stat().st_ino
    assert any(inode == wal and entry.txn_id.encode() in held for inode, held in flushed)


def test_after_a_failed_flush_no_later_flush_acknowledges_anything(ledger, monkeypatch):
    """A commit made while an earlier one's flush was failing (group commit flushes one
    batch while the next commits) is never acknowledged: the kernel may have dropped
    the earlier pages, and a second fsync could succeed without them."""
    ledger.record(ledger_decision(0))
    ledger.append([ledger_decision(1)], durable=False)  # committed, its flush to come
    real_fsync = os.fsync

    def failing(descriptor):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing)
    with pytest.raises(EnvironmentProblem, match="refused to flush"):
        ledger.flush()
    monkeypatch.setattr(os, "fsync", real_fsync)  # the disk answers again
    with pytest.raises(EnvironmentProblem, match="restart to recover"):
        ledger.flush()
    with (
        ThreadPoolExecutor(1) as other,  # another thread: its own descriptor of the WAL
        pytest.raises(EnvironmentProblem, match="restart to recover"),
    ):
        other.submit(ledger.flush).result()
    with pytest.raises(EnvironmentProblem, match="restart to recover"):
        ledger.record(ledger_decision(2))


def test_group_commit_shares_transactions_and_loses_nothing(ledger):
    """16 threads recording at once: every caller gets its own entry back, committed,
    in fewer transactions than entries; the chain holds every one."""
    commits = []
    append = ledger.append

    def counting(entries, **options):
        commits.append(len(entries))
        return append(entries, **options)

    ledger.append = counting
    group = GroupCommit(ledger)
    with ThreadPoolExecutor(16) as pool:
        stored = list(
            pool.map(lambda i: group.record(ledger_decision(i, subject="s_1")), range(800))
        )
    assert [entry.seed for entry in stored] == list(range(800))
    assert all(entry.inputs["income"] == 1000.0 + entry.seed for entry in stored)
    assert sum(commits) == 800 and len(commits) < 800 and max(commits) > 1
    assert ledger.verify().entries == 800
    assert sorted(e.seed for e in ledger.list()) == list(range(800))


def test_a_callers_entries_are_consecutive_and_committed_all_or_none(ledger):
    """Eight threads each record five entries at once among others recording one: each
    caller's five are next to each other in the chain; five with one refused entry
    among them are all refused, the other callers' kept."""
    taken = ledger.record(ledger_decision(0)).txn_id
    group = GroupCommit(ledger)

    def five(first: int) -> list:
        entries = [ledger_decision(first + i) for i in range(5)]
        if first == 300:
            entries[2] = ledger_decision(302, txn_id=taken)
        return group.record_all(entries)

    with ThreadPoolExecutor(16) as pool:
        many = [pool.submit(five, 100 * caller) for caller in range(1, 9)]
        single = [pool.submit(group.record, ledger_decision(1000 + i)) for i in range(40)]
        outcomes = [future.exception() for future in many + single]
    assert isinstance(outcomes[2], BadInput)
    assert [o for i, o in enumerate(outcomes) if i != 2] == [None] * 47
    for caller, future in enumerate(many, start=1):
        if caller != 3:
            stored = future.result()
            assert [entry.seed for entry in stored] == [100 * caller + i for i in range(5)]
            assert [entry.seq for entry in stored] == list(range(stored[0].seq, stored[0].seq + 5))
    assert not any(300 <= entry.seed < 305 for entry in ledger.list())
    assert ledger.verify().entries == 1 + 7 * 5 + 40


def test_one_bad_entry_in_a_group_fails_only_its_caller(ledger):
    """The first commit is held until nine more callers queue, so the bad entry is in a
    batch of nine that the ledger refuses as a whole."""
    taken = ledger.record(ledger_decision(0)).txn_id
    group = GroupCommit(ledger)
    batches = []
    append = ledger.append

    def gated(entries, **options):
        if not batches:
            while len(group._queue) < 9:
                time.sleep(0.001)
        batches.append(len(entries))
        return append(entries, **options)

    ledger.append = gated
    entries = [ledger_decision(i, txn_id=taken if i == 5 else None) for i in range(1, 11)]
    with ThreadPoolExecutor(10) as pool:
        first = pool.submit(group.record, entries[0])
        while not batches and not group._committing:
            time.sleep(0.001)
        futures = [first] + [pool.submit(group.record, entry) for entry in entries[1:]]
        outcomes = [future.exception() for future in futures]
    assert batches[:2] == [1, 9]  # the nine refused together, then one by one
    assert isinstance(outcomes[4], BadInput)
    assert [o for i, o in enumerate(outcomes) if i != 4] == [None] * 9
    assert ledger.verify().entries == 10
