"""The ledger on a real PostgreSQL server: the same chain, the same refusals, many
writer processes, and the CLI pointed at it with REPLAY_LEDGER."""

from __future__ import annotations

import json
import multiprocessing
from datetime import datetime
from pathlib import Path

import psycopg
import pytest

from replay.errors import BadInput, EnvironmentProblem, Erased
from replay.ledger import LocalSubjectKeys, open_ledger, open_ledger_at
from replay.ledger.chain import FORMAT, GENESIS, NewEntry
from replay.ledger.decisions import checkpoint_ledger
from replay.ledger.postgres import PostgresLedger
from replay.settings import load_settings
from tests.factories import ledger_decision, write_decisions
from tests.integration.conftest import free_port, run_cli
from tests.ledger_tampering import rewritten_chain

pytestmark = pytest.mark.integration


def test_the_chain_lookups_and_filters_hold(postgres, tmp_path):
    ledger = open_ledger_at(postgres, LocalSubjectKeys(tmp_path / "keys" / "subjects.db"))
    assert isinstance(ledger, PostgresLedger)
    first, second = ledger.append(
        [ledger_decision(1, subject="s_1"), ledger_decision(2, deployment="b")]
    )
    ledger.record(ledger_decision(3, kind="review", refers_to=first.txn_id))
    assert (first.seq, first.prev_hash, second.prev_hash) == (1, GENESIS, first.hash)
    again = ledger.get(second.txn_id)
    assert again == second
    assert again.outputs["score"].hex() == (2 / 7).hex()
    assert again.inputs["name"] == "Zoë"
    assert [e.seed for e in ledger.list(deployment="credit")] == [1]
    assert [e.seed for e in ledger.list(subject="s_1")] == [1]
    assert [e.seed for e in ledger.list(kind=None)] == [1, 2, 3]
    assert [e.seed for e in ledger.list(kind="review", refers_to=first.txn_id)] == [3]
    assert ledger.list(since=datetime(2999, 1, 1)) == []
    with pytest.raises(BadInput, match="no transaction txn_nope"):
        ledger.get("txn_nope")
    with pytest.raises(BadInput, match="refused the entry"):
        ledger.record(ledger_decision(4, txn_id=first.txn_id))
    report = ledger.verify()
    assert (report.ok, report.entries) == (True, 3)


def test_a_format_1_ledger_upgrades_seals_and_erases(postgres, tmp_path):
    """The entries a SQLite ledger held before entry formats, copied into a table of
    that time: they verify, and sealed entries join them and can be erased."""
    dump = (Path(__file__).parent.parent / "fixtures" / "ledger-format-1.sql").read_text()
    table = dump[dump.index("CREATE TABLE") : dump.index(");", dump.index("CREATE TABLE")) + 2]
    rows = [line for line in dump.splitlines() if line.startswith("INSERT INTO")]
    with psycopg.connect(postgres, autocommit=True) as connection:
        connection.execute(table)
        for row in rows:
            connection.execute(row)
    keys = LocalSubjectKeys(tmp_path / "keys" / "subjects.db")
    ledger = open_ledger_at(postgres, keys)
    assert ledger.verify().entries == 3
    sealed = ledger.record(ledger_decision(4, subject="s_" + "cd" * 16))
    with psycopg.connect(postgres) as connection:
        stored = connection.execute(
            "SELECT inputs, format, sealed FROM entries WHERE seq = 4"
        ).fetchone()
    assert stored[0].startswith("aes-256-gcm:") and stored[1:] == (FORMAT, 1)
    assert ledger.get(sealed.txn_id).inputs["name"] == "Zoë"
    destroyed = keys.destroy(sealed.subject)  # as `replay subject erase` does
    ledger.record(
        NewEntry(
            manifest_id="",
            deployment="",
            kind="erasure",
            subject=sealed.subject,
            inputs={},
            outputs={"entries": 1, "key_ids": [destroyed]},
        )
    )
    with pytest.raises(Erased):
        ledger.get(sealed.txn_id).readable()
    assert ledger.get(sealed.txn_id).erased_on is not None
    report = ledger.verify()
    assert report.ok and report.entries == 5


def test_updates_deletes_and_truncation_are_refused(postgres):
    open_ledger_at(postgres).append([ledger_decision(1), ledger_decision(2)])
    with psycopg.connect(postgres, autocommit=True) as connection:
        for sql in (
            "UPDATE entries SET outputs = '{}' WHERE seq = 1",
            "DELETE FROM entries WHERE seq = 2",
            "TRUNCATE entries",
        ):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                connection.execute(sql)
    assert open_ledger_at(postgres).verify().entries == 2


def test_a_superuser_edit_is_named_by_verify(postgres):
    ledger = open_ledger_at(postgres)
    entries = ledger.append([ledger_decision(i) for i in range(1, 6)])
    changed = entries[2].outputs_json.replace("approved", "approveD")
    with psycopg.connect(postgres, autocommit=True) as connection:
        connection.execute("ALTER TABLE entries DISABLE TRIGGER USER")
        connection.execute("UPDATE entries SET outputs = %s WHERE seq = 3", [changed])
        connection.execute("DELETE FROM entries WHERE seq = 5")
    report = ledger.verify()
    assert (report.ok, report.first_bad) == (False, 3)


def test_concurrent_writer_processes_lose_nothing_and_never_fork(postgres):
    workers = [
        multiprocessing.Process(target=write_decisions, args=(postgres, w, 100)) for w in range(8)
    ]
    for process in workers:
        process.start()
    for process in workers:
        process.join(120)
        assert process.exitcode == 0
    ledger = open_ledger_at(postgres)
    entries = ledger.list()
    assert sorted(e.seed for e in entries) == sorted(
        w * 10_000 + i for w in range(8) for i in range(100)
    )
    assert [e.seq for e in entries] == list(range(1, 801))
    assert ledger.verify().ok


