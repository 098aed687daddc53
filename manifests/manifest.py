"""The manifest: what a deployment *is*, frozen as canonical JSON.

`Manifest` wraps the validated document (the JSON Schema in `manifest.schema.json` is
the single definition of its shape) and names the parts other layers need.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from replay.manifests.canonical import canonical_json, document_id, sha256_bytes
from replay.manifests.lock import LockedRequirement, parse_lock
from replay.manifests.schema import Schema

from replay.errors import BadInput, IntegrityError

SCHEMA_VERSION = 1
GLOBAL_SEED = "global"  # the one seed in `runtime.seeds` the runner uses
MIN_ID_PREFIX = 6  # the shortest prefix of a manifest id accepted in its place


def is_id_prefix(text: str) -> bool:
    """Whether `text` can name a manifest: at least MIN_ID_PREFIX lowercase hex digits."""
    return len(text) >= MIN_ID_PREFIX and all(c in "0123456789abcdef" for c in text)


@cache
def manifest_schema() -> dict[str, Any]:
    text = resources.files("replay.manifests").joinpath("manifest.schema.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


def schema_errors(document: Any) -> list[str]:
    """Every way `document` breaks the schema, as `path: message` lines."""
    import jsonschema  # about 0.2 s: only commands that validate a manifest pay it

    validator = jsonschema.Draft202012Validator(
        manifest_schema(), format_checker=jsonschema.FormatChecker()
    )
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    return [
        f"{'/'.join(str(p) for p in error.absolute_path) or '(top)'}: {error.message}"
        for error in errors
    ]


@dataclass(frozen=True)
class DvcCopy:
    """Where DVC keeps a model file: its md5 and the remote it was pushed to."""

    md5: str
    remote: str | None
    remote_url: str | None


@dataclass(frozen=True)
class ModelFile:
    path: str
    sha256: str
    size: int
    dvc: DvcCopy | None


@dataclass(frozen=True)
class Code:
    repository: str  # a path on the capturing machine, the `origin` URL, or a model URI
    subdirectory: str
    commit: str | None  # None when replay wrote the code (a model captured from MLflow)
    dirty: bool
    archive_sha256: str
    archive_size: int
    entrypoint: str  # module:function


@dataclass(frozen=True)
class ModelSource:
    """Where a model captured from MLflow came from: the URI given, the registered
    version and run it named then, and the threshold rule its decision is made by."""

    uri: str
    registered_name: str | None
    version: str | None
    alias: str | None
    run_id: str | None
    flavours: tuple[str, ...]
    mlflow_version: str | None
    rule: Mapping[str, Any] | None


@dataclass(frozen=True)
class Wheel:
    name: str
    version: str
    filename: str
    sha256: str


@dataclass(frozen=True)
class SystemPackage:
    """A Debian package installed in the image from its `.deb`, fetched at capture for
    the base image's release and architecture (a package `replay.yaml` names, or one it
    needs that the base lacks)."""

    name: str
    version: str
    architecture: str
    filename: str
    sha256: str


@dataclass(frozen=True)
class Environment:
    python: str  # major.minor
    platforms: tuple[str, ...]
    lock: str  # the hashed lock text
    lock_sha256: str
    wheels: tuple[Wheel, ...]
    system_packages: tuple[SystemPackage, ...] = ()

    @property
    def requirements(self) -> list[LockedRequirement]:
        return parse_lock(self.lock)


IMAGE_RECIPE = 2  # the layout of the images of manifests captured now (see ImageRecipe)


@dataclass(frozen=True)
class ImageRecipe:
    base: str  # name@sha256:...
    requested_base: str
    runner_sha256: str
    # how the image is laid out: 1, the environment as pip installs it; 2 (manifests
    # captured since images are reproducible), its bytecode compiled in checked-hash mode
    recipe: int = 1


@dataclass(frozen=True)
class Runtime:
    seeds: Mapping[str, int]
    threads: int  # BLAS/OpenMP threads; also the containers' CPU limit
    env: Mapping[str, str]
    cpu: Mapping[str, Any]
    engine: Mapping[str, Any]
    # The deployment says its `predict_batch` gives each row the bits `predict` gives it
    # alone; only then, and once checked on the reference sample, are rows batched.
    batch_exact: bool = False

    @property
    def seed(self) -> int:
        """The deployment's seed: set before `load()`, and used for any decision logged
        without a seed of its own."""
        return self.seeds.get(GLOBAL_SEED, 0)


@dataclass(frozen=True)
class Reference:
    path: str
    sha256: str
    rows: int


@dataclass(frozen=True)
class Manifest:
    """A validated manifest document and its typed parts.

    `document` is kept exactly as stored: its canonical JSON is what `manifest_id`
    hashes. Everything else reads the typed attributes.
    """

    document: dict[str, Any]
    manifest_id: str = field(init=False)
    name: str = field(init=False)
    version: str = field(init=False)
    created_at: str = field(init=False)
    code: Code = field(init=False)
    model_files: tuple[ModelFile, ...] = field(init=False)
    model_source: ModelSource | None = field(init=False)
    environment: Environment = field(init=False)
    image: ImageRecipe = field(init=False)
    runtime: Runtime = field(init=False)
    schema: Schema = field(init=False)
    reference: Reference = field(init=False)

    def __post_init__(self) -> None:
        problems = schema_errors(self.document)
        if problems:
            raise BadInput(f"manifest does not match schema v{SCHEMA_VERSION}: {problems[0]}")
        document = self.document
        environment = document["environment"]
        if sha256_bytes(environment["lock"].encode()) != environment["lock_sha256"]:
            raise IntegrityError("manifest lock text does not match environment.lock_sha256")
        parts: dict[str, Any] = {
            "manifest_id": document_id(document),
            "name": document["name"],
            "version": document["version"],
            "created_at": document["created_at"],
            "code": Code(**document["code"]),
            "model_files": tuple(
                ModelFile(
                    item["path"],
                    item["sha256"],
                    item["size"],
                    DvcCopy(**item["dvc"]) if item["dvc"] else None,
                )
                for item in document["model"]["files"]
            ),
            "model_source": _model_source(document["model"].get("source")),
            "environment": Environment(
                python=environment["python"],
                platforms=tuple(environment["platforms"]),
                lock=environment["lock"],
                lock_sha256=environment["lock_sha256"],
                wheels=tuple(Wheel(**wheel) for wheel in environment["wheels"]),
                system_packages=tuple(
                    SystemPackage(**package) for package in environment.get("system_packages", ())
                ),
            ),
            "image": ImageRecipe(**document["image"]),
            # a copy: changing a typed part must never change the document its id hashes
            "runtime": Runtime(**copy.deepcopy(document["runtime"])),
            "schema": Schema.from_json(document["io"]),
            "reference": Reference(**document["reference"]),
        }
        for key, value in parts.items():
            object.__setattr__(self, key, value)

    @classmethod
    def from_json(cls, data: bytes | str, expected_id: str | None = None) -> Manifest:
        manifest = cls(json.loads(data))
        if expected_id is not None and manifest.manifest_id != expected_id:
            raise IntegrityError(
                f"stored manifest hashes to {manifest.manifest_id}, not {expected_id}"
            )
        return manifest

    def to_json(self) -> bytes:
        return canonical_json(self.document)

    def to_dict(self) -> dict[str, Any]:
        return {"manifest_id": self.manifest_id, "manifest": self.document}

    @property
    def short_id(self) -> str:
        return self.manifest_id[:12]

    @property
    def entrypoint(self) -> str:
        return self.code.entrypoint


def _model_source(source: Mapping[str, Any] | None) -> ModelSource | None:
    if source is None:
        return None
    source = copy.deepcopy(dict(source))
    return ModelSource(**{**source, "flavours": tuple(source["flavours"])})
