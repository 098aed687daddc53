"""The claims example in its own container: a scikit-learn Pipeline over numbers, a
boolean and categories, a rule that refers large claims with a null score, and a seeded
draw that sends some approvals to review. Each test reproduces a way the questions went
wrong for a deployment unlike the credit example."""

from __future__ import annotations

import json
import random
import subprocess

import pytest

from tests.integration.conftest import run_cli

pytestmark = pytest.mark.integration

REVIEW_RATE = 0.1  # as examples/claims/deployment/claims/triage.py draws


def test_counterfactuals_of_denials_and_referrals_reach_approval_or_say_why(
    claims_decided, claims_warm
):
    import replay

    schema = claims_warm.manifest.schema
    immutable = {name for name, feature in schema.inputs.items() if feature.immutable}
    assert immutable == {"region", "age"}
    reference = claims_warm.reference_rows(300)
    moved, answered = set(), 0
    for entry in claims_decided["deny"][:12] + claims_decided["refer"]:
        found = replay.counterfactual(entry.txn_id, warm=claims_warm)
        assert found.target == "approve"  # the favourable decision, not "any other"
        if not found.options:
            # only a seed whose draw sends every approval to review may leave none: the
            # example reviews an approval when the first draw is below REVIEW_RATE
            assert random.Random(entry.seed).random() < REVIEW_RATE, found.none_found
            assert found.blocked_by_draw
            assert "random draw keeps every reference row from approve" in found.none_found
            continue
        answered += 1
        for option in found.options:
            assert option.outputs["decision"] == "approve"
            assert claims_warm.predict(option.inputs, entry.seed) == option.outputs
            assert not immutable & set(option.changes)
            for name, (old, new) in option.changes.items():
                schema.inputs[name].check(new)  # within bounds, an allowed value
                if schema.inputs[name].numeric:  # inside what the reference shows
                    seen = [row[name] for row in reference] + [old]
                    assert min(seen) <= new <= max(seen), (name, new)
            moved |= set(option.changes)
    assert answered >= 8
    assert moved & {"channel", "police_report"}  # a category or a boolean moved alone


def test_a_review_sent_by_the_draw_is_explained_as_the_draw(claims_decided, claims_warm):
    import replay

    entry = claims_decided["review"][0]
    result = replay.explain(entry.txn_id, reference_rows=20, warm=claims_warm)
    assert result.decided_by == "random draw"
    assert result.reasons == [] and result.protected == []
    assert "random draw decided review" in result.summary
    assert f"seed {entry.seed}" in result.summary


def test_a_referral_is_explained_without_error_in_words_and_json(claims_decided, claims_warm):
    entry = claims_decided["refer"][0]
    text = run_cli("explain", entry.txn_id, "--reference-rows", "20")
    assert text.returncode == 0, text.stderr
    assert "refer" in text.stdout and "no score" in text.stdout
    result = run_cli("explain", entry.txn_id, "--reference-rows", "20", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["score"] is None and report["base_score"] is None
    assert report["decided_by"] == "inputs"
    assert report["reasons"][0].startswith("claim_amount of ")


@pytest.mark.parametrize("kind", ["review", "deny"])
def test_identical_sweep_points_agree_and_boundaries_agree_with_whatif(
    claims_decided, claims_warm, kind
):
    import replay
    from replay.questions.sweeps import Range

    entry = claims_decided[kind][0]
    amount = entry.inputs["claim_amount"]
    same = replay.sweep(entry.txn_id, [Range("claim_amount", amount, amount, 5)], warm=claims_warm)
    rows = same.frame.drop(columns="claim_amount").to_dict(orient="records")
    assert rows == [entry.outputs] * 5

    swept = replay.sweep(entry.txn_id, [Range("claim_amount", 0, 80_000, 161)], warm=claims_warm)
    assert len(swept.changes) >= 1 and "refer" in set(swept.frame["decision"])
    for _, row in swept.changes.iterrows():
        answer = replay.whatif(
            entry.txn_id, {"claim_amount": row["claim_amount"]}, warm=claims_warm
        )
        assert answer.modified_outputs["decision"] == row["decision"]


def commit_edit(folder, file: str, old: str, new: str) -> None:
    text = (folder / file).read_text()
    assert old in text
    (folder / file).write_text(text.replace(old, new))
    for command in (["git", "add", "-A"], ["git", "commit", "-q", "-m", f"edit {file}"]):
        subprocess.run(command, cwd=folder, check=True, capture_output=True)


def test_a_broken_entrypoint_fails_at_build_with_the_deployments_own_error(registry, tmp_path):
    from workspace import make_workspace

    import replay

    folder = make_workspace("claims", tmp_path / "claims-broken", tmp_path / "dvc-remote")
    commit_edit(
        folder,
        "claims/triage.py",
        "    global _pipeline\n",
        "    raise RuntimeError('calibration table missing')\n    global _pipeline\n",
    )
    manifest = replay.capture(folder)
    result = run_cli("build", manifest.manifest_id)
    assert result.returncode == 2, result.stderr
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert error.endswith("RuntimeError: calibration table missing"), error


def test_the_state_folder_is_found_from_inside_a_deployment_and_nothing_is_written_there(
    registry, tmp_path
):
    from workspace import make_workspace

    project = tmp_path / "project"
    (project / ".replay").mkdir(parents=True)  # the team's state folder, found upwards
    folder = make_workspace("claims", project / "claims-triage", tmp_path / "dvc-remote")
    inside = folder / "claims"
    env = {"REPLAY_HOME": None, "XDG_DATA_HOME": str(tmp_path / "per-user")}

    def replay_from_inside(*args: str) -> subprocess.CompletedProcess:
        return run_cli(*args, env=env, cwd=inside)

    captured = replay_from_inside("capture", "..", "--json")
    assert captured.returncode == 0, captured.stderr
    listed = replay_from_inside("deployments", "list", "--json")
    assert [d["name"] for d in json.loads(listed.stdout)] == ["claims-triage"]
    assert (project / ".replay" / "mlflow.db").is_file()
    assert not (folder / ".replay").exists() and not (tmp_path / "per-user").exists()
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=folder, capture_output=True, text=True
    )
    assert status.stdout == ""
