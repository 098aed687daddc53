"""Signed checkpoints close what a hash chain alone leaves open: a cut end and a chain
rewritten (every hash recomputed) after an edit. A real SQLite ledger, tampered with as
someone with the database file would."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from replay.errors import IntegrityError
from replay.ledger import SQLiteLedger
from replay.ledger.checkpoints import MAX_CHECKPOINT_BYTES, parse_checkpoint
from replay.ledger.decisions import checkpoint_ledger, verify_ledger
from replay.settings import load_settings
from tests.factories import ledger_decision
from tests.ledger_tampering import rewritten_chain


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
    for columns in rewritten_chain(ledger, 100):
        tamper(
            ledger.path,
            "UPDATE entries SET outputs = ?, prev_hash = ?, hash = ? WHERE seq = ?",
            *(columns[name] for name in ("outputs", "prev_hash", "hash", "seq")),
        )
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
    with pytest.raises(
        IntegrityError, match=r"000000000001-junk\.json .* is not a checkpoint: it is not JSON"
    ):
        verify_ledger(settings=settings)


def checkpoint_folder(settings):
    """The folder the ledger's first checkpoint went to, and that checkpoint's fields."""
    checkpoint = checkpoint_ledger(settings=settings)
    folder = next(settings.home.rglob(checkpoint.name)).parent
    return folder, json.loads((folder / checkpoint.name).read_text())


def verify_with_the_cli(settings, timeout: float = 60) -> subprocess.CompletedProcess:
    """`replay ledger verify` as a user runs it, bounded: a hang fails the test."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("REPLAY_")}
    return subprocess.run(
        [str(Path(sys.executable).parent / "replay"), "ledger", "verify"],
        env={**environment, "REPLAY_HOME": str(settings.home)},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 4, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    return line


def test_a_null_signature_is_exit_4_naming_the_file_not_a_traceback(ledger, settings):
    folder, fields = checkpoint_folder(settings)
    (folder / "000000000150-null.json").write_text(json.dumps({**fields, "signature": None}))
    line = one_error_line(verify_with_the_cli(settings))
    assert line.startswith("error: checkpoint 000000000150-null.json in ")
    assert line.endswith("is not a checkpoint: its signature is null, not 128 hex digits")


def test_a_fifo_is_named_within_seconds_and_never_opened(ledger, settings):
    folder, _ = checkpoint_folder(settings)
    os.mkfifo(folder / "y.json")  # no writer: opening it for reading would block
    started = time.monotonic()
    line = one_error_line(verify_with_the_cli(settings, timeout=30))
    assert time.monotonic() - started < 30
    assert "checkpoint y.json in " in line and "it is a FIFO, not a regular file" in line


def padded(fields: dict) -> bytes:
    """The genuine checkpoint, still valid JSON, padded past the limit with spaces."""
    return json.dumps(fields).encode() + b" " * MAX_CHECKPOINT_BYTES


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (lambda f: json.dumps({**f, "signature": 12}), "its signature is a number, not 128"),
        (lambda f: json.dumps({**f, "signature": "zz" * 64}), "its signature is a string, not"),
        (lambda f: json.dumps({**f, "count": "200"}), "its count is a string, not a whole"),
        (lambda f: json.dumps({**f, "count": True}), "its count is a boolean, not a whole"),
        (lambda f: json.dumps({**f, "count": 2**63}), "its count is a number, not a whole"),
        (lambda f: json.dumps({**f, "count": 0}), "its count is a number, not a whole"),
        (lambda f: json.dumps({**f, "head_hash": None}), "its head_hash is null, not 64 hex"),
        (lambda f: json.dumps({**f, "time": "yesterday"}), "its time is a string, not an ISO"),
        (lambda f: json.dumps({**f, "ledger": ["x"]}), "its ledger is a list, not UTF-8 text"),
        (lambda f: json.dumps({**f, "ledger": "\ud800"}), "its ledger is a string, not UTF-8"),
        (lambda f: json.dumps({k: v for k, v in f.items() if k != "time"}), "it has no time"),
        (lambda f: "{}", "it has no ledger, no count, no head_hash, no time, no signature"),
        (
            lambda f: json.dumps({**f, "extra": 1, "x" * 50_000: 2}),
            "it has 2 unknown field(s), the first 'extra'",
        ),
        (lambda f: json.dumps({**f, "x" * 50_000: 2}), "the first 'xxxxxxxxx"),
        (lambda f: json.dumps([f]), "it holds a list, not a JSON object"),
        (lambda f: "null", "it holds null, not a JSON object"),
        (lambda f: '"text"', "it holds a string, not a JSON object"),
        (lambda f: "", "it is not JSON"),
        (lambda f: "[" * 60_000, "it is not JSON"),  # too deep for json's recursion
        (lambda f: b"\xff\xfe\x00\x00junk", "its bytes are not UTF-8 text"),
        (lambda f: json.dumps(f).encode("utf-16"), "its bytes are not UTF-8 text"),
        (padded, "it holds more than 64 KiB"),
    ],
)
def test_malformed_checkpoint_content_is_named(ledger, settings, content, why):
    folder, fields = checkpoint_folder(settings)
    data = content(fields)
    (folder / "000000000150-bad.json").write_bytes(
        data if isinstance(data, bytes) else data.encode()
    )
    with pytest.raises(IntegrityError) as raised:
        verify_ledger(settings=settings)
    message = str(raised.value)
    assert message.startswith(f"checkpoint 000000000150-bad.json in {folder} is not a checkpoint")
    assert why in message
    assert len(message) < len(str(folder)) + 150  # one short line, whatever the file holds


def test_a_huge_checkpoint_is_not_read_whole(ledger, settings, monkeypatch):
    folder, _ = checkpoint_folder(settings)
    (folder / "000000000150-huge.json").write_bytes(b" " * (64 * 2**20))
    parsed: list[int] = []

    def spy(data: bytes, where: str):
        parsed.append(len(data))
        return parse_checkpoint(data, where)

    monkeypatch.setattr("replay.ledger.checkpoints.parse_checkpoint", spy)
    with pytest.raises(IntegrityError, match=r"000000000150-huge\.json .* more than 64 KiB"):
        verify_ledger(settings=settings)
    assert max(parsed) == MAX_CHECKPOINT_BYTES + 1


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (lambda path, genuine: path.mkdir(), "a folder"),
        (lambda path, genuine: path.symlink_to(genuine), "a symbolic link"),
        (lambda path, genuine: path.symlink_to("/dev/zero"), "a symbolic link"),
    ],
)
def test_a_checkpoint_that_is_not_a_regular_file_is_named(ledger, settings, make, kind):
    checkpoint = checkpoint_ledger(settings=settings)
    genuine = next(settings.home.rglob(checkpoint.name))
    make(genuine.parent / "000000000150-odd.json", genuine)
    with pytest.raises(IntegrityError, match=rf"000000000150-odd\.json .* it is {kind}, not"):
        verify_ledger(settings=settings)


def test_a_name_with_control_codes_is_shown_on_one_line(ledger, settings):
    folder, _ = checkpoint_folder(settings)
    (folder / "x\n\x1b[2Jforged.json").write_text("junk")
    line = one_error_line(verify_with_the_cli(settings))
    assert "checkpoint 'x\\n\\x1b[2Jforged.json' in " in line


def test_a_written_checkpoint_parses_back_as_itself(ledger, settings):
    checkpoint = checkpoint_ledger(settings=settings)
    data = next(settings.home.rglob(checkpoint.name)).read_bytes()
    assert parse_checkpoint(data, "written") == checkpoint
