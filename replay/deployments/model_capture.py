"""Capturing a model straight from MLflow: no deployment code written by its team.

The model's files are downloaded from the registry (or a run, or a folder), hashed and
kept in replay's blob store; a deployment is written for it in a scratch folder (the
`replay.yaml` that `manifests/pyfunc.py` decides, the model's requirements, and the
adapter `images/pyfunc_entry.py` with its settings) and frozen like any other.
"""

from __future__ import annotations

import csv
import json
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from replay.errors import BadInput, ReplayWarning
from replay.manifests.capture import model_file_facts
from replay.manifests.model_uri import MODEL_FILE, parse_model_uri
from replay.manifests.pyfunc import (
    ADAPTER_MODULE,
    ADAPTER_SETTINGS,
    COLUMN_TYPES,
    MODEL_FOLDER,
    pyfunc_deployment,
    read_mlmodel,
    signature_inputs,
    tensor_dtype,
)
from replay.manifests.schema import Feature
from replay.manifests.source import SourceState
from replay.manifests.spec import SPEC_FILE, DeploymentSpec, load_spec, read_mapping
from replay.progress import step
from replay.settings import Settings
from replay.stores.blobs import open_blob_store
from replay.stores.models import store_model_files
from replay.stores.registry import ModelOrigin, fetch_model

REFERENCE = "reference.csv"
REQUIREMENTS = "requirements.in"


@dataclass(frozen=True)
class PreparedModel:
    """A model written out as a deployment, ready to be frozen like any other."""

    spec: DeploymentSpec
    source: SourceState
    model_files: list[dict[str, Any]]
    source_files: list[str]  # what the source archive holds (replay wrote all of it)
    model_source: dict[str, Any]  # the manifest's `model.source`


@contextmanager
def prepared_model(
    target: str | Path,
    *,
    spec: str | Path | None,
    reference: str | Path | None,
    settings: Settings,
) -> Iterator[PreparedModel]:
    """An MLflow model (`models:/NAME/VERSION`, `models:/NAME@ALIAS`,
    `runs:/RUN_ID/PATH` or a local model folder) as a deployment in a scratch folder
    that lives as long as the context; its files already kept in the blob store.

    `spec` (YAML, the keys of `replay.yaml` a signature cannot say: bounds,
    `immutable`, labels, which output decides and which decision is favourable, a
    threshold rule) and `reference` (a CSV of realistic inputs; else the model's input
    example) complete what the model says of itself."""
    model = parse_model_uri(target)
    given = _read_spec(spec)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "deployment"
        root.mkdir()
        with step(f"fetch {model.uri}"):
            origin = fetch_model(model, root / MODEL_FOLDER, settings)
        mlmodel = read_mlmodel((root / MODEL_FOLDER / MODEL_FILE).read_text(), model.uri)
        named = given.get("inputs")  # a tensor's columns are named by the spec
        named = list(named) if isinstance(named, dict) else []
        columns = signature_inputs(mlmodel, model.uri, named)
        rows = _reference_rows(root, columns, reference, model.uri)
        if reference is None:
            warnings.warn(
                f"{model.uri}: bounds and categories come from the model's input example "
                f"({len(rows)} rows); give --reference FILE for realistic ones",
                ReplayWarning,
                stacklevel=3,
            )
        requirements = root / MODEL_FOLDER / "requirements.txt"
        if not requirements.is_file():
            raise BadInput(f"{model.uri}: the model has no requirements.txt")
        model_paths = sorted(
            path.relative_to(root).as_posix()
            for path in (root / MODEL_FOLDER).rglob("*")
            if path.is_file()
        )
        decided = pyfunc_deployment(
            mlmodel=mlmodel,
            requirements_txt=requirements.read_text(),
            rows=rows,
            spec=given,
            name=_default_name(origin),
            version=origin.version or str(mlmodel.get("model_id") or "1"),
            model_files=model_paths,
            reference=REFERENCE,
            where=model.uri,
        )
        for note in decided.notes:
            warnings.warn(f"{model.uri}: {note}", ReplayWarning, stacklevel=3)
        _warn_of_python(mlmodel, model.uri)
        source_files = _write_deployment(root, decided.spec, decided.requirements, decided.adapter)
        deployment = load_spec(root)
        tensor_columns = named if tensor_dtype(mlmodel) else []
        _check_reference(deployment, root / REFERENCE, tensor_columns, model.uri)
        model_files = model_file_facts(deployment, (None, None))
        store_model_files(root, model_files, open_blob_store(settings.blobs))
        yield PreparedModel(
            spec=deployment,
            source=SourceState(
                repository=origin.uri, subdirectory="", commit=None, dirty=False, toplevel=root
            ),
            model_files=model_files,
            source_files=source_files,
            model_source={
                "uri": origin.uri,
                "registered_name": origin.registered_name,
                "version": origin.version,
                "alias": origin.alias,
                "run_id": origin.run_id or mlmodel.get("run_id"),
                "flavours": sorted(mlmodel["flavors"]),
                "mlflow_version": mlmodel.get("mlflow_version"),
                "rule": decided.adapter["rule"],
            },
        )


def _warn_of_python(mlmodel: Mapping[str, Any], where: str) -> None:
    logged = str(mlmodel["flavors"]["python_function"].get("python_version", ""))
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    if logged and not logged.startswith(here + "."):
        warnings.warn(
            f"{where} was logged with Python {logged}; it replays on the base image's {here}",
            ReplayWarning,
            stacklevel=4,
        )


def _read_spec(path: str | Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    file = Path(path)
    if not file.is_file():
        raise BadInput(f"spec file {file} does not exist")
    return read_mapping(file)


def _default_name(origin: ModelOrigin) -> str:
    """A deployment name from the registered model's (or run's) name, as names go."""
    raw = origin.registered_name or (f"run-{origin.run_id[:12]}" if origin.run_id else "model")
    name = re.sub(r"[^a-z0-9._-]+", "-", raw.lower()).strip("-._") or "model"
    return name[:63]


def _typed(name: str, text: str, kind: str) -> Any:
    """A CSV cell as the value the signature's column type holds (None when empty)."""
    if text == "":
        return None
    return Feature.from_json(name, {"type": COLUMN_TYPES[kind][0]}).parse(text)


def _reference_rows(
    root: Path, columns: list[tuple[str, str]], reference: str | Path | None, where: str
) -> list[dict[str, Any]]:
    """Realistic inputs, written to `root/reference.csv`: the `reference` CSV as given,
    else the model's own input example."""
    names = [name for name, _ in columns]
    target = root / REFERENCE
    if reference is not None:
        file = Path(reference)
        if not file.is_file():
            raise BadInput(f"reference sample {file} does not exist")
        with open(file, newline="") as handle:
            reader = csv.DictReader(handle)
            missing = [name for name in names if name not in (reader.fieldnames or [])]
            if missing:
                raise BadInput(f"reference sample {file} has no column {missing[0]!r}")
            raw = list(reader)
        target.write_bytes(file.read_bytes())
    else:
        raw = _example_rows(root / MODEL_FOLDER, names, where)
        with open(target, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=names)
            writer.writeheader()
            writer.writerows(raw)
    if not raw:
        raise BadInput(f"{where}: the reference sample has no rows")
    kinds = dict(columns)
    try:
        return [{name: _typed(name, str(row[name]), kinds[name]) for name in names} for row in raw]
    except BadInput as problem:
        raise BadInput(f"{where}: reference sample: {problem}") from None


def _example_rows(folder: Path, names: list[str], where: str) -> list[dict[str, Any]]:
    """The model's input example (MLflow's `split` or `records` JSON) as CSV rows."""
    mlmodel = yaml.safe_load((folder / MODEL_FILE).read_text())
    info = mlmodel.get("saved_input_example_info") or {}
    path = folder / str(info.get("artifact_path", "input_example.json"))
    if not path.is_file():
        raise BadInput(
            f"{where}: the model has no input example; give --reference FILE, a CSV of "
            "realistic inputs (one column per input)"
        )
    example = json.loads(path.read_text())
    if isinstance(example, Mapping) and "dataframe_split" in example:
        example = example["dataframe_split"]
    if isinstance(example, Mapping) and "columns" in example and "data" in example:
        columns = example["columns"]
        if not all(isinstance(row, list) and len(row) == len(columns) for row in example["data"]):
            raise BadInput(f"{where}: its input example's rows do not match its columns")
        records = [dict(zip(columns, row, strict=True)) for row in example["data"]]
    elif isinstance(example, list) and all(isinstance(row, Mapping) for row in example):
        records = [dict(row) for row in example]
    elif _is_table(example, len(names)) or (
        isinstance(example, Mapping) and _is_table(example.get("inputs"), len(names))
    ):
        # a tensor's example (a bare matrix, or `{"inputs": matrix}`): named by the spec
        matrix = example if isinstance(example, list) else example["inputs"]
        records = [dict(zip(names, row, strict=True)) for row in matrix]
    else:
        raise BadInput(f"{where}: its input example is not a table; give --reference FILE")
    return [{name: "" if row.get(name) is None else row[name] for name in names} for row in records]


def _check_reference(
    deployment: DeploymentSpec, sample: Path, tensor_columns: list[str], where: str
) -> None:
    """The reference rows within the inputs as declared (the spec's bounds on top of the
    rows'): found now, not when the build's first answer reads them. For a tensor, a
    wrong order of the spec's inputs is the likely cause, so the order is shown."""
    try:
        deployment.schema.read_rows(sample)
    except BadInput as problem:
        order = (
            f" (the spec names the model's tensor columns in this order: "
            f"{', '.join(tensor_columns)})"
            if tensor_columns
            else ""
        )
        raise BadInput(f"{where}: reference sample: {problem}{order}") from None


def _is_table(rows: Any, width: int) -> bool:
    """A list of rows that are lists of `width` values (a 2-D tensor's JSON)."""
    return (
        isinstance(rows, list)
        and bool(rows)
        and all(isinstance(row, list) and len(row) == width for row in rows)
    )


def _write_deployment(
    root: Path, spec: dict[str, Any], requirements: str, adapter: dict[str, Any]
) -> list[str]:
    """Write the deployment replay made for the model; the names of its source files."""
    (root / SPEC_FILE).write_text(
        "# Written by replay for an MLflow model: see the manifest's model.source.\n"
        + yaml.safe_dump(spec, sort_keys=False)
    )
    (root / REQUIREMENTS).write_text(requirements)
    entry = resources.files("replay.images").joinpath("pyfunc_entry.py").read_bytes()
    (root / f"{ADAPTER_MODULE}.py").write_bytes(entry)
    (root / ADAPTER_SETTINGS).write_text(json.dumps(adapter, indent=2, sort_keys=True) + "\n")
    return [SPEC_FILE, REQUIREMENTS, f"{ADAPTER_MODULE}.py", ADAPTER_SETTINGS]
