"""The runner protocol, spoken to the real runner in this process (no container)."""

import io
import itertools
import json
import random
import sys
import textwrap

import pytest
from replay.images import runner

_names = itertools.count()


@pytest.fixture
def deployment(tmp_path, monkeypatch):
    """Write a deployment module and return its entrypoint."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("REPLAY_DEPLOYMENT_DIR", str(tmp_path))
    (tmp_path / "venv").mkdir()  # the fingerprint hashes every installed file: none here
    monkeypatch.setenv("REPLAY_ENVIRONMENT_DIR", str(tmp_path / "venv"))

    def make(source: str) -> str:
        name = f"deployment_{next(_names)}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        return f"{name}:predict"

    yield make
    for name in [n for n in sys.modules if n.startswith("deployment_")]:
        del sys.modules[name]


SCORING = """
    import random

    def predict(inputs):
        return {"score": inputs["a"] * 10 + inputs["b"], "draw": random.random(), "via": "predict"}
"""


def talk(entrypoint: str, *requests: dict, seed: int = 0) -> list[dict]:
    lines = [json.dumps({"type": "load", "seed": seed})] + [json.dumps(r) for r in requests]
    protocol = io.StringIO()
    runner.serve(entrypoint, io.StringIO("\n".join(lines) + "\n"), protocol)
    return [json.loads(line) for line in protocol.getvalue().splitlines()]


def test_nothing_is_imported_before_load(deployment):
    entrypoint = deployment("raise SystemExit('must not run')\n")
    protocol = io.StringIO()
    assert runner.serve(entrypoint, io.StringIO(""), protocol) == 0
    (hello,) = [json.loads(line) for line in protocol.getvalue().splitlines()]
    assert hello["type"] == "hello" and hello["runner"] == runner.RUNNER_VERSION
    assert entrypoint.split(":")[0] not in sys.modules


BATCH_STYLES = {
    "predict only": "",
    # draws from the global generator in sequence: the runner must notice and go row by row
    "predict_batch(rows)": """
    def predict_batch(rows):
        return [{**predict(row), "via": "batch"} for row in rows]
""",
    # the same, drawing from numpy's global generator
    "predict_batch(rows) with numpy": """
    import numpy

    def predict(inputs):
        draw = float(numpy.random.random())
        return {"score": inputs["a"] * 10 + inputs["b"], "draw": draw, "via": "predict"}

    def predict_batch(rows):
        return [{**predict(row), "via": "batch"} for row in rows]
""",
    # draws row i's numbers from its own seed, as the protocol asks of this signature
    "predict_batch(rows, seeds)": """
    def predict_batch(rows, seeds):
        draws = [random.Random(seed).random() for seed in seeds]
        return [
            {"score": row["a"] * 10 + row["b"], "draw": draw, "via": "batch"}
            for row, draw in zip(rows, draws)
        ]
