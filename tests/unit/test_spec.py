import shutil
from pathlib import Path

import pytest
import yaml
from replay.manifests.spec import load_spec

from replay.errors import BadInput

EXAMPLE = Path(__file__).parents[2] / "examples" / "credit" / "deployment"


@pytest.fixture
def deployment(tmp_path):
    """The credit example's replay.yaml with stand-in files where it names them."""
    shutil.copy(EXAMPLE / "replay.yaml", tmp_path / "replay.yaml")
    shutil.copy(EXAMPLE / "requirements.in", tmp_path / "requirements.in")
    for name in ("model/model.joblib", "data/reference.csv"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("stand-in")
    return tmp_path


def edit(folder: Path, change) -> None:
    data = yaml.safe_load((folder / "replay.yaml").read_text())
    change(data)
    (folder / "replay.yaml").write_text(yaml.safe_dump(data))


def test_example_spec_loads(deployment):
    spec = load_spec(deployment)
    assert spec.name == "credit-approval"
    assert spec.schema.inputs["age"].immutable is True
    assert spec.schema.output.favourable == "approved"
    assert spec.io["inputs"]["age"]["immutable"] is True  # as written, for the manifest
    assert spec.threads == 1  # not given: one thread


def test_threads_pin_every_thread_pool(deployment):
    from replay.manifests.capture import THREAD_VARIABLES, runtime_env

    edit(deployment, lambda d: d.update(threads=4))
    threads = load_spec(deployment).threads
    assert threads == 4
    env = runtime_env(threads)
    assert {name: env[name] for name in THREAD_VARIABLES} == dict.fromkeys(THREAD_VARIABLES, "4")


@pytest.mark.parametrize("architecture", ["x86_64", "amd64"])
def test_x86_64_kernels_are_pinned_unless_native(deployment, architecture):
    from replay.manifests.capture import KERNEL_PINS, runtime_env

    assert load_spec(deployment).kernels == "baseline"  # not given: pinned
    pinned = runtime_env(1, architecture, load_spec(deployment).kernels)
    assert {name: pinned[name] for name in KERNEL_PINS["x86_64"]} == KERNEL_PINS["x86_64"]
    edit(deployment, lambda d: d.update(kernels="native"))
    native = runtime_env(1, architecture, load_spec(deployment).kernels)
    assert not set(KERNEL_PINS["x86_64"]) & set(native)
    assert native == {k: v for k, v in pinned.items() if k not in KERNEL_PINS["x86_64"]}


def test_other_architectures_get_no_x86_64_pins():
    from replay.manifests.capture import KERNEL_PINS, runtime_env

    assert not set(KERNEL_PINS["x86_64"]) & set(runtime_env(1, "arm64"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("entrypoint"), "missing `entrypoint`"),
        (lambda d: d.update(entrypoint="credit.model"), "module:function"),
        (lambda d: d.update(model=["model/absent.joblib"]), "does not exist"),
        (lambda d: d["inputs"]["income"].update(min=10, max=1), "above max"),
        (lambda d: d["inputs"]["income"].update(colour="red"), "unknown key"),
        (lambda d: d["inputs"]["age"].update(type="float"), "type must be"),
        (lambda d: d["output"].update(decision="verdict"), "not in `fields`"),
        (lambda d: d["output"].pop("favourable"), "favourable"),
        (lambda d: d.update(seeds={"global": "x"}), "`seeds` must be {global: N}"),
        (lambda d: d.update(kernels="fastest"), "`kernels` must be one of baseline, native"),
        (lambda d: d.update(seeds={"global": 1, "numpy": 2}), r"seeds: unknown key `numpy`"),
        (lambda d: d.update(threads=0), "`threads` must be a whole number from 1"),
        (lambda d: d.update(threads=1.5), "`threads` must be a whole number from 1"),
        (lambda d: d.update(threads=True), "`threads` must be a whole number from 1"),
        (lambda d: d.update(threads=257), "`threads` must be a whole number from 1"),
        (lambda d: d.update(batch_exact="yes"), "`batch_exact` must be true or false"),
    ],
)
def test_bad_specs_name_the_problem(deployment, change, message):
    edit(deployment, change)
    with pytest.raises(BadInput, match=message):
        load_spec(deployment)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d.update(batch_exct=True),
            r"unknown key `batch_exct` \(did you mean `batch_exact`",
        ),
        (lambda d: d.update(colour="red"), r"unknown key `colour` \(known: base_image, "),
        (lambda d: d.update({3: "x"}), "unknown key `3`"),
        (
            lambda d: d["inputs"]["income"].update(monotonic="increasing"),
            "input `income`: unknown key `monotonic`",
        ),
        (lambda d: d["output"].update(favorable="approved"), "output: unknown key `favorable`"),
        (
            lambda d: d["output"]["fields"]["score"].update(nulable=True),
            "output field `score`: unknown key `nulable`",
        ),
        (lambda d: d.update(seeds={"global": 1, "Global": 2}), "seeds: unknown key `Global`"),
    ],
)
def test_every_unknown_key_is_named_with_its_file(deployment, change, message):
    edit(deployment, change)
    with pytest.raises(BadInput, match=message) as refused:
        load_spec(deployment)
    assert str(refused.value).startswith(str(deployment / "replay.yaml"))
    assert "\n" not in str(refused.value)


def test_an_unknown_key_fails_the_cli_with_exit_2(deployment):
    from click.testing import CliRunner
    from replay.cli.main import cli

    edit(deployment, lambda d: d.update(sytem_packages=["libgomp1"]))
    result = CliRunner().invoke(cli, ["capture", str(deployment)])
    assert result.exit_code == 2
    assert "unknown key `sytem_packages` (did you mean `system_packages`?)" in result.output


def test_system_packages_are_debian_names(deployment):
    assert load_spec(deployment).system_packages == ()
    edit(deployment, lambda d: d.update(system_packages=["libgomp1", "libstdc++6", "libgomp1"]))
    assert load_spec(deployment).system_packages == ("libgomp1", "libstdc++6")
    for bad in (["LibGomp"], ["libgomp1; rm -rf /"], ["a"], [1], "libgomp1"):
        edit(deployment, lambda d, bad=bad: d.update(system_packages=bad))
        with pytest.raises(BadInput, match="system"):
            load_spec(deployment)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(BadInput, match=r"no replay\.yaml"):
        load_spec(tmp_path)
    (tmp_path / "replay.yaml").write_text("name: [unclosed")
    with pytest.raises(BadInput, match="not valid YAML"):
        load_spec(tmp_path)


def manifest_of(folder: Path, tmp_path: Path):
    """The manifest `folder` would give, every fact but the spec held fixed."""
    from datetime import UTC, datetime

    from replay.manifests.capture import assemble_manifest
    from replay.manifests.source import SourceState

    from tests.factories import LOCK

    (folder / "data" / "reference.csv").write_text("income\n1\n")
    stand_in = tmp_path / "stand-in"
    stand_in.write_text("bytes")
    return assemble_manifest(
        spec=load_spec(folder),
        source=SourceState("/srv/credit", "", "a" * 40, False, folder),
        archive=stand_in,
        model_files=[{"path": "model/model.joblib", "sha256": "2" * 64, "size": 1, "dvc": None}],
        lock_text=LOCK,
        python="3.11",
        platforms=["manylinux_2_17_x86_64"],
        wheels=[],
        base_image="127.0.0.1:5000/replay/python@sha256:" + "5" * 64,
        requested_base="127.0.0.1:5000/replay/python:3.11-bookworm",
        runner=stand_in,
        engine={
            "version": "1",
            "api_version": "1",
            "os": "linux",
            "architecture": "amd64",
            "kernel": "6",
        },
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def test_the_seed_in_replay_yaml_is_part_of_the_manifest_id(deployment, tmp_path):
    first = manifest_of(deployment, tmp_path)
    assert first.runtime.seed == 1729
    assert manifest_of(deployment, tmp_path).manifest_id == first.manifest_id
    edit(deployment, lambda d: d.update(seeds={"global": 1730}))
    changed = manifest_of(deployment, tmp_path)
    assert changed.runtime.seed == 1730 and changed.manifest_id != first.manifest_id
