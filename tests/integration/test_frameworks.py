"""Bring your own model: a LightGBM and an XGBoost deployment as folder deployments,
each trained on the host (fixed seeds, one thread) and saved in its library's own
format, captured, built, deciding, replayed bit for bit, asked what-if and for
counterfactuals, and reported. LightGBM needs the system's OpenMP runtime (`libgomp1`,
a Debian package fetched at capture for the base image's release); the xgboost-cpu
wheel vendors its own. Without the package LightGBM's build fails, and leaves nothing."""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import committed_fixture, run_cli

pytestmark = pytest.mark.integration


@dataclass
class Framework:
    """A fixture deployment, captured and built, with its warm container."""

    manifest: Any
    build: Any
    warm: Any
    image_size: int  # bytes, as the engine reports the image
    seconds: dict[str, float]


def _bring_up(name: str, tmp_path_factory) -> Any:
    import docker

    import replay
    from replay.execution.warm import WarmDeployment

    folder = committed_fixture(name, tmp_path_factory)
    started = time.monotonic()
    manifest = replay.capture(folder)
    captured = time.monotonic()
    build = replay.build(manifest.manifest_id)
    built = time.monotonic()
    size = docker.from_env().images.get(build.image_id).attrs["Size"]
    seconds = {"capture": captured - started, "build": built - captured}
    # seen with -s, and in the junit XML through record_property below
    print(f"\n{name}: image {build.tag} {size / 1e6:.0f} MB; {seconds}")
    with WarmDeployment(manifest.manifest_id) as warm:
        yield Framework(manifest, build, warm, size, seconds)


@pytest.fixture(scope="module")
def lightgbm(registry, tmp_path_factory):
    yield from _bring_up("lightgbm", tmp_path_factory)


@pytest.fixture(scope="module")
def xgboost(registry, tmp_path_factory):
    yield from _bring_up("xgboost", tmp_path_factory)


def decide(framework: Framework, rows: list[dict]) -> list[Any]:
    """Each row decided in the deployment's container (row i with seed i) and logged."""
    from replay.ledger.decisions import record_decision

    entries = []
    for seed, row in enumerate(rows):
        outputs = framework.warm.predict(row, seed)
        entries.append(record_decision(framework.manifest.manifest_id, row, outputs, seed=seed))
    return entries


def cli_json(*args: str) -> Any:
    result = run_cli(*args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def ask_everything(framework: Framework, entry: Any, edit: dict[str, str], tmp_path: Path):
    """Replay, what-if, counterfactual and report of one unfavourable decision, each
    checked against the container itself."""
    favourable = framework.manifest.schema.output.favourable
    replayed = cli_json("replay", entry.txn_id)
    assert replayed["verdict"] == "reproduced" and replayed["differences"] == []

    changes = [f"{name}={value}" for name, value in edit.items()]
    whatif = cli_json("whatif", entry.txn_id, *[a for c in changes for a in ("--set", c)])
    edited = {**entry.inputs, **framework.manifest.schema.edits(edit)}
    assert whatif["modified_outputs"] == framework.warm.predict(edited, entry.seed)

    found = cli_json("counterfactual", entry.txn_id, "-n", "2")
    assert found["target"] == favourable and found["options"], found["none_found"]
    for option in found["options"]:
        assert option["outputs"]["decision"] == favourable
        assert framework.warm.predict(option["inputs"], entry.seed) == option["outputs"]

    [made] = cli_json("report", entry.txn_id, "--out", str(tmp_path), "--format", "html")
    assert made["reproduced"] and Path(made["files"]["html"]).is_file()
    return made


def test_lightgbm_brings_libgomp_and_answers_every_question(lightgbm, tmp_path, record_property):
    record_property("lightgbm_image_bytes", lightgbm.image_size)
    record_property("lightgbm_seconds", json.dumps(lightgbm.seconds))
    [package] = lightgbm.manifest.environment.system_packages
    assert (package.name, package.architecture) == ("libgomp1", "amd64")
    assert package.filename.startswith("libgomp1_") and package.filename.endswith(".deb")
    # the image reports the package as dpkg installed it, and the build checked it
    installed = lightgbm.warm.record.fingerprint["system_packages"]
    assert installed["libgomp1"]["version"] == package.version
    shown = cli_json("manifest", "show", lightgbm.manifest.manifest_id)
    assert shown["manifest"]["environment"]["system_packages"][0]["name"] == "libgomp1"

    rows = lightgbm.warm.reference_rows(40)
    entries = decide(lightgbm, rows)
    rejected = next(e for e in entries if e.outputs["decision"] == "reject")
    made = ask_everything(lightgbm, rejected, {"income": "250000", "debt": "0"}, tmp_path)
    assert "lightgbm" in json.dumps(made["described"]).lower()


def test_xgboost_needs_no_system_package_and_answers_every_question(
    xgboost, tmp_path, record_property
):
    record_property("xgboost_image_bytes", xgboost.image_size)
    record_property("xgboost_seconds", json.dumps(xgboost.seconds))
    assert xgboost.manifest.environment.system_packages == ()
    assert "system_packages" not in xgboost.manifest.document["environment"]
    assert xgboost.warm.record.fingerprint["system_packages"] == {}

    rows = xgboost.warm.reference_rows(200)
    risky = {"amount": 3000, "items": 1, "account_days": 2, "first_order": True, "express": True}
    large = {**rows[0], "amount": 18000}  # referred by the rule, with no score
    entries = decide(xgboost, [*rows[:20], risky, large])
    referred = entries[-1]
    assert referred.outputs == {"decision": "refer", "score": None}
    assert cli_json("replay", referred.txn_id)["verdict"] == "reproduced"
    held = entries[-2]
    assert held.outputs["decision"] == "hold", held.outputs
    made = ask_everything(xgboost, held, {"express": "false", "amount": "200"}, tmp_path)
    assert "xgboost" in json.dumps(made["described"]).lower()


def test_a_stored_deb_whose_bytes_changed_fails_verify_naming_it(lightgbm):
    from replay.settings import load_settings
    from replay.stores.blobs import LocalBlobStore, open_blob_store

    [package] = lightgbm.manifest.environment.system_packages
    blobs = open_blob_store(load_settings().blobs)
    assert isinstance(blobs, LocalBlobStore)
    stored = blobs.path(package.sha256)
    original = stored.read_bytes()
    assert run_cli("manifest", "verify", lightgbm.manifest.manifest_id).returncode == 0
    try:
        stored.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        result = run_cli("manifest", "verify", lightgbm.manifest.manifest_id)
    finally:
        stored.write_bytes(original)
    assert result.returncode == 4, result.stderr
    assert f"MISMATCH system package {package.filename}" in result.stdout
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert f"system package {package.filename}: sha256" in error


def images_labelled(manifest_id: str) -> list[str]:
    """Every image carrying the manifest's label, as `docker images -a` lists them."""
    listed = subprocess.run(
        ["docker", "images", "-a", "-q", "--filter", f"label=replay.manifest_id={manifest_id}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return listed.stdout.split()


def every_image() -> set[str]:
    """Every image the engine holds, intermediate ones too."""
    listed = subprocess.run(
        ["docker", "images", "-a", "-q", "--no-trunc"], capture_output=True, text=True, check=True
    )
    return set(listed.stdout.split())


def test_a_failed_build_leaves_no_image_and_is_listed_failed_with_its_reason(
    registry, tmp_path_factory
):
    import replay

    # LightGBM without the system's OpenMP runtime: the image builds, but cannot load
    folder = committed_fixture(
        "lightgbm",
        tmp_path_factory,
        edits=[("replay.yaml", "system_packages: [libgomp1]\n", ""), ("replay.yaml", '"1"', '"2"')],
    )
    manifest = replay.capture(folder)
    assert manifest.environment.system_packages == ()
    before = every_image()
    result = run_cli("build", manifest.manifest_id)
    assert result.returncode == 2, result.stderr
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "libgomp.so.1" in error, error
    # nothing the build made stays: not the image, not a stage, not a step before
    assert every_image() - before == set()

    listed = cli_json("deployments", "list", manifest.name)
    [record] = [r for r in listed if r["manifest_id"] == manifest.manifest_id]
    assert record["status"] == "failed" and record["image_id"] is None
    assert "libgomp.so.1" in record["build_failure"]
    assert "\n" not in record["build_failure"]
    table = run_cli("deployments", "list", manifest.name)
    assert "failed: the deployment failed to load" in table.stdout


def test_a_successful_build_clears_an_earlier_failure(registry, tmp_path_factory):
    import replay
    from replay.settings import load_settings
    from replay.stores.manifests import manifest_store

    folder = committed_fixture("seeded", tmp_path_factory, edits=[("replay.yaml", '"1"', '"9"')])
    manifest = replay.capture(folder)
    store = manifest_store(load_settings())
    store.record_build_failure(manifest.manifest_id, "an earlier attempt failed")
    [before] = [r for r in store.history("seeded") if r.manifest_id == manifest.manifest_id]
    assert before.status == "failed"
    replay.build(manifest.manifest_id)
    [after] = [r for r in store.history("seeded") if r.manifest_id == manifest.manifest_id]
    assert after.status == "built" and after.build_failure is None
    assert after.image_id.removeprefix("sha256:")[:12] in images_labelled(manifest.manifest_id)


def test_a_deployment_with_system_packages_rebuilds_to_the_same_image(lightgbm):
    """dpkg writes a log and ldconfig a cache that differ from one build to the next:
    the environment leaves them out, so a rebuild from nothing is the same image."""
    import replay

    again = replay.build(lightgbm.manifest.manifest_id, rebuild=True)
    assert (again.image_id, again.identical) == (lightgbm.build.image_id, True)
