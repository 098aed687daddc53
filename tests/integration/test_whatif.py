"""What-if and sweeps answer from the container that decided."""

from __future__ import annotations

import json
from itertools import pairwise

import pandas as pd
import pytest

from replay.errors import BadInput
from replay.questions.sweeps import Range
from tests.integration.conftest import run_cli

pytestmark = pytest.mark.integration


def test_whatif_changes_only_what_was_set(rejected, warm):
    import replay

    entry = replay.show_transaction(rejected)
    answer = replay.whatif(rejected, {"income": "250000", "debt": 0}, warm=warm)
    assert answer.changed == {
        "income": (entry.inputs["income"], 250000.0),
        "debt": (entry.inputs["debt"], 0.0),
    }
    assert {k: v for k, v in answer.modified_inputs.items() if k not in ("income", "debt")} == {
        k: v for k, v in entry.inputs.items() if k not in ("income", "debt")
    }
    # the same container and seed give the modified decision a direct prediction gives
    assert answer.modified_outputs == warm.predict(answer.modified_inputs, entry.seed)
    assert answer.original_outputs == entry.outputs


def test_setting_the_logged_values_reproduces_the_decision(rejected, warm):
    import replay

    entry = replay.show_transaction(rejected)
    answer = replay.whatif(rejected, {"income": entry.inputs["income"]}, warm=warm)
    assert answer.modified_outputs == entry.outputs
    assert not answer.decision_changed


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("colour=red", "unknown feature 'colour'"),
        ("income=lots", "is not a number"),
        ("age=12", "below its minimum 18"),
        ("late_payments=1.5", "whole number"),
        ("income", "not NAME=VALUE"),
    ],
)
def test_bad_set_is_one_line_exit_2(rejected, assignment, message):
    result = run_cli("whatif", rejected, "--set", assignment)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]


def test_income_sweep_is_monotone_and_marks_the_change(rejected, warm, tmp_path):
    import replay

    result = replay.sweep(rejected, [Range("income", 10000, 400000, 200)], warm=warm)
    scores = result.frame["score"].tolist()
    assert len(scores) == 200
    assert all(a <= b for a, b in pairwise(scores))
    assert result.frame["income"].is_monotonic_increasing
    changes = result.changes
    if len(changes):  # where the decision flips, it flips to the favourable side for good
        assert changes["decision"].tolist() == ["approved"]
    csv = result.save(tmp_path / "grid.csv")
    assert pd.read_csv(csv).shape == result.frame.shape
    png = result.plot(tmp_path / "grid.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_debt_sweep_never_helps(rejected, warm):
    import replay

    scores = (
        replay.sweep(rejected, [Range("debt", 0, 200000, 100)], warm=warm).frame["score"].tolist()
    )
    assert all(a >= b for a, b in pairwise(scores))


def test_two_dimensional_sweep_to_parquet_via_cli(rejected, tmp_path):
    out, plot = tmp_path / "grid.parquet", tmp_path / "grid.png"
    result = run_cli(
        "sweep",
        rejected,
        "--vary",
        "income=20000:150000:12",
        "--vary",
        "late_payments=0:6:7",
        "--out",
        str(out),
        "--plot",
        str(plot),
    )
    assert result.returncode == 0, result.stderr
    frame = pd.read_parquet(out)
    assert len(frame) == 12 * 7
    assert set(frame["late_payments"]) == set(range(7))
    assert plot.stat().st_size > 10_000


def test_sweep_rows_equal_single_predictions(rejected, warm):
    import replay

    entry = replay.show_transaction(rejected)
    result = replay.sweep(rejected, [Range("loan_amount", 1000, 90000, 5)], warm=warm)
    for row in result.frame.to_dict(orient="records"):
        single = warm.predict({**entry.inputs, "loan_amount": row["loan_amount"]}, entry.seed)
        assert (single["decision"], single["score"]) == (row["decision"], row["score"])


@pytest.mark.parametrize(
    ("vary", "message"),
    [
        (["income=1:2"], "NAME=START:STOP:COUNT"),
        (["colour=1:2:3"], "unknown feature"),
        (["income=-5:100:3"], "below its minimum"),
        (["income=0:1:0"], "at least one point"),
        (["income=0:1:2", "debt=0:1:2", "age=20:30:2"], "one or two"),
    ],
)
def test_bad_vary_is_one_line_exit_2(rejected, vary, message):
    arguments = [argument for item in vary for argument in ("--vary", item)]
    result = run_cli("sweep", rejected, *arguments)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]


def test_the_library_names_fields_not_flags(rejected, warm):
    import replay

    with pytest.raises(BadInput, match=r"^nothing to change: no input was edited$"):
        replay.whatif(rejected, {}, warm=warm)
    with pytest.raises(BadInput, match=r"^a sweep varies one or two different features$"):
        replay.sweep(rejected, [Range("income", 0, 1, 2)] * 2, warm=warm)


def test_whatif_json(rejected):
    result = run_cli("whatif", rejected, "--set", "income=300000", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["changed"]["income"][1] == 300000.0
    assert report["modified_outputs"]["decision"] in {"approved", "rejected"}


def test_whatif_shows_every_output_field(rejected):
    result = run_cli("whatif", rejected, "--set", "income=300000")
    assert result.returncode == 0, result.stderr
    for field in ("decision", "score", "reason", "audit"):
        assert f"│ {field}" in result.stdout
