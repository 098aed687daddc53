"""`replay drift`: decisions drawn from the reference sample itself but with income
multiplied flag income and nothing else, and their score windows, logged in one burst,
are told apart. The fraud screen's free-text descriptor is compared by its length and
the share of its values the reference holds: payments drawn like the reference's are
not flagged, longer descriptors are (with a plot and no layout warning). Bad input is
one line and writes nothing."""

from __future__ import annotations

import json
import random
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.integration.conftest import ROOT, run_cli

pytestmark = pytest.mark.integration


def test_a_shifted_feature_is_flagged_and_an_unshifted_one_is_not(captured, tmp_path):
    from replay.ledger.decisions import record_decision
    from replay.settings import load_settings
    from replay.stores.manifests import manifest_store

    store = manifest_store(load_settings())
    manifest = store.load(captured.manifest_id)
    reference = manifest.schema.read_rows(store.reference_sample(manifest))
    since = datetime.now(UTC)
    draw = random.Random(3)
    for seed in range(400):
        person = dict(draw.choice(reference))
        person["income"] = min(1_000_000.0, person["income"] * 2.5)  # the shift
        record_decision(
            captured.manifest_id,
            person,
            {"decision": "approved", "score": draw.random(), "reason": "r", "audit": False},
            seed=seed,
        )
    made = run_cli(
        "drift", "--deployment", captured.name, "--since", since.isoformat(),
        "--windows", "3", "--out", str(tmp_path), "--json",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    result = json.loads(made.stdout)
    features = {f["feature"]: f for f in result["features"]}
    assert result["decisions"] == 400
    assert result["flagged"] == ["income"], features
    assert features["income"]["psi"] > 0.25 and features["income"]["p_value"] < 0.01
    assert features["late_payments"]["psi"] < 0.1 and not features["late_payments"]["flagged"]
    assert features["income"]["plot"] and sorted(p.name[:13] for p in tmp_path.iterdir()) == [
        "drift-income-"
    ]
    artifacts = ROOT / "build" / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    shutil.copy(features["income"]["plot"], artifacts / "drift-income.png")
    windows = result["score_windows"]
    assert len(windows) == 3 and sum(w["decisions"] for w in windows) == 400
    assert all(w["from"] < w["until"] for w in windows)

    shown = run_cli("drift", "--deployment", captured.name, "--since", since.isoformat(),
                    "--windows", "3")  # fmt: skip
    assert shown.returncode == 0 and shown.stderr == "", shown.stderr
    # each window's row names its own start and end, however close together they are
    rows = [line for line in shown.stdout.splitlines() if " to 20" in line]
    assert len(rows) == 3 and len({row.split("│")[1] for row in rows}) == 3, shown.stdout


def fraud_window(fraud_decided) -> tuple[datetime, datetime]:
    times = [entry.time for entries in fraud_decided.values() for entry in entries]
    since = datetime.fromisoformat(min(times))
    return since, datetime.fromisoformat(max(times)) + timedelta(microseconds=1)


def test_free_text_drawn_like_the_references_is_not_flagged(fraud_decided):
    """Before: the descriptor was a category and "drifted" with PSI 7.9."""
    since, until = fraud_window(fraud_decided)
    made = run_cli(
        "drift", "--deployment", "fraud-screen", "--since", since.isoformat(),
        "--until", until.isoformat(), "--json",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    result = json.loads(made.stdout)
    features = {f["feature"]: f for f in result["features"]}
    text = features["descriptor"]
    assert (text["kind"], text["test"], text["logged"]) == ("text", "ks of length", 200)
    assert not text["flagged"] and text["psi"] < 0.25 and text["p_value"] > 0.01, text
    seen = text["seen"]
    assert 0 <= seen["share"] <= 1 and seen["p_value"] > 0.01, seen
    assert features["merchant_category"]["test"] == "chi-squared"


def test_longer_free_text_is_flagged_with_a_plot(fraud_warm, tmp_path):
    from replay.ledger.decisions import record_decision
    from replay.settings import load_settings
    from replay.stores.manifests import manifest_store

    manifest = fraud_warm.manifest
    store = manifest_store(load_settings())
    reference = manifest.schema.read_rows(store.reference_sample(manifest))
    since = datetime.now(UTC)
    draw = random.Random(5)
    for seed in range(300):
        payment = dict(draw.choice(reference))
        payment["descriptor"] += " URGENT WIRE P2P TRANSFER VERIFY"  # the shift
        outputs = {"decision": "block", "score": 0.1, "reason": "r"}
        record_decision(manifest.manifest_id, payment, outputs, seed=seed)
    made = run_cli(
        "drift", "--deployment", manifest.name, "--since", since.isoformat(),
        "--out", str(tmp_path), "--json",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert "UserWarning" not in made.stderr, made.stderr  # "Tight layout not applied"
    result = json.loads(made.stdout)
    assert result["flagged"] == ["descriptor"], result["features"]
    text = next(f for f in result["features"] if f["feature"] == "descriptor")
    assert text["psi"] > 0.25 and text["p_value"] < 0.01
    assert text["seen"]["share"] == 0.0  # no reference descriptor carries the new words
    assert Path(text["plot"]).stat().st_size


def test_bad_input_is_one_line_and_writes_nothing(served, claims_decided, tmp_path):
    for arguments, says in (
        (["--deployment", "nobody"], "no logged decisions"),
        ([], "match: name the deployment to use"),
        (["--deployment", "credit-approval", "--windows", "0"], "0"),
    ):
        refused = run_cli("drift", *arguments, "--out", str(tmp_path))
        assert refused.returncode == 2, refused.stderr
        assert says in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []
