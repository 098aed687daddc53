import pytest
from replay.images import host

from replay.errors import EnvironmentProblem


def test_without_root_it_says_what_to_install(monkeypatch):
    monkeypatch.setattr(host.os, "geteuid", lambda: 1000)
    with pytest.raises(EnvironmentProblem, match=r"apt-get install docker\.io"):
        host.apt_install("docker.io")


def test_without_apt_it_says_what_to_install(monkeypatch):
    monkeypatch.setattr(host.shutil, "which", lambda name: None)
    with pytest.raises(EnvironmentProblem, match="missing docker-registry"):
        host.apt_install("docker-registry")


def test_a_registry_replay_does_not_own_is_not_started(tmp_path):
    with pytest.raises(EnvironmentProblem, match="does not answer"):
        host.ensure_registry("127.0.0.2:5999", tmp_path)
