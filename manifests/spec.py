"""`replay.yaml`: how a deployment describes itself, parsed and checked."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from replay.errors import BadInput

SPEC_FILE = "replay.yaml"
MAX_THREADS = 256  # as the manifest schema allows
_FEATURE_KEYS = {"type", "min", "max", "values", "immutable", "monotone", "description"}


@dataclass(frozen=True)
class DeploymentSpec:
    root: Path
    name: str
    version: str
    entrypoint: str
    model: list[str]
    requirements: str
    reference_sample: str
    base_image: str | None
    seeds: dict[str, int]
    threads: int
    inputs: dict[str, dict[str, Any]]
    output: dict[str, Any]


def _require(data: dict[str, Any], key: str, kind: type, where: Path) -> Any:
    if key not in data:
        raise BadInput(f"{where}: missing `{key}`")
    value = data[key]
    if not isinstance(value, kind):
        raise BadInput(f"{where}: `{key}` must be a {kind.__name__}")
    return value


def _check_feature(where: str, spec: Any) -> dict[str, Any]:
    if not isinstance(spec, dict):
        raise BadInput(f"{where} must be a mapping with at least `type`")
    unknown = set(spec) - _FEATURE_KEYS
    if unknown:
        raise BadInput(f"{where}: unknown key `{sorted(unknown)[0]}`")
    if spec.get("type") not in {"number", "integer", "boolean", "string"}:
        raise BadInput(f"{where}: type must be number, integer, boolean or string")
    if "min" in spec and "max" in spec and spec["min"] > spec["max"]:
        raise BadInput(f"{where}: min {spec['min']} is above max {spec['max']}")
    return dict(spec)


def load_spec(path: Path | str) -> DeploymentSpec:
    """Read `replay.yaml` from a deployment folder (or the file itself)."""
    path = Path(path)
    file = path / SPEC_FILE if path.is_dir() else path
    if not file.is_file():
        raise BadInput(f"no {SPEC_FILE} in {path}")
    try:
        data = yaml.safe_load(file.read_text())
    except yaml.YAMLError as error:
        raise BadInput(f"{file}: not valid YAML ({str(error).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise BadInput(f"{file}: expected a mapping at the top")
    root = file.parent.resolve()

    model = _require(data, "model", list, file)
    if not model or not all(isinstance(item, str) for item in model):
        raise BadInput(f"{file}: `model` must list at least one file path")
    for item in model:
        if not (root / item).is_file():
            raise BadInput(f"{file}: model file {item} does not exist (train or `dvc pull` it)")
    requirements = _require(data, "requirements", str, file)
    if not (root / requirements).is_file():
        raise BadInput(f"{file}: requirements file {requirements} does not exist")
    reference = _require(data, "reference_sample", str, file)
    if not (root / reference).is_file():
        raise BadInput(f"{file}: reference sample {reference} does not exist")
    entrypoint = _require(data, "entrypoint", str, file)
    if entrypoint.count(":") != 1:
        raise BadInput(f"{file}: entrypoint must be `module:function`, not {entrypoint!r}")
    seeds = data.get("seeds", {"global": 0})
    if not isinstance(seeds, dict) or not all(isinstance(v, int) for v in seeds.values()):
        raise BadInput(f"{file}: `seeds` must map names to integers")
    threads = data.get("threads", 1)
    if type(threads) is not int or not 1 <= threads <= MAX_THREADS:
        raise BadInput(f"{file}: `threads` must be a whole number from 1 to {MAX_THREADS}")

    inputs = _require(data, "inputs", dict, file)
    checked_inputs = {
        str(name): _check_feature(f"{file}: input `{name}`", spec) for name, spec in inputs.items()
    }
    output = _require(data, "output", dict, file)
    fields = _require(output, "fields", dict, file)
    checked_fields = {
        str(name): _check_feature(f"{file}: output field `{name}`", spec)
        for name, spec in fields.items()
    }
    for key in ("decision", "score"):
        field = _require(output, key, str, file)
        if field not in checked_fields:
            raise BadInput(f"{file}: output `{key}` names {field!r}, which is not in `fields`")
    if "favourable" not in output:
        raise BadInput(f"{file}: output needs `favourable`, the decision value that helps")

    return DeploymentSpec(
        root=root,
        name=_require(data, "name", str, file),
        version=str(data.get("version", "0")),
        entrypoint=entrypoint,
        model=model,
        requirements=requirements,
        reference_sample=reference,
        base_image=data.get("base_image"),
        seeds=seeds,
        threads=threads,
        inputs=checked_inputs,
        output={
            "decision": output["decision"],
            "score": output["score"],
            "favourable": output["favourable"],
            "fields": checked_fields,
        },
    )
