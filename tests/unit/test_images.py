import copy
import json
from pathlib import Path

import pytest
from replay.images.base import qualified, repository_of
from replay.images.build import (
    check_fingerprint,
    environment_tag,
    fingerprint_difference,
    render_deployment,
    render_environment,
)
from replay.manifests.manifest import Manifest

from replay.errors import IntegrityError
from tests.factories import manifest_document


@pytest.mark.parametrize(
    ("reference", "repository"),
    [
        ("python:3.11-slim", "python"),
        ("127.0.0.1:5000/replay/python:3.11-bookworm", "127.0.0.1:5000/replay/python"),
        ("127.0.0.1:5000/replay/python", "127.0.0.1:5000/replay/python"),
        ("reg.example/x@sha256:" + "a" * 64, "reg.example/x"),
    ],
)
def test_repository_of(reference, repository):
    assert repository_of(reference) == repository


@pytest.fixture
def manifest():
    return Manifest(manifest_document())


@pytest.fixture
def fingerprint():
    return {
        "python": "3.11.2",
        "runner_sha256": "7" * 64,
        "distributions": {"joblib": "1.4.2", "numpy": "2.1.3", "pip": "23.0.1"},
        "model_files": {"model/model.joblib": "2" * 64},
    }


def test_matching_fingerprint_passes(manifest, fingerprint):
    check_fingerprint(manifest, fingerprint)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f["model_files"].update({"model/model.joblib": "9" * 64}), "model.joblib"),
        (lambda f: f["model_files"].update({"model/extra.bin": "9" * 64}), "extra.bin"),
        (lambda f: f["distributions"].update(numpy="2.2.0"), "numpy"),
        (lambda f: f["distributions"].pop("joblib"), "joblib"),
        (lambda f: f.update(python="3.12.1"), "Python"),
        (lambda f: f.update(runner_sha256="8" * 64), "runner"),
        (
            lambda f: f.update(environment={"modified": ["lib/site-packages/numpy/core.py"]}),
            "lib/site-packages/numpy/core.py differs from the hash its distribution's RECORD",
        ),
    ],
)
def test_a_differing_image_is_refused(manifest, fingerprint, change, message):
    changed = copy.deepcopy(fingerprint)
    change(changed)
    with pytest.raises(IntegrityError, match=message):
        check_fingerprint(manifest, changed)


def test_a_fingerprint_difference_names_the_file(fingerprint):
    recorded = {
        **fingerprint,
        "source_files": {"src/app.py": "1" * 64},
        "environment": {"distributions": {"numpy": "3" * 64}, "modified": []},
    }
    changed = copy.deepcopy(recorded)
    changed["source_files"]["src/app.py"] = "4" * 64
    assert fingerprint_difference(recorded, changed) == (
        "source_files: src/app.py: recorded 111111111111, found 444444444444"
    )
    changed = copy.deepcopy(recorded)
    changed["environment"] = {"distributions": {"numpy": "5" * 64}, "modified": ["numpy/a.py"]}
    assert fingerprint_difference(recorded, changed) == (
        "numpy/a.py differs from its distribution's RECORD hash"
    )
    assert fingerprint_difference(recorded, recorded) == "no difference"


def test_containerfiles_pin_base_by_digest_and_label_the_manifest(manifest):
    environment = render_environment(manifest)
    assert f"FROM {manifest.image.base}\n" in environment
    assert "--no-index" in environment and "--require-hashes" in environment
    environment = environment_tag(manifest, "buildah 1.28.2")
    text = render_deployment(manifest, environment)
    assert f"FROM {environment}\n" in text
    assert f"replay.manifest_id={manifest.manifest_id}" in text
    assert "OMP_NUM_THREADS=1" in text
    assert "USER 10001:10001" in text


def test_only_manifests_of_recipe_2_compile_their_bytecode(manifest):
    """Older manifests' images were recorded without bytecode: a rebuild lays them out
    as they were, so their fingerprints still match."""
    assert manifest.image.recipe == 2
    assert "/tmp/replay/bytecode.py /opt/venv/lib" in render_environment(manifest)
    document = manifest_document()
    del document["image"]["recipe"]  # as manifests were captured before
    assert "bytecode.py /opt" not in render_environment(Manifest(document))


