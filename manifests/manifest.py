"""The manifest: what a deployment *is*, frozen as canonical JSON.

`Manifest` wraps the validated document (the JSON Schema in `manifest.schema.json` is
the single definition of its shape) and names the parts other layers need.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from replay.manifests.canonical import canonical_json, document_id, sha256_bytes

from replay.errors import BadInput, IntegrityError

SCHEMA_VERSION = 1


@cache
def manifest_schema() -> dict[str, Any]:
    text = resources.files("replay.manifests").joinpath("manifest.schema.json").read_text()
    return json.loads(text)


def schema_errors(document: Any) -> list[str]:
    """Every way `document` breaks the schema, as `path: message` lines."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(
        manifest_schema(), format_checker=jsonschema.FormatChecker()
    )
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    return [
        f"{'/'.join(str(p) for p in error.absolute_path) or '(top)'}: {error.message}"
        for error in errors
    ]


@dataclass(frozen=True)
class ModelFile:
    path: str
    sha256: str
    size: int
    dvc: dict[str, Any] | None


@dataclass(frozen=True)
class Manifest:
    document: dict[str, Any]
    manifest_id: str = field(init=False)

    def __post_init__(self) -> None:
        problems = schema_errors(self.document)
        if problems:
            raise BadInput(f"manifest does not match schema v{SCHEMA_VERSION}: {problems[0]}")
        lock = self.document["environment"]
        if sha256_bytes(lock["lock"].encode()) != lock["lock_sha256"]:
            raise IntegrityError("manifest lock text does not match environment.lock_sha256")
        object.__setattr__(self, "manifest_id", document_id(self.document))

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

    @property
    def name(self) -> str:
        return self.document["name"]

    @property
    def short_id(self) -> str:
        return self.manifest_id[:12]

    @property
    def entrypoint(self) -> str:
        return self.document["code"]["entrypoint"]

    @property
    def commit(self) -> str:
        return self.document["code"]["commit"]

    @property
    def lock_text(self) -> str:
        return self.document["environment"]["lock"]

    @property
    def wheels(self) -> list[dict[str, str]]:
        return self.document["environment"]["wheels"]

    @property
    def base_image(self) -> str:
        return self.document["image"]["base"]

    @property
    def model_files(self) -> list[ModelFile]:
        return [ModelFile(**item) for item in self.document["model"]["files"]]

    @property
    def runtime_env(self) -> dict[str, str]:
        return self.document["runtime"]["env"]

    @property
    def threads(self) -> int:
        """BLAS/OpenMP threads the deployment runs with (also its containers' CPU limit)."""
        return self.document["runtime"]["threads"]

    @property
    def seeds(self) -> dict[str, int]:
        return self.document["runtime"]["seeds"]

    @property
    def io(self) -> dict[str, Any]:
        return self.document["io"]