def test_the_cli_reads_a_postgres_ledger(postgres):
    stored = open_ledger_at(postgres).append([ledger_decision(1), ledger_decision(2)])
    env = {"REPLAY_LEDGER": postgres}
    listed = run_cli("ledger", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert [e["txn_id"] for e in json.loads(listed.stdout)] == [e.txn_id for e in stored]
    verified = run_cli("ledger", "verify", "--json", env=env)
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["entries"] == 2


def test_an_unreachable_server_is_one_line_exit_3(postgres_server):
    url = f"postgresql://replay:secret@127.0.0.1:{free_port()}/nowhere"
    with pytest.raises(EnvironmentProblem, match="cannot be reached") as raised:
        open_ledger_at(url)
    assert "secret" not in str(raised.value)
    result = run_cli("ledger", "verify", env={"REPLAY_LEDGER": url})
    assert result.returncode == 3
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ledger postgresql://replay@127.0.0.1:")


def test_machines_sharing_a_postgres_key_store_seal_alike_and_erase_everywhere(
    postgres, postgres_server, tmp_path
):
    """Two machines writing one PostgreSQL ledger, each with its own connection to one
    PostgreSQL key store (another database): both seal a subject under the same key,
    each reads what the other wrote, and one erasure holds for both."""
    from replay.stores.subject_keys import PostgresSubjectKeys, open_subject_keys

    keys_url = postgres_server()
    first, second = (open_ledger_at(postgres, open_subject_keys(keys_url)) for _ in range(2))
    assert isinstance(first.keys, PostgresSubjectKeys)
    subject = "s_" + "ef" * 16
    mine = first.record(ledger_decision(1, subject=subject))
    theirs = second.record(ledger_decision(2, subject=subject))
    assert second.get(mine.txn_id).inputs["income"] == 1001.0
    assert first.get(theirs.txn_id).inputs["income"] == 1002.0
    destroyed = second.keys.destroy(subject)
    assert destroyed and first.keys.find(subject, destroyed) is None
    first.record(
        NewEntry(
            manifest_id="",
            deployment="",
            kind="erasure",
            subject=subject,
            inputs={},
            outputs={"entries": 2, "key_ids": [destroyed]},
        )
    )
    for ledger in (first, second):
        assert all(ledger.get(e.txn_id).erased_on for e in (mine, theirs))
    assert first.verify().entries == 3


@pytest.fixture
def checkpointed(postgres, tmp_path):
    """100 entries in PostgreSQL, their head checkpointed in a local folder; the
    environment the CLI then runs in."""
    environment = {"REPLAY_HOME": str(tmp_path / "home"), "REPLAY_LEDGER": postgres}
    settings = load_settings(environment, cwd=tmp_path)
    open_ledger(settings).append([ledger_decision(i) for i in range(1, 101)])
    checkpoint = checkpoint_ledger(settings=settings)
    return environment, next(settings.home.rglob(checkpoint.name))


def as_superuser(url: str, *statements: tuple[str, list]) -> None:
    """What the database's owner can do despite the triggers."""
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("ALTER TABLE entries DISABLE TRIGGER USER")
        for sql, parameters in statements:
            connection.execute(sql, parameters)


def refused(environment: dict[str, str | None]) -> str:
    """`replay ledger verify`'s one line, exit 4."""
    result = run_cli("ledger", "verify", env={"REPLAY_CHECKPOINTS": None, **environment})
    assert result.returncode == 4, result.stdout + result.stderr
    (line,) = result.stderr.strip().splitlines()
    return line


def test_a_deleted_row_is_named(checkpointed):
    environment, _ = checkpointed
    as_superuser(environment["REPLAY_LEDGER"], ("DELETE FROM entries WHERE seq = 40", []))
    assert refused(environment) == "error: ledger entry 40 is missing"


def test_a_cut_end_is_named_by_its_checkpoint(checkpointed):
    environment, _ = checkpointed
    as_superuser(environment["REPLAY_LEDGER"], ("DELETE FROM entries WHERE seq > 60", []))
    assert open_ledger_at(environment["REPLAY_LEDGER"]).verify().ok  # the chain cannot tell
    line = refused(environment)
    assert line.startswith("error: ledger entry 61 is missing: the ledger ends at entry 60")
    assert line.endswith("covers 100 entries (its end was cut off)")


def test_a_rewritten_chain_is_named_by_its_checkpoint(checkpointed):
    environment, _ = checkpointed
    url = environment["REPLAY_LEDGER"]
    ledger = open_ledger_at(url)
    as_superuser(
        url,
        *(
            (
                "UPDATE entries SET outputs = %s, prev_hash = %s, hash = %s WHERE seq = %s",
                [columns[name] for name in ("outputs", "prev_hash", "hash", "seq")],
            )
            for columns in rewritten_chain(ledger, 40)
        ),
    )
    assert ledger.verify().ok  # the chain alone cannot tell
    line = refused(environment)
    assert line.startswith("error: ledger entry 100 differs from a checkpoint signed at ")
    assert line.endswith("the chain up to it was rewritten")


def test_a_forged_or_null_signed_checkpoint_is_named(checkpointed):
    environment, genuine = checkpointed
    fields = json.loads(genuine.read_text())
    forged = genuine.with_name("000000000060-0000000000000000.json")
    forged.write_text(json.dumps({**fields, "count": 60, "head_hash": "0" * 64}))
    assert refused(environment) == (
        "error: ledger entry 60 has a checkpoint (000000000060-0000000000000000.json) "
        "whose signature does not hold: it was forged or damaged"
    )
    forged.write_text(json.dumps({**fields, "signature": None}))
    line = refused(environment)
    assert line.startswith("error: checkpoint 000000000060-0000000000000000.json in ")
    assert line.endswith("is not a checkpoint: its signature is null, not 128 hex digits")