""",
}


@pytest.mark.parametrize(
    ("style", "answered_by"),
    [
        ("predict only", "predict"),
        ("predict_batch(rows)", "predict"),
        ("predict_batch(rows) with numpy", "predict"),
        ("predict_batch(rows, seeds)", "batch"),
    ],
)
def test_every_row_of_a_batch_is_answered_as_that_row_alone(deployment, style, answered_by):
    entrypoint = deployment(SCORING + BATCH_STYLES[style])
    values = [0, 1, 2, 2, 2, 3]
    singles = [{"id": f"s{i}", "inputs": {"a": 2, "b": b}, "seed": 3} for i, b in enumerate(values)]
    batch = {"id": "b", "rows": 6, "columns": {"b": values}, "shared": {"a": 2}, "seed": 3}
    *answers, batched = talk(entrypoint, *singles, batch)[2:]
    assert batched["id"] == "b"
    for field in ("draw", "score"):
        assert batched["columns"][field] == [a["outputs"][field] for a in answers]
    assert batched["columns"]["via"] == [answered_by] * 6
    assert batched["columns"]["score"] == [20, 21, 22, 22, 22, 23]
    # the same seed for every row: one draw, not a sequence running on across rows
    assert len(set(batched["columns"]["draw"])) == 1


@pytest.mark.parametrize(
    ("style", "answered_by"),
    [
        ("predict only", "predict"),
        ("predict_batch(rows)", "predict"),
        ("predict_batch(rows) with numpy", "predict"),
        ("predict_batch(rows, seeds)", "batch"),
    ],
)
def test_a_batch_with_a_seed_per_row_answers_each_as_its_single_request(
    deployment, style, answered_by
):
    """Logged decisions, each with its own seed, replayed in one batch (protocol 6)."""
    entrypoint = deployment(SCORING + BATCH_STYLES[style])
    rows = [{"a": a, "b": b} for a, b in ((1, 2), (3, 4), (1, 2), (5, 0))]
    seeds = [11, 12, 13, 11]
    singles = [
        {"id": f"s{i}", "inputs": row, "seed": seed}
        for i, (row, seed) in enumerate(zip(rows, seeds, strict=True))
    ]
    columns = {"a": [r["a"] for r in rows], "b": [r["b"] for r in rows]}
    batch = {"id": "b", "rows": 4, "columns": columns, "seeds": seeds}
    *answers, batched = talk(entrypoint, *singles, batch)[2:]
    for field in ("draw", "score"):
        assert batched["columns"][field] == [a["outputs"][field] for a in answers]
    assert batched["columns"]["via"] == [answered_by] * 4
    draws = batched["columns"]["draw"]
    assert draws[0] == draws[3] != draws[2]  # same seed, same draw; same row, other seed
    (short,) = talk(entrypoint, {**batch, "seeds": seeds[:3]})[2:]
    assert "a batch of 4 rows needs 4 seeds, not 3" in short["error"]["message"]


def test_a_batch_that_draws_nothing_is_answered_in_one_call(deployment):
    entrypoint = deployment("""
        calls = []

        def predict(inputs):
            return predict_batch([inputs])[0]

        def predict_batch(rows):
            calls.append(len(rows))
            return [{"score": row["a"], "calls": list(calls)} for row in rows]
    """)
    (answer,) = talk(entrypoint, {"id": "b", "rows": 3, "columns": {"a": [1, 2, 3]}, "seed": 0})[2:]
    assert answer["columns"] == {"score": [1, 2, 3], "calls": [[3]] * 3}


def test_shared_fields_reach_every_row(deployment):
    entrypoint = deployment("""
        def predict(inputs):
            return {"fields": ",".join(sorted(inputs)), "a": inputs["a"]}
    """)
    (answer,) = talk(
        entrypoint,
        {"id": "b", "rows": 2, "columns": {"b": [1, 2]}, "shared": {"a": 5, "c": 6}, "seed": 0},
    )[2:]
    assert answer["columns"] == {"a": [5, 5], "fields": ["a,b,c", "a,b,c"]}


@pytest.mark.parametrize(
    ("source", "request_", "message"),
    [
        (
            SCORING,
            {"rows": 3, "columns": {"a": [1, 2, 3], "b": [1, 2]}},
            "every column must hold 3 values",
        ),
        (
            SCORING + "\n    def predict_batch(rows):\n        return rows[:1]\n",
            {"rows": 2, "columns": {"a": [1, 2], "b": [1, 2]}},
            "answered 1 of 2 rows",
        ),
        (
            """
            def predict(inputs):
                return {"x": 1} if inputs["a"] == 1 else {"y": 1}
         """,
            {"rows": 2, "columns": {"a": [1, 2]}},
            "all have the same fields",
        ),
        (
            """
            def predict(inputs):
                return 0.5 if inputs["a"] == 2 else {"x": 1}
         """,
            {"rows": 1, "columns": {"a": [2]}},
            "must return dicts",
        ),
    ],
)
def test_a_bad_batch_is_an_error_and_the_loop_goes_on(deployment, source, request_, message):
    entrypoint = deployment(source)
    bad, good = talk(
        entrypoint,
        {"id": "bad", "seed": 0, **request_},
        {"id": "ok", "inputs": {"a": 1, "b": 1}, "seed": 0},
    )[2:]
    assert bad["id"] == "bad" and message in bad["error"]["message"]
    assert good["id"] == "ok" and "outputs" in good


LOADING = """
    import os
    import random

    loaded = {}

    def load(model_dir):
        loaded["dir"] = model_dir
        loaded["files"] = sorted(os.listdir(model_dir))
        loaded["offset"] = random.random()

    def predict(inputs):
        return {"offset": loaded["offset"], "dir": loaded["dir"], "files": loaded["files"]}