def test_bytecode_is_the_same_bytes_every_time_and_a_shipped_pyc_is_kept(tmp_path):
    import importlib.util

    from replay.images import bytecode

    package = tmp_path / "lib" / "site-packages" / "package"
    package.mkdir(parents=True)
    (package / "module.py").write_text("VALUE = 1\n")
    (package / "shipped.py").write_text("VALUE = 2\n")
    shipped = Path(importlib.util.cache_from_source(str(package / "shipped.py")))
    shipped.parent.mkdir()
    shipped.write_bytes(b"as the wheel's RECORD lists it")
    assert bytecode.uncompiled([str(tmp_path)]) == [str(package / "module.py")]

    compiled = []
    for _ in range(2):
        for path in bytecode.uncompiled([str(tmp_path)]):
            bytecode.compile_one(path)
        written = Path(importlib.util.cache_from_source(str(package / "module.py")))
        compiled.append(written.read_bytes())
        (package / "module.py").touch()  # another time: the same bytes
        written.unlink()
    assert compiled[0] == compiled[1]
    assert int.from_bytes(compiled[0][4:8], "little") == 0b11  # checked-hash
    assert shipped.read_bytes() == b"as the wheel's RECORD lists it"


@pytest.mark.parametrize("version", ["2", "3"])
def test_an_older_runner_replays_single_decisions_but_refuses_batches(version):
    from replay.images.container import OldRunner, RunnerContainer

    runner = RunnerContainer.__new__(RunnerContainer)  # no container: refused before I/O
    runner.hello = {"runner": version}
    with pytest.raises(OldRunner, match=f"protocol {version}.*captured again"):
        runner.request({"rows": 2, "columns": {"a": [1, 2]}, "seed": 0})


@pytest.mark.parametrize(
    ("reference", "named"),
    [
        ("python@sha256:" + "1" * 64, "docker.io/library/python@sha256:" + "1" * 64),
        ("team/python:3.11", "docker.io/team/python:3.11"),
        ("127.0.0.1:5000/replay/python:3.11", "127.0.0.1:5000/replay/python:3.11"),
        ("ghcr.io/team/python", "ghcr.io/team/python"),
        ("localhost/replay/environment:x", "localhost/replay/environment:x"),
    ],
)
def test_a_base_is_named_with_its_registry_for_the_builder(reference, named):
    assert qualified(reference) == named


class _ScriptedRunner:
    """A RunnerContainer's request path with the socket and the stream replaced: what
    it sends is kept, its answer scripted, closing noted."""

    def __init__(self, version: str, answer: dict):
        from replay.images.container import RunnerContainer

        class Scripted(RunnerContainer):
            def _read_line(self, timeout):
                return {"id": self.sent[-1]["id"], **answer}

            def close(self):
                self.closed = True

        class Socket:
            def sendall(inner, data: bytes) -> None:
                self.runner.sent.append(json.loads(data))

        from replay.images.container import Sandbox

        self.runner = Scripted.__new__(Scripted)
        self.runner.hello, self.runner._count, self.runner._raw = {"runner": version}, 0, Socket()
        self.runner.sandbox = Sandbox()
        self.runner.sent, self.runner.closed = [], False


def test_a_batch_travels_packed_to_a_runner_of_protocol_9_and_as_lists_to_older_ones():
    import numpy as np
    from replay.images.runner import pack_column

    income = np.linspace(0, 1, 40)
    answer = {"columns": {"score": pack_column([0.5] * 40), "band": pack_column(["a"] * 40)}}
    request = {"rows": 40, "columns": {"income": income}, "shared": {}, "seed": 0}
    new = _ScriptedRunner("9", answer).runner
    got = new.request(request)
    assert new.sent[0]["pack"] is True
    assert new.sent[0]["columns"]["income"] == pack_column(income.tolist())
    assert got["columns"] == {"score": [0.5] * 40, "band": ["a"] * 40}
    arrays = new.request(request, arrays=True)["columns"]
    assert arrays["score"].dtype == np.float64 and list(arrays["band"]) == ["a"] * 40
    old = _ScriptedRunner("8", {"columns": {"score": [0.5] * 40}}).runner
    assert old.request(request)["columns"] == {"score": [0.5] * 40}
    assert "pack" not in old.sent[0] and old.sent[0]["columns"]["income"] == income.tolist()


@pytest.mark.parametrize(
    ("columns", "problem"),
    [
        ({"band": {"strings": None, "index": "AAAAAA=="}}, "needs a list of strings"),
        ({"band": {"strings": "ab", "index": "AAAAAA=="}}, "needs a list of strings"),
        ({"flag": {"b1": "AAI="}}, "other than 0 and 1"),
        ({"score": {"f8": "AAAA AAAA AAA="}}, "packed answer is broken"),
        ({"score": [0.5]}, "answered 1 values of 'score' for 2 rows"),
    ],
)
@pytest.mark.parametrize("arrays", [False, True])
def test_a_broken_answer_is_the_runners_failure_and_closes_it(columns, problem, arrays):
    from replay.images.container import RunnerFailed

    runner = _ScriptedRunner("9", {"columns": columns}).runner
    with pytest.raises(RunnerFailed, match=problem):
        runner.request({"rows": 2, "columns": {"a": [1, 2]}, "seed": 0}, arrays=arrays)
    assert runner.closed
