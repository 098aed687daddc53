"""`replay fairness` on the served credit decisions (age, in bins) and the claims
(region, a category): the rates, impact ratios and Fisher's tests are those computed
here by hand from the ledger and scipy; the flip test re-runs a sample in the original
containers. Every decision is in a group: the default bins of the credit applicants'
and the fraud screen's cardholders' ages count them all, and an age outside the bins
given is a group of its own. Free text is no attribute to group by; bad input is one
line and writes nothing."""

from __future__ import annotations

import bisect
import json
import shutil
from collections import Counter
from datetime import datetime, timedelta
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
        index = bisect.bisect_right(edges, entry.inputs["age"])  # [18, 30) is 1
        total[index] += 1
        approved[index] += entry.outputs["decision"] == "approved"
    rates = {i: approved[i] / total[i] for i in total}
    best = max(rates.values())
    assert [g["decisions"] for g in result["groups"]] == [total[i] for i in sorted(total)]
    assert result["decisions"] == len(entries) == len(served) and result["erased"] == 0
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


def test_default_bins_count_every_credit_applicant(served, window):
    """Before: the youngest quartile was left out of the table ("outside": 0)."""
    since, until = window
    made = run_cli(
        "fairness", "--attribute", "age", "--since", since.isoformat(),
        "--until", until.isoformat(), "--sample", "0", "--json",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    result = json.loads(made.stdout)
    assert sum(g["decisions"] for g in result["groups"]) == result["decisions"] == len(served)
    assert result["groups"][0]["group"].startswith("under ")
    assert result["groups"][-1]["group"].endswith(" and over")


def fraud_window(fraud_decided) -> tuple[datetime, datetime]:
    times = [entry.time for entries in fraud_decided.values() for entry in entries]
    since = datetime.fromisoformat(min(times))
    return since, datetime.fromisoformat(max(times)) + timedelta(microseconds=1)


def test_default_bins_count_every_cardholder_and_the_flip_test_reaches_the_youngest(
    fraud_decided,
):
    import replay

    since, until = fraud_window(fraud_decided)
    logged = [entry for entries in fraud_decided.values() for entry in entries]
    result = replay.fairness(
        "cardholder_age", deployment="fraud-screen", since=since, until=until, sample=40,
        workers=1,
    )  # fmt: skip
    assert sum(g.decisions for g in result.groups) == result.decisions == len(logged) == 200
    youngest = result.groups[0]
    assert youngest.group.startswith("under ")
    edge = float(youngest.group.removeprefix("under "))
    young = [e for e in logged if e.inputs["cardholder_age"] < edge]
    assert youngest.decisions == len(young) > 0
    assert youngest.favourable == sum(e.outputs["decision"] == "allow" for e in young)
    assert youngest.group in result.flip_test["by_target"]  # its typical age is tried too


def test_ages_outside_the_bins_given_are_groups_of_their_own(fraud_decided, tmp_path):
    since, until = fraud_window(fraud_decided)
    made = run_cli(
        "fairness", "--attribute", "cardholder_age", "--deployment", "fraud-screen",
        "--bins", "30,45,65", "--since", since.isoformat(), "--until", until.isoformat(),
        "--sample", "0", "--out", str(tmp_path), "--json",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert "UserWarning" not in made.stderr, made.stderr  # "Tight layout not applied"
    result = json.loads(made.stdout)
    ages = [e.inputs["cardholder_age"] for entries in fraud_decided.values() for e in entries]
    found = {g["group"]: g["decisions"] for g in result["groups"]}
    assert found == {
        "under 30": sum(age < 30 for age in ages),
        "30 to under 45": sum(30 <= age < 45 for age in ages),
        "45 to under 65": sum(45 <= age < 65 for age in ages),
        "65 and over": sum(age >= 65 for age in ages),
    }
    assert found["under 30"] and found["65 and over"]  # the example spans 18 to 89
    assert Path(result["plot"]).stat().st_size


def test_a_category_groups_by_its_values(claims_decided):
    import replay

    result = replay.fairness("region", deployment="claims-triage", sample=20, workers=1)
    assert {g.group for g in result.groups} <= {"north", "south", "east", "west"}
    assert sum(g.decisions for g in result.groups) >= sum(map(len, claims_decided.values()))
    assert result.flip_test["sampled"] == 20


def test_free_text_is_no_attribute_to_group_by(fraud_decided, tmp_path):
    refused = run_cli(
        "fairness", "--attribute", "descriptor", "--deployment", "fraud-screen",
        "--out", str(tmp_path),
    )  # fmt: skip
    assert refused.returncode == 2, refused.stderr
    (line,) = refused.stderr.strip().splitlines()
    assert "descriptor is free text" in line
    assert list(tmp_path.iterdir()) == []


def test_bad_input_is_one_line_and_writes_nothing(served, claims_decided, tmp_path):
    for arguments, says in (
        (["--attribute", "shoe_size", "--deployment", "credit-approval"], "not an input of"),
        (["--attribute", "region", "--deployment", "claims-triage", "--bins", "1,2"],
         "only numbers take bins"),
        (["--attribute", "age", "--deployment", "credit-approval", "--bins", "9,x"],
         "numbers separated by commas"),
        (["--attribute", "age", "--deployment", "credit-approval", "--bins", "40,18"],
         "must increase"),
        (["--attribute", "age", "--deployment", "nobody"], "no logged decisions"),
    ):  # fmt: skip
        refused = run_cli("fairness", *arguments, "--out", str(tmp_path))
        assert refused.returncode == 2, refused.stderr
        assert says in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []
