"""`replay backtest`: the served credit decisions re-run in a challenger's container, on
Dask. Against itself, nothing flips; against a model retrained on other applicants,
the flip table is the one the two models give in this process; its HTML, Parquet,
MLflow run and ledger entry agree; bad input is one line and writes nothing. The fraud
screen's free-text descriptor is never a segment, and nothing warns on stderr."""

from __future__ import annotations

import hashlib
import sys
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.integration.conftest import ROOT, free_port, run_cli

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def challenger(registry, tmp_path_factory):
    """The credit deployment retrained on other applicants: a new manifest of the same
    deployment, and its workspace."""
    sys.path.insert(0, str(ROOT / "examples"))
    from workspace import make_workspace, retrain

    import replay

    folder = tmp_path_factory.mktemp("challenger")
    workspace = retrain(make_workspace("credit", folder / "credit", folder / "remote"), seed=21)
    manifest = replay.capture(workspace)
    replay.build(manifest.manifest_id)
    return manifest, workspace


def test_a_backtest_against_itself_flips_nothing(captured, served, window, tmp_path):
    import pyarrow.parquet as pq

    import replay
    from replay.ledger import open_ledger
    from replay.settings import load_settings
    from replay.stores.manifests import manifest_store

    since, until = window
    result = replay.backtest(
        captured.manifest_id, since=since, until=until, out=tmp_path, workers=2
    )
    summary = result.summary
    assert summary["decisions"] == len(served) and result.workers == 2
    assert summary["flips"] == 0 and summary["mean_score_shift"] == 0.0
    assert all(cell["logged"] == cell["challenger"] for cell in summary["flip_table"])
    assert pq.read_table(result.files["parquet"]).num_rows == 0
    html = Path(result.files["html"]).read_text()
    assert "<svg" in html and "Flip rate by segment" in html

    entry = open_ledger(load_settings()).get(result.record_txn)
    assert entry.kind == "backtest" and entry.outputs["flips"] == 0
    for kind, path in result.files.items():
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        assert entry.outputs["sha256"][kind] == digest == result.sha256[kind]
    run = manifest_store(load_settings()).client.get_run(result.mlflow_run)
    assert run.data.metrics["flip_rate"] == 0.0
    assert run.data.tags["replay.challenger"] == captured.manifest_id


def test_a_retrained_challenger_flips_what_the_models_say_in_process(
    challenger, captured, served, window, tmp_path
):
    import pyarrow.parquet as pq

    import replay
    from replay.execution.predictor import InProcessPredictor
    from replay.ledger import open_ledger
    from replay.settings import load_settings

    manifest, workspace = challenger
    assert manifest.name == captured.name and manifest.manifest_id != captured.manifest_id
    since, until = window
    result = replay.backtest(manifest.name, since=since, until=until, out=tmp_path)
    assert result.challenger == manifest.manifest_id  # the name means its newest manifest

    sys.path.insert(0, str(workspace))
    model = InProcessPredictor.from_entrypoint(
        manifest.entrypoint, str(workspace), manifest.runtime.seed
    )
    ledger = open_ledger(load_settings())
    logged = [ledger.get(a["transaction_id"]) for a in served]
    expected = Counter(
        (e.outputs["decision"], model.predict(e.inputs, e.seed)["decision"]) for e in logged
    )
    found = {(c["logged"], c["challenger"]): c["count"] for c in result.summary["flip_table"]}
    assert found == dict(expected)
    flips = sum(count for (before, after), count in expected.items() if before != after)
    assert flips > 0  # another model: some applicants are decided otherwise
    keep_a_picture(result.files["html"])
    table = pq.read_table(result.files["parquet"]).to_pylist()
    assert len(table) == result.summary["flips"] == flips
    assert all(row["logged_decision"] != row["challenger_decision"] for row in table)
    assert all(row["inputs.income"] is not None for row in table)


def keep_a_picture(html: str) -> None:
    """The summary as a person sees it, in build/artifacts (Debian's Chromium)."""
    import subprocess

    artifacts = ROOT / "build" / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    shot = subprocess.run(
        ["/usr/bin/chromium", "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--hide-scrollbars", "--window-size=1000,1500",
         f"--screenshot={artifacts / 'backtest.png'}", f"file://{html}"],
        capture_output=True, timeout=120,
    )  # fmt: skip
    assert shot.returncode == 0, shot.stderr[-500:]


def test_free_text_is_never_a_segment(fraud_warm, fraud_decided, tmp_path):
    """Before: every distinct descriptor was a segment (the 5,000-character one spilling
    across the plot), and matplotlib warned that it could not lay the page out."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    entries = [entry for found in fraud_decided.values() for entry in found]
    times = [entry.time for entry in entries]
    until = datetime.fromisoformat(max(times)) + timedelta(microseconds=1)
    made = run_cli(
        "backtest", "--challenger", fraud_warm.manifest.manifest_id,
        "--since", min(times), "--until", until.isoformat(), "--workers", "1",
        "--out", str(tmp_path), "--json",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert "UserWarning" not in made.stderr, made.stderr
    result = json.loads(made.stdout)
    summary = result["summary"]
    assert summary["decisions"] == 200 and summary["flips"] == 0
    assert "descriptor" not in summary["segments"]
    assert {"merchant_category", "cardholder_age", "amount"} <= set(summary["segments"])
    html = Path(result["files"]["html"]).read_text()
    assert "Flip rate by segment" in html and "<h3>descriptor</h3>" not in html
    longest = max((entry.inputs["descriptor"] for entry in entries), key=len)
    assert len(longest) == 5000 and longest[:100] not in html
    flips = pq.read_schema(result["files"]["parquet"])  # a flip would keep the whole text
    assert flips.field("inputs.descriptor").type == pa.string()


def test_bad_input_is_one_line_and_writes_nothing(captured, served, tmp_path):
    from replay.ledger import open_ledger
    from replay.settings import load_settings

    ledger = open_ledger(load_settings())
    before = ledger.count(kind=None)
    later = (datetime.now() + timedelta(days=365)).date().isoformat()
    unreachable = f"tcp://127.0.0.1:{free_port()}"
    for arguments, code, says in (
        (["--challenger", "no-such-deployment"], 2, "neither a manifest id nor a captured"),
        (["--challenger", captured.name, "--since", later], 2, "no logged decisions"),
        (["--challenger", captured.name, "--scheduler", unreachable], 3, "no Dask scheduler"),
        (["--challenger", captured.name, "--sample", "0"], 2, "0"),
    ):
        refused = run_cli("backtest", *arguments, "--out", str(tmp_path))
        assert refused.returncode == code, (arguments, refused.stderr)
        assert says in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []
    assert ledger.count(kind=None) == before
