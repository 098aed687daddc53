"""Which MLflow model a capture names: a registry version or alias, a run's model, or a
model folder on this machine."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from replay.errors import BadInput

MODEL_FILE = "MLmodel"  # every MLflow model folder has one
_REGISTERED = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>[^/@]+)|@(?P<alias>[^/@]+))$")
_RUN = re.compile(r"^runs:/(?P<run_id>[0-9a-zA-Z]+)/(?P<path>.+)$")

ModelKind = Literal["version", "alias", "run", "folder"]


@dataclass(frozen=True)
class ModelReference:
    """A parsed model URI; `uri` is the text as given (a folder as an absolute path)."""

    uri: str
    kind: ModelKind
    name: str | None = None  # the registered model
    version: str | None = None
    alias: str | None = None
    run_id: str | None = None
    path: str | None = None  # the model's path inside its run, or the folder


def looks_like_model(target: str | Path) -> bool:
    """Whether `capture` was given an MLflow model rather than a deployment folder."""
    text = str(target)
    if text.startswith(("models:/", "runs:/")):
        return True
    folder = Path(text)
    return (
        folder.is_dir()
        and (folder / MODEL_FILE).is_file()
        and not (folder / "replay.yaml").is_file()
    )


def parse_model_uri(target: str | Path) -> ModelReference:
    """`models:/NAME/VERSION`, `models:/NAME@ALIAS`, `runs:/RUN_ID/PATH` or a folder
    holding an `MLmodel` file; anything else is refused in one line."""
    text = str(target)
    registered = _REGISTERED.match(text)
    if registered:
        name, version, alias = registered.group("name", "version", "alias")
        if version is not None and not version.isdigit():
            raise BadInput(
                f"{text}: a registered model is named by version number or @alias "
                f"(stages such as {version!r} are not frozen: use the version they point to)"
            )
        if version is not None:
            return ModelReference(text, "version", name=name, version=version)
        return ModelReference(text, "alias", name=name, alias=alias)
    run = _RUN.match(text)
    if run:
        return ModelReference(text, "run", run_id=run.group("run_id"), path=run.group("path"))
    if text.startswith(("models:/", "runs:/")):
        raise BadInput(
            f"{text}: expected models:/NAME/VERSION, models:/NAME@ALIAS or runs:/RUN_ID/PATH"
        )
    folder = Path(text).absolute()
    if not (folder / MODEL_FILE).is_file():
        raise BadInput(f"{text}: no {MODEL_FILE} file there (not an MLflow model folder)")
    return ModelReference(str(folder), "folder", path=str(folder))
