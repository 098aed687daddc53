import subprocess
import tarfile

import pytest
from replay.manifests.canonical import sha256_file
from replay.manifests.source import source_state, write_source_archive

from replay.errors import BadInput


def git(folder, *args):
    subprocess.run(["git", "-C", str(folder), *args], check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path):
    folder = tmp_path / "repo"
    (folder / "app" / "pkg").mkdir(parents=True)
    (folder / "app" / "pkg" / "mod.py").write_text("x = 1\n")
    (folder / "app" / ".gitignore").write_text("*.bin\n")
    (folder / "app" / "weights.bin").write_bytes(b"\0" * 10)
    (folder / "other.txt").write_text("outside the deployment\n")
    git(folder, "init", "-q")
    git(folder, "add", "-A")
    git(folder, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    return folder


def test_state_of_a_subdirectory(repo):
    state = source_state(repo / "app")
    assert state.subdirectory == "app"
    assert len(state.commit) == 40
    assert state.dirty is False
    (repo / "app" / "pkg" / "mod.py").write_text("x = 2\n")
    assert source_state(repo / "app").dirty is True


def test_changes_outside_the_deployment_do_not_make_it_dirty(repo):
    (repo / "other.txt").write_text("changed\n")
    assert source_state(repo / "app").dirty is False


def test_archive_is_deterministic_and_holds_only_the_deployment(repo, tmp_path):
    first, second = tmp_path / "1.tar", tmp_path / "2.tar"
    write_source_archive(repo / "app", first)
    (repo / "app" / "pkg" / "mod.py").touch()  # a new mtime must not change the bytes
    write_source_archive(repo / "app", second)
    assert sha256_file(first) == sha256_file(second)
    with tarfile.open(first) as archive:
        assert sorted(archive.getnames()) == [".gitignore", "pkg/mod.py"]


def test_archive_changes_with_content(repo, tmp_path):
    write_source_archive(repo / "app", tmp_path / "1.tar")
    (repo / "app" / "pkg" / "mod.py").write_text("x = 3\n")
    write_source_archive(repo / "app", tmp_path / "2.tar")
    assert sha256_file(tmp_path / "1.tar") != sha256_file(tmp_path / "2.tar")


def test_not_a_repository(tmp_path):
    with pytest.raises(BadInput, match="not inside a git repository"):
        source_state(tmp_path)


def test_a_state_folder_inside_the_deployment_is_neither_dirty_nor_source(repo, tmp_path):
    (repo / "app" / ".replay").mkdir()
    (repo / "app" / ".replay" / "ledger.db").write_bytes(b"state")
    state = source_state(repo / "app")
    assert not state.dirty
    archive = tmp_path / "source.tar"
    write_source_archive(repo / "app", archive)
    with tarfile.open(archive) as opened:
        assert not any(".replay" in name for name in opened.getnames())
    (repo / "app" / "new.py").write_text("y = 2\n")  # real changes still count
    assert source_state(repo / "app").dirty
