"""`replay drift`: decisions drawn from the reference sample itself but with income
multiplied flag income and nothing else; bad input is one line and writes nothing."""

from __future__ import annotations

import json
import random
import shutil
from datetime import UTC, datetime

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


def test_bad_input_is_one_line_and_writes_nothing(served, claims_decided, tmp_path):
    for arguments, says in (
        (["--deployment", "nobody"], "no logged decisions"),
        ([], "name one with --deployment"),
        (["--deployment", "credit-approval", "--windows", "0"], "0"),
    ):
        refused = run_cli("drift", *arguments, "--out", str(tmp_path))
        assert refused.returncode == 2, refused.stderr
        assert says in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []
