"""A team's MLflow Model Registry, read: which version a model URI names, and its files.

The team's own tracking and registry servers (`MLFLOW_TRACKING_URI`,
`MLFLOW_REGISTRY_URI`) are read when set, else replay's own store. Nothing is written
there: a captured model is copied into replay's stores, so it replays after the
registry has deleted it.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from replay.errors import BadInput, EnvironmentProblem, one_line
from replay.manifests.model_uri import ModelReference
from replay.settings import Settings, without_password


@dataclass(frozen=True)
class ModelOrigin:
    """Where a captured model came from, as the manifest records it."""

    uri: str
    registered_name: str | None
    version: str | None
    alias: str | None
    run_id: str | None


def registry_uris(settings: Settings) -> tuple[str, str]:
    """(tracking, registry) URIs: the team's when set, else replay's own store."""
    tracking = os.environ.get("MLFLOW_TRACKING_URI") or settings.tracking_uri
    return tracking, os.environ.get("MLFLOW_REGISTRY_URI") or tracking


def fetch_model(reference: ModelReference, destination: Path, settings: Settings) -> ModelOrigin:
    """Download the model's artifacts into `destination` (an `MLmodel` at its top) and
    say which registered version and run they are."""
    if reference.kind == "folder":
        import shutil

        shutil.copytree(str(reference.path), destination, symlinks=False)
        return ModelOrigin(reference.uri, None, None, None, None)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    from mlflow.artifacts import download_artifacts
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    tracking, registry = registry_uris(settings)
    client = MlflowClient(tracking_uri=tracking, registry_uri=registry)
    where = without_password(registry)
    try:
        if reference.kind == "run":
            origin = ModelOrigin(reference.uri, None, None, None, reference.run_id)
            source = reference.uri
        else:
            version = _version(client, reference)
            origin = ModelOrigin(
                reference.uri, reference.name, str(version.version), reference.alias,
                version.run_id or None,
            )  # fmt: skip
            source = client.get_model_version_download_uri(version.name, version.version)
        destination.parent.mkdir(parents=True, exist_ok=True)
        downloaded = download_artifacts(
            artifact_uri=source, dst_path=str(destination.parent), tracking_uri=tracking
        )
    except MlflowException as error:
        if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE"):
            raise BadInput(f"{reference.uri}: not found in the registry at {where}") from None
        raise EnvironmentProblem(
            f"the MLflow registry at {where} could not give {reference.uri}: "
            f"{one_line(without_password(str(error)))}"
        ) from None
    except OSError as error:
        raise EnvironmentProblem(
            f"the MLflow registry at {where} could not give {reference.uri}: "
            f"{one_line(without_password(str(error)) or type(error).__name__)}"
        ) from None
    Path(downloaded).rename(destination)
    return origin


def _version(client: Any, reference: ModelReference) -> Any:
    if reference.kind == "alias":
        return client.get_model_version_by_alias(reference.name, reference.alias)
    return client.get_model_version(reference.name, reference.version)
