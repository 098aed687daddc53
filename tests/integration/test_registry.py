"""Models brought from a team's MLflow Model Registry: a real tracking server (SQLite
backend, its own artifact root) holding registered versions and an alias, captured by
version and by alias, built, decided, replayed, asked what-if questions, and replayed
again after the registry deleted the version.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.fixtures.registry.team import ServerDidNotStart, team_server
from tests.integration.conftest import run_cli, unavailable

BOUNDS = {
    "income": {"min": 0, "max": 20000},
    "debts": {"min": 0, "max": 10000},
    "age": {"min": 18, "max": 90, "immutable": True},
}
RULE = {"threshold": 0.5, "at_or_above": "approve", "below": "reject"}
APPLICANTS = [
    {"income": 2100.0, "debts": 1800.5, "age": 29, "region": "north"},
    {"income": 7400.25, "debts": 300.0, "age": 52, "region": "east"},
    {"income": 3900.0, "debts": 2500.0, "age": 41, "region": "south"},
]


@pytest.fixture(scope="session")
def team_registry(registry, tmp_path_factory):
    """A team's MLflow server with credit models of three libraries registered
    (see tests/fixtures/registry/log_models.py); (its URL, run id by name/version)."""
    try:
        with team_server(tmp_path_factory.mktemp("team-mlflow")) as running:
            yield running
    except ServerDidNotStart as error:
        unavailable(str(error))


@contextmanager
def reading(url: str) -> Iterator[None]:
    """The team's registry as replay finds it: MLFLOW_TRACKING_URI, for this block."""
    before = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = url
    try:
        yield
    finally:
        if before is None:
            del os.environ["MLFLOW_TRACKING_URI"]
        else:
            os.environ["MLFLOW_TRACKING_URI"] = before


def spec_file(folder: Path, score: str, inputs: dict) -> Path:
    import yaml

    path = folder / f"spec-{score}.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "inputs": inputs,
                "output": {"score": score, "favourable": "approve", "rule": RULE},
            },
            sort_keys=False,  # in order, as a person writes them: they name a tensor's columns
        )
    )
    return path


def decided(manifest_id: str, applicants: list[dict]) -> dict[str, dict]:
    """Each applicant decided in the manifest's container (seed i) and logged: the
    outputs by transaction id."""
    from replay.execution.warm import WarmDeployment
    from replay.ledger.decisions import record_decision

    logged = {}
    with WarmDeployment(manifest_id) as warm:
        for seed, applicant in enumerate(applicants):
            outputs = warm.predict(applicant, seed)
            assert outputs["decision"] in ("approve", "reject")
            logged[record_decision(manifest_id, applicant, outputs, seed=seed).txn_id] = outputs
    return logged


@pytest.fixture(scope="session")
def champion(team_registry, tmp_path_factory):
    """`models:/credit-sk@champion` (skops) captured, built and three decisions logged."""
    import replay

    url, _ = team_registry
    spec = spec_file(tmp_path_factory.mktemp("spec"), "prediction_1", BOUNDS)
    with reading(url):
        manifest = replay.capture("models:/credit-sk@champion", spec=spec)
    replay.build(manifest.manifest_id)
    return manifest, decided(manifest.manifest_id, APPLICANTS)


def test_a_version_captured_by_alias_records_the_version_and_run(champion, team_registry):
    manifest, _ = champion
    _, registered = team_registry
    source = manifest.model_source
    assert (source.registered_name, source.version, source.alias) == ("credit-sk", "1", "champion")
    assert source.run_id == registered["credit-sk/1"]
    assert "sklearn" in source.flavours and source.rule["score"] == "prediction_1"
    assert manifest.code.commit is None
    assert any(item.path == "mlflow/MLmodel" for item in manifest.model_files)
    # what the signature could not say came from the spec; the rest from the model
    assert manifest.schema.inputs["age"].immutable
    assert manifest.schema.inputs["region"].values == ("east", "north", "south")


def test_the_decision_replays_after_the_registry_deleted_the_version(champion, team_registry):
    from mlflow import MlflowClient
    from replay.images.build import find_image
    from replay.images.engine import docker_client

    import replay
    from replay.settings import load_settings
    from replay.stores.manifests import manifest_store
    from tests.integration.test_recovery import wipe_from_registry

    manifest, transactions = champion
    url, _ = team_registry
    MlflowClient(tracking_uri=url).delete_model_version("credit-sk", "1")
    with reading(url), pytest.raises(replay.errors.BadInput, match="not found in the registry"):
        replay.capture("models:/credit-sk/1")
    # no image left either, here or in the image registry: the replay rebuilds it from
    # what replay itself kept
    client = docker_client(load_settings().docker_host)
    client.images.remove(find_image(client, manifest.manifest_id).id, force=True)
    record = manifest_store(load_settings()).build_record(manifest.manifest_id)
    wipe_from_registry(load_settings().registry, record.repo_digest)
    result = replay.replay(next(iter(transactions)))
    assert result.verdict == "reproduced"
    assert result.recovery == "rebuild"
    verified = run_cli("manifest", "verify", manifest.short_id)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_what_if_and_counterfactual_ask_the_registered_model(champion):
    import replay

    _, transactions = champion
    first = next(iter(transactions))
    richer = replay.whatif(first, {"income": 9000.0})
    assert richer.modified_outputs["decision"] in ("approve", "reject")
    assert richer.modified_outputs["prediction_1"] > richer.original_outputs["prediction_1"]
    rejected = next(txn for txn, out in transactions.items() if out["decision"] == "reject")
    answer = replay.counterfactual(rejected)
    assert answer.options, answer.none_found
    assert all(option.outputs["decision"] == "approve" for option in answer.options)
    assert all("age" not in option.changes for option in answer.options)  # immutable


