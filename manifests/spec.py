"""`replay.yaml`: how a deployment describes itself, parsed and checked."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from replay.manifests.manifest import GLOBAL_SEED
from replay.manifests.schema import Schema, refuse_unknown_keys

from replay.errors import BadInput, one_line

SPEC_FILE = "replay.yaml"
MAX_THREADS = 256  # as the manifest schema allows
OUTPUT_KEYS = ("decision", "score", "favourable", "fields")
# Every top-level key replay.yaml may hold: any other is a typo or a feature this
# version lacks, and silently ignoring it would capture something other than was meant.
TOP_KEYS = (
    "name",
    "version",
    "entrypoint",
    "model",
    "requirements",
    "reference_sample",
    "base_image",
    "seeds",
    "threads",
    "batch_exact",
    "kernels",
    "system_packages",
    "inputs",
    "output",
)
KERNELS = ("baseline", "native")  # `kernels`: pinned (the default), or each CPU's own
# A Debian package name (Debian policy 5.6.1): lowercase letters, digits, `+`, `-`, `.`,
# at least two characters, starting with a letter or digit.
DEBIAN_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")


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
    batch_exact: bool
    io: dict[str, Any]  # the `io` section of the manifest, as written
    schema: Schema  # the same, typed and checked
    # Debian packages the image needs beyond its base (`libgomp1` for LightGBM), as named
    system_packages: tuple[str, ...] = ()
    # numeric kernels: `baseline` (the same bits on any CPU of the architecture) or
    # `native` (each CPU's fastest, whose last bits may differ from one CPU to another)
    kernels: str = "baseline"


def _require(data: dict[str, Any], key: str, kind: type, where: Path) -> Any:
    if key not in data:
        raise BadInput(f"{where}: missing `{key}`")
    value = data[key]
    if not isinstance(value, kind):
        raise BadInput(f"{where}: `{key}` must be a {kind.__name__}")
    return value


def _system_packages(data: dict[str, Any], file: Path) -> tuple[str, ...]:
    packages = data.get("system_packages", [])
    if not isinstance(packages, list):
        raise BadInput(f"{file}: `system_packages` must list Debian package names")
    for package in packages:
        if not isinstance(package, str) or not DEBIAN_PACKAGE.match(package):
            raise BadInput(
                f"{file}: system package {package!r} is not a Debian package name "
                "(lowercase letters, digits, `+`, `-`, `.`)"
            )
    return tuple(dict.fromkeys(packages))  # the same package named twice is one


def read_mapping(file: Path) -> dict[str, Any]:
    """A YAML file whose top is a mapping (`replay.yaml`, a model's spec), or BadInput."""
    try:
        data = yaml.safe_load(file.read_text())
    except yaml.YAMLError as error:
        raise BadInput(f"{file}: not valid YAML ({one_line(error)})") from None
    if not isinstance(data, dict):
        raise BadInput(f"{file}: expected a mapping at the top")
    return data


def load_spec(path: Path | str) -> DeploymentSpec:
    """Read `replay.yaml` from a deployment folder (or the file itself)."""
    path = Path(path)
    file = path / SPEC_FILE if path.is_dir() else path
    if not file.is_file():
        raise BadInput(f"no {SPEC_FILE} in {path}")
    data = read_mapping(file)
    root = file.parent.resolve()
    refuse_unknown_keys(data, TOP_KEYS, str(file))

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
    seeds = data.get("seeds", {GLOBAL_SEED: 0})
    if isinstance(seeds, dict):
        refuse_unknown_keys(seeds, (GLOBAL_SEED,), f"{file}: seeds")
    if (
        not isinstance(seeds, dict)
        or set(seeds) != {GLOBAL_SEED}
        or type(seeds[GLOBAL_SEED]) is not int
    ):
        raise BadInput(
            f"{file}: `seeds` must be {{{GLOBAL_SEED}: N}}, the whole number the runner seeds "
            "random (and numpy, torch) with before load() and for decisions logged unseeded"
        )
    threads = data.get("threads", 1)
    if type(threads) is not int or not 1 <= threads <= MAX_THREADS:
        raise BadInput(f"{file}: `threads` must be a whole number from 1 to {MAX_THREADS}")

    batch_exact = data.get("batch_exact", False)
    if not isinstance(batch_exact, bool):
        raise BadInput(f"{file}: `batch_exact` must be true or false")

    kernels = data.get("kernels", "baseline")
    if kernels not in KERNELS:
        raise BadInput(f"{file}: `kernels` must be one of {', '.join(KERNELS)}")

    base_image = data.get("base_image")
    if base_image is not None and not isinstance(base_image, str):
        raise BadInput(f"{file}: `base_image` must be an image reference (`python:3.11-slim`)")

    inputs = _require(data, "inputs", dict, file)
    output = _require(data, "output", dict, file)
    refuse_unknown_keys(output, OUTPUT_KEYS, f"{file}: output")
    _require(output, "fields", dict, file)
    io = {
        "inputs": {str(name): spec for name, spec in inputs.items()},
        "output": {key: output[key] for key in OUTPUT_KEYS if key in output},
    }
    schema = Schema.from_json(io, str(file))

    return DeploymentSpec(
        root=root,
        name=_require(data, "name", str, file),
        version=str(data.get("version", "0")),
        entrypoint=entrypoint,
        model=model,
        requirements=requirements,
        reference_sample=reference,
        base_image=base_image,
        seeds=seeds,
        threads=threads,
        batch_exact=batch_exact,
        io=io,
        schema=schema,
        system_packages=_system_packages(data, file),
        kernels=kernels,
    )
