"""An MLflow model described as a replay deployment, with no code written by its team.

From the model's `MLmodel` file (flavours, signature), its `requirements.txt`, rows that
show realistic inputs (a reference sample, else the model's input example) and an
optional spec (the keys of `replay.yaml` a signature cannot say), this module decides
the deployment's `replay.yaml` document, its requirements and the settings of the
adapter (`images/pyfunc_entry.py`) that answers each row through `predict`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from replay.errors import BadInput

ADAPTER_MODULE = "replay_pyfunc_model"  # the adapter's module name inside the source
ADAPTER_SETTINGS = "replay_pyfunc_model.json"
MODEL_FOLDER = "mlflow"  # where the model's artifacts sit among the model files
DECISION_FIELD = "decision"
PREDICTION = "prediction"  # MLflow's own name for an unnamed output
# What a spec for a registry model may say: everything else comes from the model.
SPEC_KEYS = frozenset(
    {"name", "version", "inputs", "output", "seeds", "threads", "batch_exact",
     "kernels", "system_packages", "base_image"}
)  # fmt: skip
PASSED_ON = ("seeds", "threads", "batch_exact", "kernels", "base_image")  # to replay.yaml
OUTPUT_KEYS = frozenset({"decision", "score", "favourable", "fields", "rule"})
RULE_KEYS = frozenset({"threshold", "at_or_above", "below"})
# MLflow column types → replay feature types, and the pandas dtype `predict` expects.
COLUMN_TYPES = {
    "double": ("number", "float64"),
    "float": ("number", "float32"),
    "long": ("integer", "int64"),
    "integer": ("integer", "int32"),
    "boolean": ("boolean", "bool"),
    "string": ("string", "object"),
}
TENSOR_TYPES = {"float": "number", "int": "integer", "uint": "integer", "bool": "boolean"}
# A tensor input's dtype → the MLflow column type each of its columns is described as.
TENSOR_COLUMN_TYPES = {
    "float64": "double",
    "float32": "float",
    "int64": "long",
    "int32": "integer",
    "bool": "boolean",
}
# Libraries whose wheels load a shared library the base image lacks (Debian packages).
KNOWN_SYSTEM_NEEDS = {"lightgbm": ("libgomp1",)}
# The loader a container needs is smaller than the package a model was logged with:
# `mlflow` pins an `mlflow-tracing` that is not always published, and XGBoost's Linux
# wheel brings NVIDIA's NCCL (hundreds of MB) a CPU replay never loads.
LOADER_SUBSTITUTES = {"mlflow": "mlflow-skinny", "xgboost": "xgboost-cpu"}
_REQUIREMENT = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?P<rest>.*)$")


@dataclass(frozen=True)
class PyfuncDeployment:
    """What a capture writes for a model: `replay.yaml`, `requirements.in`, the adapter's
    settings, and what it should tell the user it decided on their behalf."""

    spec: dict[str, Any]
    requirements: str
    adapter: dict[str, Any]
    notes: tuple[str, ...]


def read_mlmodel(text: str, where: str) -> dict[str, Any]:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError:
        raise BadInput(f"{where}: its MLmodel file is not valid YAML") from None
    if not isinstance(document, dict) or not isinstance(document.get("flavors"), dict):
        raise BadInput(f"{where}: its MLmodel file names no flavours")
    if "python_function" not in document["flavors"]:
        raise BadInput(
            f"{where}: the model has no python_function flavour, so it cannot be loaded "
            "with mlflow.pyfunc.load_model"
        )
    return document


def _signature_part(mlmodel: Mapping[str, Any], part: str) -> list[dict[str, Any]] | None:
    text = (mlmodel.get("signature") or {}).get(part)
    if not text:
        return None
    parsed = json.loads(text) if isinstance(text, str) else text
    return parsed if isinstance(parsed, list) else None


def signature_inputs(
    mlmodel: Mapping[str, Any], where: str, named: Sequence[str] = ()
) -> list[tuple[str, str]]:
    """(column, MLflow type) of each input the signature declares, in order. A model
    taking one 2-D tensor (as PyTorch's default `pt2` format must) has no column names:
    `named` (the spec's inputs, in order) names its columns."""
    columns = _signature_part(mlmodel, "inputs")
    if columns is None:
        raise BadInput(
            f"{where}: the model was logged without a signature; log it with one "
            "(mlflow.models.infer_signature) so replay knows its inputs"
        )
    if tensor_dtype(mlmodel) is not None:
        return _tensor_columns(columns[0], named, where)
    found = []
    for column in columns:
        kind, name = column.get("type"), column.get("name")
        if kind not in COLUMN_TYPES or not isinstance(name, str):
            shown = name if isinstance(name, str) else "(unnamed)"
            raise BadInput(
                f"{where}: input {shown} is a {kind}; replay answers tabular models whose "
                f"inputs are named columns of {', '.join(COLUMN_TYPES)}, or one table of "
                "numbers (a 2-D tensor)"
            )
        found.append((name, str(kind)))
    return found


def tensor_dtype(mlmodel: Mapping[str, Any]) -> str | None:
    """The numpy dtype of the one tensor the model takes, if it takes one (else None)."""
    columns = _signature_part(mlmodel, "inputs") or []
    if len(columns) != 1 or columns[0].get("type") != "tensor":
        return None
    return str((columns[0].get("tensor-spec") or {}).get("dtype", ""))


def _tensor_columns(
    column: Mapping[str, Any], named: Sequence[str], where: str
) -> list[tuple[str, str]]:
    tensor = column.get("tensor-spec") or {}
    shape, dtype = tensor.get("shape") or [], str(tensor.get("dtype", ""))
    kind = TENSOR_COLUMN_TYPES.get(dtype)
    if len(shape) != 2 or not isinstance(shape[1], int) or shape[1] < 1 or kind is None:
        raise BadInput(
            f"{where}: the model takes a {dtype} tensor of shape {shape}; replay answers "
            "tabular models: a 2-D tensor of numbers, one row per decision"
        )
    width = shape[1]
    if len(named) != width:
        raise BadInput(
            f"{where}: the model takes a table of {width} unnamed numbers (a tensor); name "
            f"its columns in order under `inputs` in --spec ({len(named)} named)"
        )
    return [(name, kind) for name in named]


def signature_outputs(mlmodel: Mapping[str, Any]) -> dict[str, str]:
    """The model's output fields by name and replay type, as the signature tells them:
    named columns, or MLflow's `prediction` (`prediction_0`, … for a 2-D tensor)."""
    columns = _signature_part(mlmodel, "outputs")
    if not columns:
        return {PREDICTION: "number"}
    if len(columns) == 1 and columns[0].get("type") == "tensor":
        tensor = columns[0].get("tensor-spec") or {}
        dtype = str(tensor.get("dtype", "float64"))
        kind = next((t for prefix, t in TENSOR_TYPES.items() if dtype.startswith(prefix)), "string")
        shape = tensor.get("shape") or [-1]
        width = shape[1] if len(shape) == 2 and isinstance(shape[1], int) and shape[1] > 1 else 1
        if width == 1:
            return {PREDICTION: kind}
        return {f"{PREDICTION}_{index}": kind for index in range(width)}
    fields = {}
    for index, column in enumerate(columns):
        name = column.get("name") or (PREDICTION if len(columns) == 1 else f"{PREDICTION}_{index}")
        fields[str(name)] = COLUMN_TYPES.get(str(column.get("type")), ("string", ""))[0]
    return fields


def _seen_facets(kind: str, values: Sequence[Any]) -> dict[str, Any]:
    """Bounds (or categories) as the rows show them."""
    present = [value for value in values if value is not None and value == value]
    if kind in ("number", "integer"):
        numbers = [float(value) for value in present if isinstance(value, int | float)]
        if not numbers:
            return {}
        low, high = min(numbers), max(numbers)
        if kind == "integer":
            return {"min": math.floor(low), "max": math.ceil(high)}
        return {"min": low, "max": high}
    if kind == "string":
        return {"values": sorted({str(value) for value in present})} if present else {}
    return {}


def describe_inputs(
    columns: Sequence[tuple[str, str]],
    rows: Sequence[Mapping[str, Any]],
    overrides: Mapping[str, Any],
    where: str,
) -> dict[str, dict[str, Any]]:
    """Each input as replay declares it: its type from the signature, bounds or
    categories from `rows`, and whatever the spec says on top."""
    names = [name for name, _ in columns]
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise BadInput(f"{where}: spec input `{unknown[0]}` is not among the model's inputs")
    inputs = {}
    for name, kind in columns:
        feature: dict[str, Any] = {"type": COLUMN_TYPES[kind][0]}
        override = overrides.get(name) or {}
        if not isinstance(override, Mapping):
            raise BadInput(f"{where}: spec input `{name}` must be a mapping")
        declared = override.get("type", feature["type"])
        if declared == "text" and feature["type"] == "string":
            feature["type"] = "text"  # free text a person typed: no categories
        feature.update(_seen_facets(feature["type"], [row.get(name) for row in rows]))
        feature.update(override)
        if feature["type"] in ("number", "integer") and "min" not in feature:
            raise BadInput(
                f"{where}: no bounds for input `{name}`: the rows shown have no value for it; "
                "give min and max in --spec, or a --reference sample"
            )
        if feature["type"] == "string" and "values" not in feature:
            raise BadInput(
                f"{where}: no categories for input `{name}`; give values (or type: text) in "
                "--spec, or a --reference sample"
            )
        inputs[name] = feature
    return inputs


def describe_output(
    model_fields: Mapping[str, str], given: Mapping[str, Any], where: str
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The `output` section, and the threshold rule turning a score into the decision
    (None when a model output is the decision itself)."""
    unknown = sorted(set(given) - OUTPUT_KEYS)
    if unknown:
        raise BadInput(f"{where}: spec output has an unknown key `{unknown[0]}`")
    if "favourable" not in given:
        example = (
            f"output: {{score: {next(iter(model_fields))}, favourable: approve, "
            "rule: {threshold: 0.5, at_or_above: reject, below: approve}}"
        )
        raise BadInput(
            f"{where}: a signature cannot say which decision helps the person; give --spec "
            f"FILE with, for example, {example}"
        )
    fields: dict[str, Any] = {name: {"type": kind} for name, kind in model_fields.items()}
    for name, facets in (given.get("fields") or {}).items():
        if name not in fields and name != given.get("decision", DECISION_FIELD):
            raise BadInput(f"{where}: spec output field `{name}` is not an output of the model")
        fields.setdefault(name, {}).update(facets)
    score = given.get("score", next(iter(model_fields)))
    if score not in model_fields:
        raise BadInput(f"{where}: spec output score `{score}` is not an output of the model")
    rule = given.get("rule")
    favourable = given["favourable"]
    if rule is None:
        decision = given.get("decision", score)
        if decision not in model_fields:
            raise BadInput(
                f"{where}: spec output decision `{decision}` is not an output of the model; "
                "declare a rule to make one from the score"
            )
    else:
        rule = _checked_rule(rule, where)
        if model_fields[score] not in ("number", "integer"):
            raise BadInput(f"{where}: the rule's score `{score}` is not a number")
        decision = given.get("decision", DECISION_FIELD)
        if decision in model_fields:
            raise BadInput(f"{where}: the rule's decision `{decision}` is already a model output")
        outcomes = [rule["at_or_above"], rule["below"]]
        if favourable not in outcomes:
            raise BadInput(f"{where}: favourable {favourable!r} is neither outcome of the rule")
        kind = _outcome_type(outcomes)
        fields[decision] = {"type": kind, **({"values": outcomes} if kind == "string" else {})}
        fields[decision].update((given.get("fields") or {}).get(decision) or {})
        rule = {**rule, "score": score, "decision": decision}
    output = {"decision": decision, "score": score, "favourable": favourable, "fields": fields}
    return output, rule


def decided_by_rule(outputs: Mapping[str, Any], rule: Mapping[str, Any]) -> dict[str, Any]:
    """`outputs` with the decision the threshold rule makes from their score, as the
    container makes it (`images/pyfunc_entry.py`, which imports nothing of replay): for
    decisions made elsewhere that logged only the score."""
    score = outputs.get(rule["score"])
    if isinstance(score, bool) or not isinstance(score, int | float):
        raise BadInput(f"output field {rule['score']!r} is missing or not a number")
    above = score >= rule["threshold"]
    return {**outputs, rule["decision"]: rule["at_or_above"] if above else rule["below"]}


def _checked_rule(rule: Any, where: str) -> dict[str, Any]:
    if not isinstance(rule, Mapping) or set(rule) != RULE_KEYS:
        raise BadInput(
            f"{where}: spec output rule must be {{threshold: NUMBER, at_or_above: VALUE, "
            "below: VALUE}"
        )
    threshold = rule["threshold"]
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise BadInput(f"{where}: the rule's threshold must be a number")
    if rule["at_or_above"] == rule["below"]:
        raise BadInput(f"{where}: the rule's two outcomes must differ")
    return dict(rule)


def _outcome_type(outcomes: Sequence[Any]) -> str:
    if all(isinstance(value, bool) for value in outcomes):
        return "boolean"
    if all(isinstance(value, int) and not isinstance(value, bool) for value in outcomes):
        return "integer"
    if all(isinstance(value, str) for value in outcomes):
        return "string"
    raise BadInput("the rule's outcomes must both be text, whole numbers or booleans")


def container_requirements(text: str, where: str) -> tuple[str, list[str]]:
    """The model's pip requirements with the loader substituted where a smaller one
    works, pandas added (pyfunc's input); and a note per substitution."""
    lines, notes, names = [], [], set()
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("-"):
            raise BadInput(f"{where}: requirements.txt line {line.split()[0]!r} is not supported")
        match = _REQUIREMENT.match(line)
        if match is None:
            raise BadInput(f"{where}: requirements.txt line {line!r} is not a requirement")
        name = match.group("name").lower().replace("_", "-")
        if name in LOADER_SUBSTITUTES:
            substitute = LOADER_SUBSTITUTES[name]
            note = f"the container loads the model with {substitute} in place of {name}"
            line, name = substitute + match.group("rest"), substitute
            if line in lines:
                continue  # the model already named the smaller loader, at the same pin
            notes.append(note)
        names.add(name)
        lines.append(line)
    if "mlflow-skinny" not in names:
        raise BadInput(f"{where}: its requirements.txt does not name mlflow")
    if "pandas" not in names:
        lines.append("pandas")
    return "\n".join(lines) + "\n", notes


def system_needs(requirements: str, flavours: Sequence[str]) -> list[str]:
    """Debian packages the model's libraries are known to need."""
    names = {
        match.group("name").lower().replace("_", "-")
        for line in requirements.splitlines()
        if (match := _REQUIREMENT.match(line.strip()))
    } | set(flavours)
    return sorted({package for lib in names for package in KNOWN_SYSTEM_NEEDS.get(lib, ())})


def pyfunc_deployment(
    *,
    mlmodel: Mapping[str, Any],
    requirements_txt: str,
    rows: Sequence[Mapping[str, Any]],
    spec: Mapping[str, Any],
    name: str,
    version: str,
    model_files: Sequence[str],
    reference: str,
    where: str,
) -> PyfuncDeployment:
    """Everything a model capture writes, decided from the model and the spec."""
    unknown = sorted(set(spec) - SPEC_KEYS)
    if unknown:
        hint = (
            " (it comes from the model)"
            if unknown[0] in ("entrypoint", "model", "requirements", "reference_sample")
            else ""
        )
        raise BadInput(f"{where}: unknown key `{unknown[0]}` in the spec{hint}")
    given_inputs = spec.get("inputs") or {}
    if not isinstance(given_inputs, Mapping):
        raise BadInput(f"{where}: spec inputs must be a mapping of input names")
    columns = signature_inputs(mlmodel, where, list(given_inputs))
    inputs = describe_inputs(columns, rows, given_inputs, where)
    output, rule = describe_output(signature_outputs(mlmodel), spec.get("output") or {}, where)
    requirements, notes = container_requirements(requirements_txt, where)
    flavours = [flavour for flavour in mlmodel["flavors"] if flavour != "python_function"]
    needs = system_needs(requirements, flavours)
    packages = list(spec.get("system_packages") or [])
    for package in needs:
        if package not in packages:
            packages.append(package)
            notes.append(f"system package {package} added: {', '.join(flavours)} needs it")
    document: dict[str, Any] = {
        "name": spec.get("name", name),
        "version": str(spec.get("version", version)),
        "entrypoint": f"{ADAPTER_MODULE}:predict",
        "model": list(model_files),
        "requirements": "requirements.in",
        "reference_sample": reference,
        **{key: spec[key] for key in PASSED_ON if key in spec},
        **({"system_packages": packages} if packages else {}),
        "inputs": inputs,
        "output": {key: value for key, value in output.items()},
    }
    adapter = {
        "model": MODEL_FOLDER,
        "columns": [[column, COLUMN_TYPES[kind][1]] for column, kind in columns],
        **({"tensor": tensor} if (tensor := tensor_dtype(mlmodel)) else {}),
        "outputs": list(signature_outputs(mlmodel)),
        "rule": rule,
    }
    return PyfuncDeployment(document, requirements, adapter, tuple(notes))
