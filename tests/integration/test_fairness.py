"""`replay fairness` on the served credit decisions (age, in bins) and the claims
(region, a category): the rates, impact ratios and Fisher's tests are those computed
here by hand from the ledger and scipy; the flip test re-runs a sample in the original
containers; bad input is one line and writes nothing."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
from scipy.stats import fisher_exact

from tests.integration.conftest import ROOT, run_cli

pytestmark = pytest.mark.integration


def test_rates_by_age_are_the_ledgers_and_the_flip_test_runs(served, window, tmp_path):
    from replay.ledger import open_ledger
    from replay.settings import load_settings

    since, until = window
    made = run_cli(
        "fairness", "--attribute", "age", "--bins", "18,30,45,60,100",
        "--since", since.isoformat(), "--until", until.isoformat(),
        "--sample", "30", "--workers", "2", "--out", str(tmp_path), "--json",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    result = json.loads(made.stdout)

    entries = open_ledger(load_settings()).list(kind="decision", since=since, until=until)
    edges = [18, 30, 45, 60, 100]
    total, approved = Counter(), Counter()
    for entry in entries:
        age = entry.inputs["age"]
        index = next(i for i in range(1, 5) if age < edges[i] or i == 4)
        total[index] += 1
        approved[index] += entry.outputs["decision"] == "approved"
    rates = {i: approved[i] / total[i] for i in total}
    best = max(rates.values())
    assert [g["decisions"] for g in result["groups"]] == [total[i] for i in sorted(total)]
    for group, i in zip(result["groups"], sorted(total), strict=True):
        assert group["rate"] == pytest.approx(rates[i])
        assert group["impact_ratio"] == pytest.approx(rates[i] / best)
        assert group["flagged"] == (rates[i] / best < 0.8)
        rest_yes = sum(approved.values()) - approved[i]
        rest_no = sum(total.values()) - total[i] - rest_yes
        table = [[approved[i], total[i] - approved[i]], [rest_yes, rest_no]]
        assert group["fisher_p"] == pytest.approx(fisher_exact(table).pvalue)
    test = result["flip_test"]
    assert test["sampled"] == 30 and result["workers"] == 2
    assert 0 <= test["decisions_that_flip"] <= 30
    plot = Path(result["plot"])
    assert plot.parent == tmp_path and plot.stat().st_size
    (ROOT / "build" / "artifacts").mkdir(parents=True, exist_ok=True)
    shutil.copy(plot, ROOT / "build" / "artifacts" / "fairness-age.png")


def test_a_category_groups_by_its_values(claims_decided):
    import replay

    result = replay.fairness("region", deployment="claims-triage", sample=20, workers=1)
    assert {g.group for g in result.groups} <= {"north", "south", "east", "west"}
    assert sum(g.decisions for g in result.groups) >= sum(map(len, claims_decided.values()))
    assert result.flip_test["sampled"] == 20


def test_bad_input_is_one_line_and_writes_nothing(served, claims_decided, tmp_path):
    for arguments, says in (
        (["--attribute", "shoe_size", "--deployment", "credit-approval"], "not an input of"),
        (["--attribute", "region", "--deployment", "claims-triage", "--bins", "1,2"],
         "only numbers take bins"),
        (["--attribute", "age", "--deployment", "credit-approval", "--bins", "9,x"],
         "numbers separated by commas"),
        (["--attribute", "age", "--deployment", "nobody"], "no logged decisions"),
    ):  # fmt: skip
        refused = run_cli("fairness", *arguments, "--out", str(tmp_path))
        assert refused.returncode == 2, refused.stderr
        assert says in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []
