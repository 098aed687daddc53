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
    assert spec.inputs["age"]["immutable"] is True
    assert spec.output["favourable"] == "approved"
    assert spec.threads == 1  # not given: one thread


def test_threads_pin_every_thread_pool(deployment):
    from replay.manifests.capture import THREAD_VARIABLES, runtime_env

    edit(deployment, lambda d: d.update(threads=4))
    threads = load_spec(deployment).threads
    assert threads == 4
    env = runtime_env(threads)
    assert {name: env[name] for name in THREAD_VARIABLES} == dict.fromkeys(THREAD_VARIABLES, "4")


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
        (lambda d: d.update(seeds={"global": "x"}), "integers"),
        (lambda d: d.update(threads=0), "`threads` must be a whole number from 1"),
        (lambda d: d.update(threads=1.5), "`threads` must be a whole number from 1"),
        (lambda d: d.update(threads=True), "`threads` must be a whole number from 1"),
        (lambda d: d.update(threads=257), "`threads` must be a whole number from 1"),
    ],
)
def test_bad_specs_name_the_problem(deployment, change, message):
    edit(deployment, change)
    with pytest.raises(BadInput, match=message):
        load_spec(deployment)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(BadInput, match=r"no replay\.yaml"):
        load_spec(tmp_path)
    (tmp_path / "replay.yaml").write_text("name: [unclosed")
    with pytest.raises(BadInput, match="not valid YAML"):
        load_spec(tmp_path)
