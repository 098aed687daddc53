"""A lock's key, and the records that let captures reuse a lock (folder stores only)."""

import json
from pathlib import Path

import pytest
from replay.manifests.lock import (
    compile_progress,
    lock_inputs,
    resolver_settings,
    unmet_requirement,
)

from replay.settings import load_settings
from replay.stores.locks import Locks, lock_record, record_problem
from tests.factories import LOCK

REQUIREMENTS = "joblib==1.4.2\nnumpy\n"
MARKERS = {
    "implementation_name": "cpython",
    "os_name": "posix",
    "platform_machine": "x86_64",
    "platform_python_implementation": "CPython",
    "platform_system": "Linux",
    "python_full_version": "3.11.2",
    "python_version": "3.11",
    "sys_platform": "linux",
}
PLATFORMS = ["manylinux_2_36_x86_64", "manylinux2014_x86_64"]
SECRET = "s3cr3t-t0ken"
INDEX = {
    "global.index-url": f"https://alice:{SECRET}@pypi.internal.example/simple",
    "global.extra-index-url": "file:///opt/pypi/simple",
    "global.find-links": "/opt/wheels",
    ":env:.constraint": "/etc/pip/constraints.txt",
}
WHEELS = [
    {
        "name": "joblib",
        "version": "1.4.2",
        "filename": "joblib-1.4.2-py3-none-any.whl",
        "sha256": "06d478d5674cbc267e7496a410ee875abd68e4340feff4490bcb7afb88060ae6",
    },
    {
        "name": "numpy",
        "version": "2.1.3",
        "filename": "numpy-2.1.3-cp311-cp311-manylinux_2_17_x86_64.whl",
        "sha256": "a" * 64,
    },
]


def inputs(requirements=REQUIREMENTS, platforms=PLATFORMS, index=INDEX, **markers):
    return lock_inputs(requirements.encode(), platforms, index, {**MARKERS, **markers})


def test_the_same_inputs_give_the_same_key():
    assert inputs().key == inputs().key
    assert len(inputs().key) == 64


@pytest.mark.parametrize(
    "changed",
    [
        {"requirements": REQUIREMENTS + "scipy\n"},
        {"requirements": REQUIREMENTS.replace("1.4.2", "1.4.0")},
        {"requirements": REQUIREMENTS + "\n"},  # the text exactly, as it was locked
        {"python_full_version": "3.11.9"},
        {"platform_machine": "aarch64"},
        {"sys_platform": "darwin"},
        {"platforms": ["manylinux_2_28_x86_64"]},
        {"platforms": ["manylinux_2_36_aarch64", "manylinux2014_aarch64"]},
        {"index": {**INDEX, "global.index-url": "https://pypi.org/simple"}},
        {"index": {**INDEX, "global.extra-index-url": "file:///srv/other/simple"}},
        {"index": {**INDEX, "global.find-links": "/srv/wheels"}},
        {"index": {**INDEX, ":env:.constraint": "/etc/other.txt"}},
        {"index": {**INDEX, ":env:.no-index": "1"}},
        {"index": {key: value for key, value in INDEX.items() if "find-links" not in key}},
    ],
)
def test_any_input_changed_changes_the_key(changed):
    assert inputs(**changed).key != inputs().key


def test_only_what_the_resolver_sees_is_read_from_pips_configuration(tmp_path):
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("numpy<3\n")
    listing = (
        "global.cert='/etc/ssl/certs/ca-certificates.crt'\n"
        ":env:.default-timeout='180'\n"
        f"global.index-url='https://alice:{SECRET}@pypi.internal.example/simple'\n"
        f"global.constraint='{constraints}'\n"
        ":env:.find-links='/opt/wheels'\n"
    )
    found = resolver_settings(listing)
    assert set(found) == {
        "global.index-url",
        "global.constraint",
        "global.constraint#0.sha256",
        ":env:.find-links",
    }
    # a certificate or a timeout changes nothing the resolver sees
    other_cert = listing.replace("ca-certificates.crt", "other.crt").replace("180", "30")
    assert resolver_settings(other_cert) == found
    # the same constraint file name with other pins is another lock
    constraints.write_text("numpy<2\n")
    assert resolver_settings(listing) != found


def test_the_key_and_the_record_never_hold_an_index_address_or_a_credential():
    made = inputs()
    record = lock_record(made, LOCK, WHEELS)
    for text in (made.key, json.dumps(made.document()), record.decode()):
        for secret in (SECRET, "alice", "pypi.internal.example", "/opt/pypi", "/opt/wheels"):
            assert secret not in text
        assert "constraints.txt" not in text


def test_a_record_as_written_is_reusable():
    assert record_problem(lock_record(inputs(), LOCK, WHEELS), inputs(), REQUIREMENTS) is None
    assert record_problem(lock_record(inputs(), LOCK, None), inputs(), REQUIREMENTS) is None


def edited(record: bytes, **changes) -> bytes:
    document = json.loads(record)
    document.update(changes)
    return json.dumps(document).encode()


def relocked_text(lock: str) -> dict:
    """The lock edited, with its recorded sha256 made to match (a careful forger)."""
    from replay.manifests.canonical import sha256_bytes

    return {"lock": lock, "lock_sha256": sha256_bytes(lock.encode())}


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"lock": LOCK.replace("1.4.2", "1.3.0")}, "edited"),
        ({"lock_sha256": "0" * 64}, "edited"),
        (relocked_text(LOCK.replace("joblib==1.4.2", "joblib==1.3.0")), "pinned at 1.3.0"),
        (relocked_text(LOCK.split("numpy")[0]), "numpy is not pinned"),
        (relocked_text("joblib>=1 --hash=sha256:" + "c" * 64), "does not parse"),
        ({"key": "f" * 64}, "another key"),
        ({"inputs": {**inputs().document(), "platforms": ["win_amd64"]}}, "does not hash"),
        ({"wheels": [{**WHEELS[0], "sha256": "d" * 64}, WHEELS[1]]}, "not a file the lock"),
        ({"wheels": WHEELS[:1]}, "one per locked"),
        ({"format": "something else"}, "not a replay lock record"),
    ],
)
def test_a_record_edited_or_misplaced_is_not_reused(change, why):
    record = edited(lock_record(inputs(), LOCK, WHEELS), **change)
    assert why in (record_problem(record, inputs(), REQUIREMENTS) or "")