def test_a_model_file_altered_in_the_blob_store_fails_verify(champion):
    from replay.settings import load_settings
    from replay.stores.blobs import open_blob_store

    manifest, _ = champion
    weights = next(item for item in manifest.model_files if item.path.endswith(".skops"))
    stored = open_blob_store(load_settings().blobs).path(weights.sha256)
    original = stored.read_bytes()
    stored.chmod(0o644)
    try:
        stored.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        verified = run_cli("manifest", "verify", manifest.short_id)
        assert verified.returncode == 4, verified.stdout + verified.stderr
        assert weights.path in verified.stdout + verified.stderr
    finally:
        stored.write_bytes(original)


@pytest.mark.parametrize(
    ("uri", "score", "inputs"),
    [
        ("models:/credit-sk/2", "prediction_1", BOUNDS),  # cloudpickle, as older models are
        ("models:/credit-xgb/1", "prediction", BOUNDS),  # an XGBoost booster
        ("models:/credit-xgb/2", "prediction", BOUNDS),  # a tensor: the spec names columns
        ("models:/credit-lgbm/1", "prediction", BOUNDS),  # LightGBM: libgomp1 inferred
    ],
)
def test_other_serializations_and_libraries_replay_bit_for_bit(
    team_registry, tmp_path, uri, score, inputs
):
    import replay

    url, _ = team_registry
    applicants = [{k: v for k, v in a.items() if k in inputs or "sk" in uri} for a in APPLICANTS]
    with reading(url):
        manifest = replay.capture(uri, spec=spec_file(tmp_path, score, inputs))
    if "lgbm" in uri:  # its wheel loads the system's libgomp, which the base lacks
        assert [p.name for p in manifest.environment.system_packages] == ["libgomp1"]
    built = replay.build(manifest.manifest_id)
    print(f"{uri}: image {built.image_id[:19]}, {_image_size(built.image_id)} MB")
    transactions = decided(manifest.manifest_id, applicants)
    for transaction in transactions:
        assert replay.replay(transaction).verdict == "reproduced"
    edited = replay.whatif(list(transactions)[1], {"debts": 9500.0})
    assert edited.modified_outputs[score] < edited.original_outputs[score]


def test_a_bad_model_uri_or_spec_is_one_line(team_registry, tmp_path):
    url, _ = team_registry
    env = {"MLFLOW_TRACKING_URI": url}
    missing = run_cli("capture", "models:/credit-sk/99", env=env)
    assert missing.returncode == 2
    assert "models:/credit-sk/99: not found in the registry" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
    unsaid = run_cli("capture", "models:/credit-xgb/1", env=env)
    assert unsaid.returncode == 2 and "which decision helps" in unsaid.stderr
    stage = run_cli("capture", "models:/credit-xgb/Production", env=env)
    assert stage.returncode == 2 and "not frozen" in stage.stderr
    # a tensor's columns named out of order: its example's incomes land on `age`
    shuffled = spec_file(tmp_path, "prediction", {key: BOUNDS[key] for key in reversed(BOUNDS)})
    swapped = run_cli("capture", "models:/credit-xgb/2", "--spec", str(shuffled), env=env)
    assert swapped.returncode == 2, swapped.stderr
    assert "is above its maximum" in swapped.stderr
    assert "in this order: age, debts, income" in swapped.stderr


def _image_size(image_id: str) -> int:
    from replay.images.engine import docker_client

    from replay.settings import load_settings

    image = docker_client(load_settings().docker_host).images.get(image_id)
    return round(image.attrs["Size"] / 1e6)


def test_the_report_names_the_registered_model_as_its_evidence(champion, tmp_path):
    manifest, transactions = champion
    made = run_cli("report", next(iter(transactions)), "--out", str(tmp_path), "--format", "html")
    assert made.returncode == 0, made.stdout + made.stderr
    page = next(tmp_path.glob("*.html")).read_text()
    assert "MLflow model models:/credit-sk@champion version 1" in page
    assert manifest.manifest_id in page