"""


def test_load_gets_the_model_folder_of_the_deployment_dir(deployment, tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "weights.bin").write_bytes(b"w")
    (answer,) = talk(deployment(LOADING), {"id": "r", "inputs": {}, "seed": 1})[2:]
    assert answer["outputs"]["dir"] == str(tmp_path / "model")
    assert answer["outputs"]["files"] == ["weights.bin"]


def test_load_is_seeded_with_the_seed_of_the_load_message(deployment, tmp_path):
    (tmp_path / "model").mkdir()
    entrypoint = deployment(LOADING)
    module = entrypoint.split(":")[0]

    def offset(seed: int) -> float:
        sys.modules.pop(module, None)  # a fresh process each time, as each container is
        (answer,) = talk(entrypoint, {"id": "r", "inputs": {}, "seed": 99}, seed=seed)[2:]
        return answer["outputs"]["offset"]

    assert offset(1729) == offset(1729) == random.Random(1729).random()
    assert offset(1730) != offset(1729)


def _record_line(root, path: str) -> str:
    import base64
    import hashlib

    digest = hashlib.sha256((root / path).read_bytes()).digest()
    return f"{path},sha256={base64.urlsafe_b64encode(digest).rstrip(b'=').decode()},1"


def test_the_environment_fingerprint_checks_every_installed_file_against_its_record(tmp_path):
    site = tmp_path / "lib" / "python3.11" / "site-packages"
    (site / "pkg").mkdir(parents=True)
    (site / "pkg" / "core.py").write_text("ANSWER = 42\n")
    (site / "pkg-1.0.dist-info").mkdir()
    lines = [_record_line(site, "pkg/core.py"), "pkg-1.0.dist-info/RECORD,,"]
    (site / "pkg-1.0.dist-info" / "RECORD").write_text("\n".join(lines) + "\n")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "tool").write_text("#!/bin/sh\n")
    clean = runner.environment_content(str(tmp_path))
    assert clean["modified"] == [] and list(clean["distributions"]) == ["pkg"]
    assert list(clean["unrecorded"]) == ["bin/tool"]

    (site / "pkg" / "core.py").write_text("ANSWER = 41\n")  # a forged library file
    forged = runner.environment_content(str(tmp_path))
    assert forged["modified"] == ["lib/python3.11/site-packages/pkg/core.py"]
    assert forged["distributions"] != clean["distributions"]

    # RECORD forged to match: no longer "modified", but the distribution's digest says it
    lines[0] = _record_line(site, "pkg/core.py")
    (site / "pkg-1.0.dist-info" / "RECORD").write_text("\n".join(lines) + "\n")
    covered = runner.environment_content(str(tmp_path))
    assert covered["modified"] == [] and covered["distributions"] != clean["distributions"]

    (site / "pkg" / "extra.py").write_text("import os\n")  # a file no RECORD lists
    assert (
        "lib/python3.11/site-packages/pkg/extra.py"
        in (runner.environment_content(str(tmp_path))["unrecorded"])
    )


def test_a_distribution_vendored_inside_a_package_is_covered_by_the_packages_record(tmp_path):
    """setuptools vendors wheel with its dist-info, whose RECORD names `bin/wheel`, a
    script pip never installed there: only site folders' dist-infos are distributions."""
    site = tmp_path / "lib" / "python3.11" / "site-packages"
    vendored = site / "tools" / "_vendor" / "wheel-0.45.1.dist-info"
    vendored.mkdir(parents=True)
    (vendored / "RECORD").write_text("../../bin/wheel,sha256=AAAA,10\nwheel/__init__.py,,\n")
    (site / "tools" / "core.py").write_text("X = 1\n")
    (site / "tools-2.0.dist-info").mkdir()
    files = ["tools/core.py", "tools/_vendor/wheel-0.45.1.dist-info/RECORD"]
    lines = [_record_line(site, path) for path in files] + ["tools-2.0.dist-info/RECORD,,"]
    (site / "tools-2.0.dist-info" / "RECORD").write_text("\n".join(lines) + "\n")
    content = runner.environment_content(str(tmp_path))
    assert content["modified"] == [] and list(content["distributions"]) == ["tools"]
    assert content["unrecorded"] == {}
    (vendored / "RECORD").write_text("forged\n")  # still a file its package's RECORD checks
    assert runner.environment_content(str(tmp_path))["modified"] == [
        "lib/python3.11/site-packages/tools/_vendor/wheel-0.45.1.dist-info/RECORD"
    ]


def test_a_batch_marked_alone_never_calls_predict_batch(deployment):
    """Protocol 7: the host asks for rows answered as single requests (the exact-batch
    rule), whatever the deployment's batch function would give."""
    entrypoint = deployment(SCORING + BATCH_STYLES["predict_batch(rows, seeds)"])
    batch = {"id": "b", "rows": 3, "columns": {"b": [1, 2, 2]}, "shared": {"a": 0}, "seed": 5}
    together, alone = talk(entrypoint, batch, {**batch, "id": "a", "alone": True})[2:]
    assert together["columns"]["via"] == ["batch"] * 3
    assert alone["columns"]["via"] == ["predict"] * 3
    assert alone["columns"]["score"] == together["columns"]["score"] == [1, 2, 2]


def test_the_loaded_model_is_described_by_class_library_and_parts(deployment):
    pytest.importorskip("sklearn")
    from importlib import metadata

    entrypoint = deployment("""
        from sklearn.compose import ColumnTransformer
        from sklearn.ensemble import GradientBoostingClassifier
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import OneHotEncoder

        THRESHOLD = 0.5
        _pipeline = None

        def load(model_dir):
            global _pipeline
            parts = [("category", OneHotEncoder(), [0]), ("rest", "passthrough", [1])]
            prepare = ColumnTransformer(parts)
            _pipeline = Pipeline([("prepare", prepare), ("classify", GradientBoostingClassifier())])

        def predict(inputs):
            return {"score": 1.0}
    """)
    (described,) = talk(entrypoint, {"id": "d", "describe": True})[2:]
    (pipeline,) = described["model"]  # the threshold, functions and modules are not models
    version = metadata.version("scikit-learn")
    assert pipeline["name"] == "_pipeline"
    assert (pipeline["class"], pipeline["library"], pipeline["version"]) == (
        "Pipeline",
        "scikit-learn",
        version,
    )
    prepare, classify = pipeline["parts"]
    assert classify == {
        "name": "classify",
        "class": "GradientBoostingClassifier",
        "library": "scikit-learn",
        "version": version,
    }
    assert [part["class"] for part in prepare["parts"]] == ["OneHotEncoder", "passthrough"]


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        ([0.1 * i for i in range(40)] + [-0.0, 5e-324, 1.7976931348623157e308], "f8"),
        ([float("nan"), float("inf"), float("-inf")] * 11, "f8"),
        ([-(2**63), 2**63 - 1, *range(40)], "i8"),
        ([True, False, True] * 11, "b1"),
        (["approved", "rejected", "approved", "ünïcode ✓"] * 9, "strings"),
    ],
)
def test_a_column_of_one_plain_kind_is_packed_and_comes_back_the_same(values, kind):
    packed = runner.pack_column(values)
    assert set(packed) == ({kind, "index"} if kind == "strings" else {kind})
    back = runner.unpack_column(json.loads(json.dumps(packed)))
    assert [type(v) for v in back] == [type(v) for v in values]
    assert [repr(v) for v in back] == [repr(v) for v in values]  # the bits: -0.0, nan


@pytest.mark.parametrize(
    "values",
    [
        [0.1 * i for i in range(40)] + [float("nan"), -0.0],
        [-(2**63), *range(40)],
        [True, False] * 20,
        ["yes", "no", "yes", "ünï"] * 10,
    ],
)
def test_the_host_takes_a_packed_column_as_the_array_a_data_frame_would_make(values):
    import pandas as pd
    from replay.images.container import unpack_array

    array = unpack_array(json.loads(json.dumps(runner.pack_column(values))))
    assert pd.Series(array).dtype == pd.Series(values).dtype  # float64, int64, bool, str
    assert [repr(v) for v in array.tolist()] == [repr(v) for v in values]
    assert unpack_array(values[:3]) == values[:3]  # a list stays a list