def test_a_record_is_not_reused_for_other_inputs():
    record = lock_record(inputs(), LOCK, WHEELS)
    other = inputs(python_full_version="3.11.9")
    assert "another key" in (record_problem(record, other, REQUIREMENTS) or "")
    assert "not JSON" in (record_problem(b"{", inputs(), REQUIREMENTS) or "")


@pytest.mark.parametrize(
    ("requirements", "unmet"),
    [
        ("joblib==1.4.2\nnumpy>=2 ; python_version < '3'\n", None),  # a marker: not judged
        ("Joblib[extra] == 1.4.2  # pinned\n-c constraints.txt\nnumpy>=1,<3\n", None),
        ("joblib==1.4.3\n", "joblib is pinned at 1.4.2, not 1.4.3"),
        ("scipy\n", "scipy is not pinned"),
    ],
)
def test_a_lock_must_pin_what_the_requirements_ask(requirements, unmet):
    assert unmet_requirement(LOCK, requirements) == unmet


def settings_for(tmp_path: Path, machine: str = "machine"):
    return load_settings(
        {"REPLAY_HOME": str(tmp_path / "home"), "REPLAY_CACHE": str(tmp_path / machine)},
        cwd=tmp_path,
    )


def test_a_saved_lock_is_found_from_another_machine_sharing_the_stores(tmp_path):
    Locks(settings_for(tmp_path, "first")).save(inputs(), LOCK, WHEELS)
    found, problem = Locks(settings_for(tmp_path, "second")).find(inputs(), REQUIREMENTS)
    assert problem == ""
    assert found is not None
    assert (found.lock, found.wheels) == (LOCK, WHEELS)
    assert found.where == str(tmp_path / "home" / "blobs" / "locks" / f"{inputs().key}.json")
    assert (tmp_path / "second" / "locks" / f"{inputs().key}.json").is_file()  # kept here too


def test_a_stored_record_that_does_not_hold_is_not_reused_even_with_a_good_copy_here(tmp_path):
    locks = Locks(settings_for(tmp_path))
    locks.save(inputs(), LOCK, WHEELS)
    stored = tmp_path / "home" / "blobs" / "locks" / f"{inputs().key}.json"
    stored.write_bytes(stored.read_bytes().replace(b"1.4.2", b"1.4.0"))
    found, problem = locks.find(inputs(), REQUIREMENTS)
    assert found is None
    assert str(stored) in problem and "edited" in problem


def test_this_machines_copy_is_shared_when_the_stores_have_none(tmp_path):
    Locks(settings_for(tmp_path)).save(inputs(), LOCK, WHEELS)
    stored = tmp_path / "home" / "blobs" / "locks" / f"{inputs().key}.json"
    stored.unlink()
    found, problem = Locks(settings_for(tmp_path)).find(inputs(), REQUIREMENTS)
    assert found is not None and problem == ""
    assert stored.is_file()


def test_a_bad_copy_on_this_machine_alone_is_simply_made_again(tmp_path):
    locks = Locks(settings_for(tmp_path))
    locks.save(inputs(), LOCK, WHEELS)
    (tmp_path / "home" / "blobs" / "locks" / f"{inputs().key}.json").unlink()
    (tmp_path / "machine" / "locks" / f"{inputs().key}.json").write_text("{}")
    assert locks.find(inputs(), REQUIREMENTS) == (None, "")


@pytest.mark.parametrize(
    ("line", "shown"),
    [
        ("  Collecting scikit-learn==1.5.2 (from -r requirements.in (line 3))", "collecting"),
        ("    Downloading https://bob:pw@idx.example/f/scipy-1.14.1.whl (41 MB)", "downloading"),
        ("Collecting https://bob:pw@idx.example", "collecting a URL"),
        ("  Processing /home/bob/wheels/numpy-2.1.3-cp311.whl (from -r r.in)", "processing"),
        ("    Hashing scipy-1.14.1-cp311-cp311-win_amd64.whl", "hashing scipy"),
        ("                ROUND 2          ", "resolving, round 2"),
    ],
)
def test_pip_compiles_progress_names_distributions_never_addresses(line, shown):
    told = compile_progress(line)
    assert told is not None and told.startswith(shown)
    for hidden in ("bob", "pw", "idx.example", "/home"):
        assert hidden not in told


def test_other_lines_of_pip_compile_are_not_shown():
    assert compile_progress("Using indexes:") is None
    assert compile_progress("  https://bob:pw@idx.example/simple") is None
    assert compile_progress("") is None


def test_a_record_too_large_to_be_one_is_not_read_whole(tmp_path):
    from replay.stores.locks import MAX_RECORD

    locks = Locks(settings_for(tmp_path))
    locks.save(inputs(), LOCK, WHEELS)
    stored = tmp_path / "home" / "blobs" / "locks" / f"{inputs().key}.json"
    stored.write_bytes(b" " * (MAX_RECORD + 100))
    assert len(locks.shared.read(inputs().key) or b"") == MAX_RECORD + 1
    found, problem = locks.find(inputs(), REQUIREMENTS)
    assert found is None and "larger than 8 MiB" in problem