@pytest.mark.parametrize(
    "values",
    [
        [0.1 * i for i in range(40)] + [float("nan"), -0.0],
        [-(2**63), *range(40)],
        [True, False] * 20,
        [0.5] * 31,  # short: the list
    ],
)
def test_a_numpy_array_is_packed_as_its_list_is(values):
    import numpy as np
    from replay.images.container import pack_array

    assert pack_array(np.array(values)) == runner.pack_column(values)
    assert pack_array(values) == runner.pack_column(values)
    unsigned = np.array(range(40), dtype=np.uint64)  # not a kind the runner packs
    assert pack_array(unsigned) == runner.pack_column(list(range(40)))


@pytest.mark.parametrize(
    ("column", "problem"),
    [
        ({"b1": "AAIB"}, "other than 0 and 1"),  # bytes 0, 2, 1
        ({"f8": "AAAA"}, "multiple of"),  # 3 bytes
        ({"f8": "not base64!"}, "base64|Non-base64|Only base64"),
        ({"i8": 12}, "base64 text"),
        ({"strings": ["a"], "index": "AQAAAA=="}, "out of (bounds|range)"),  # index 1 of 1
        ({"strings": None, "index": "AAAAAA=="}, "a list of strings"),
        ({"strings": "ab", "index": "AAAAAA=="}, "a list of strings"),
        ({"strings": [1], "index": "AAAAAA=="}, "a list of strings"),
        ({"packed": "?"}, "unknown packed column"),
        ("text", "a list or a packed column"),
    ],
)
def test_a_broken_packed_column_is_refused_by_runner_and_host_alike(column, problem):
    from replay.images.container import unpack_array

    for unpack in (runner.unpack_column, unpack_array):
        with pytest.raises((ValueError, IndexError), match=problem):
            unpack(column)


@pytest.mark.parametrize(
    "values",
    [
        [1.5] * 31,  # short: readable JSON
        [1.5, 2] * 20,  # floats and integers mixed
        [1.5, None] * 20,  # a nullable output
        [2**63] * 40,  # beyond 64 bits
        [f"text {i}" for i in range(40)],  # strings without repeats
        [{"a": 1}] * 40,
    ],
)
def test_other_columns_travel_as_lists(values):
    assert runner.pack_column(values) is values
    assert runner.unpack_column(values) is values


def test_a_packed_batch_is_answered_as_the_same_batch_in_lists(deployment):
    entrypoint = deployment("""
        def predict(inputs):
            score = inputs["a"] * 0.1 + inputs["b"]
            return {"score": score, "band": "high" if score > 2 else "low", "big": score > 3,
                    "n": inputs["b"], "note": None if inputs["b"] else "zero"}
    """)
    a, b = [i / 7 for i in range(40)], [i % 5 for i in range(40)]
    plain = {"id": "p", "rows": 40, "columns": {"a": a, "b": b}, "seed": 0}
    packed = {
        "id": "q",
        "rows": 40,
        "columns": {"a": runner.pack_column(a), "b": runner.pack_column(b)},
        "seed": 0,
        "pack": True,
    }
    as_lists, as_packed = talk(entrypoint, plain, packed)[2:]
    assert as_packed["columns"]["note"] == as_lists["columns"]["note"]  # nullable: a list
    assert {"f8", "strings", "b1", "i8"} <= {k for c in as_packed["columns"].values() for k in c}
    unpacked = {name: runner.unpack_column(c) for name, c in as_packed["columns"].items()}
    assert unpacked == as_lists["columns"]


def test_only_the_runners_own_process_freezes_the_collector(deployment):
    import gc

    entrypoint = deployment(SCORING)
    before = gc.get_freeze_count()
    talk(entrypoint, {"id": "r", "inputs": {"a": 1, "b": 2}, "seed": 0})
    assert gc.get_freeze_count() == before  # a host answering in-process: untouched
    stdin = io.StringIO(json.dumps({"type": "load", "seed": 0}) + "\n")
    try:
        assert runner.serve(entrypoint, stdin, io.StringIO(), freeze=True) == 0
        assert gc.get_freeze_count() > before
    finally:
        gc.unfreeze()
