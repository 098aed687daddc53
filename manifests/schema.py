"""The input/output schema of a deployment, typed: what every question is asked over.

Built once from the manifest's `io` section (or from `replay.yaml`), checked as it is
built, and read by attribute everywhere else. A feature is a number, an integer, a
boolean, a string, or text; a string with `values` is categorical; `text` is what a
person typed (a statement descriptor, a note), never a category and never invented by a
question. An output field may be `nullable` (a rule layer that decides without a score).
"""

from __future__ import annotations

import csv
import difflib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

from replay.errors import BadInput

FeatureType = Literal["number", "integer", "boolean", "string", "text"]
Monotone = Literal["increasing", "decreasing"]
TYPES: tuple[FeatureType, ...] = ("number", "integer", "boolean", "string", "text")
FEATURE_KEYS = frozenset(
    {
        "type",
        "min",
        "max",
        "values",
        "immutable",
        "monotone",
        "unit",
        "description",
        "nullable",
        "label",
        "actionable",
        "plausible",
        "step",
        "max_length",
    }
)
TRUE_WORDS = frozenset({"true", "yes", "1"})
FALSE_WORDS = frozenset({"false", "no", "0"})


def refuse_unknown_keys(data: Mapping[Any, Any], known: Iterable[str], where: str) -> None:
    """One line naming the first key of `data` that is not in `known` (with the known key
    it most resembles, when one does): a typo silently ignored would make a deployment
    other than the one its author described."""
    allowed = sorted(known)
    unknown = sorted(str(key) for key in data if key not in allowed)
    if not unknown:
        return
    close = difflib.get_close_matches(unknown[0], allowed, n=1)
    hint = f"did you mean `{close[0]}`?" if close else f"known: {', '.join(allowed)}"
    raise BadInput(f"{where}: unknown key `{unknown[0]}` ({hint})")


def parse_boolean(text: str) -> bool:
    """`true/yes/1` or `false/no/0` (any case); anything else is refused."""
    lowered = text.strip().lower()
    if lowered in TRUE_WORDS:
        return True
    if lowered in FALSE_WORDS:
        return False
    raise ValueError(f"{text!r} is not true or false")


MAX_INTEGER = 2**63  # beyond a 64-bit integer, a number is an attack or a mistake


def _finite(value: Any) -> bool:
    """No NaN or infinity anywhere in `value` (lists and objects included)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list | tuple):
        return all(_finite(item) for item in value)
    if isinstance(value, Mapping):
        return all(_finite(item) for item in value.values())
    return True


# Values that cannot hold a NaN or an infinity.
_ALWAYS_FINITE = {str, int, bool, type(None)}


def finite_column(values: Iterable[Any]) -> bool:
    """`_finite` over a column: a column of plain floats in one pass in C (a 10,000-row
    sweep's outputs in about a millisecond, not 30); a numpy array by its type."""
    dtype = getattr(values, "dtype", None)
    kind = getattr(dtype, "kind", "O")
    if kind in "biuSU" or getattr(dtype, "name", None) in ("str", "string"):  # pandas' text
        return True
    if kind == "f":
        import numpy as np

        return bool(np.isfinite(cast(Any, values)).all())
    values = list(values)
    kinds = set(map(type, values))
    if kinds <= _ALWAYS_FINITE:
        return True
    if kinds == {float}:
        # a NaN or an infinity makes the sum one; a finite sum can only overflow
        return math.isfinite(sum(values)) or all(map(math.isfinite, values))
    return all(map(_finite, values))


@dataclass(frozen=True)
class Feature:
    """One input or output field and what values it may take."""

    name: str
    type: FeatureType
    min: float | None = None
    max: float | None = None
    values: tuple[str, ...] | None = None  # allowed values of a string (categorical)
    immutable: bool = False  # never changed by a question (age, protected attributes)
    monotone: Monotone | None = None  # the direction in which more helps the subject
    unit: str | None = None
    description: str | None = None
    nullable: bool = False  # may be null (e.g. a score when a rule decided)
    label: str | None = None  # what a person reads (a report, a page) instead of the name
    # False: the person cannot change it although it is not protected (a card's age, a
    # claim's date); a counterfactual never moves it, a what-if still may
    actionable: bool = True
    plausible: tuple[float, float] | None = None  # where a counterfactual may take it
    step: float | None = None  # the unit a counterfactual rounds it to (100 EUR, 1 year)
    max_length: int | None = None  # of a text

    @property
    def numeric(self) -> bool:
        return self.type in ("number", "integer")

    @property
    def categorical(self) -> bool:
        return self.type == "string" and self.values is not None

    @property
    def text(self) -> bool:
        """Typed by a person: compared by length and seen values, never varied."""
        return self.type == "text"

    @property
    def movable(self) -> bool:
        """Whether a counterfactual may change it: neither protected nor out of reach."""
        return not self.immutable and self.actionable and not self.text

    @property
    def title(self) -> str:
        """What a person reads: the label, else the description, else the name."""
        return self.label or self.description or self.name

    @classmethod
    def from_json(cls, name: str, spec: Any, where: str = "") -> Feature:
        """A feature from its JSON/YAML mapping, refusing anything malformed."""
        where = where or f"feature `{name}`"
        if not isinstance(spec, Mapping):
            raise BadInput(f"{where} must be a mapping with at least `type`")
        refuse_unknown_keys(spec, FEATURE_KEYS, where)
        kind = spec.get("type")
        if kind not in TYPES:
            raise BadInput(f"{where}: type must be number, integer, boolean, string or text")
        bounds = []
        for key in ("min", "max"):
            value = spec.get(key)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float)
            ):
                raise BadInput(f"{where}: `{key}` must be a number")
            bounds.append(None if value is None else float(value))
        low, high = bounds
        if low is not None and high is not None and low > high:
            raise BadInput(f"{where}: min {low:g} is above max {high:g}")
        values = spec.get("values")
        if values is not None:
            if kind != "string":
                raise BadInput(f"{where}: only a string feature has `values`")
            if not values or not all(isinstance(v, str) for v in values):
                raise BadInput(f"{where}: `values` must list at least one string")
        monotone = spec.get("monotone")
        if monotone not in (None, "increasing", "decreasing"):
            raise BadInput(f"{where}: monotone must be increasing or decreasing")
        for key in ("immutable", "nullable", "actionable"):
            if not isinstance(spec.get(key, False), bool):
                raise BadInput(f"{where}: `{key}` must be true or false")
        for key in ("unit", "description", "label"):
            if not isinstance(spec.get(key, ""), str):
                raise BadInput(f"{where}: `{key}` must be text")
        numeric = kind in ("number", "integer")
        if not numeric and any(key in spec for key in ("min", "max", "plausible", "step")):
            raise BadInput(f"{where}: only a number or integer has min, max, plausible or step")
        plausible = _plausible(spec.get("plausible"), low, high, where)
        step = spec.get("step")
        if step is not None and (
            isinstance(step, bool) or not isinstance(step, int | float) or not step > 0
        ):
            raise BadInput(f"{where}: `step` must be a number above 0")
        max_length = spec.get("max_length")
        if max_length is not None:
            if kind != "text":
                raise BadInput(f"{where}: only a text has `max_length`")
            if type(max_length) is not int or max_length < 1:
                raise BadInput(f"{where}: `max_length` must be a whole number above 0")
        return cls(
            name=name,
            type=cast(FeatureType, kind),
            min=low,
            max=high,
            values=tuple(values) if values is not None else None,
            immutable=spec.get("immutable", False),
            monotone=cast("Monotone | None", monotone),
            unit=spec.get("unit"),
            description=spec.get("description"),
            nullable=spec.get("nullable", False),
            label=spec.get("label"),
            actionable=spec.get("actionable", True),
            plausible=plausible,
            step=None if step is None else float(step),
            max_length=max_length,
        )

    def check(self, value: Any) -> Any:
        """`value` normalised to this feature's type (a number a float, an integer an
        int), or BadInput naming the feature."""
        name = self.name
        if value is None:
            if self.nullable:
                return None
            raise BadInput(f"{name} must have a value, not null")
        if self.type == "boolean":
            if not isinstance(value, bool):
                raise BadInput(f"{name} must be true or false, not {value!r}")
            return value
        if self.type in ("string", "text"):
            if not isinstance(value, str):
                raise BadInput(f"{name} must be a string, not {value!r}")
            if self.values is not None and value not in self.values:
                raise BadInput(f"{name} must be one of {', '.join(self.values)}, not {value!r}")
            if self.max_length is not None and len(value) > self.max_length:
                raise BadInput(
                    f"{name} is {len(value)} characters long; at most {self.max_length} allowed"
                )
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise BadInput(f"{name} must be a {self.type}, not {value!r}")
        if isinstance(value, int) and abs(value) > MAX_INTEGER:
            raise BadInput(f"{name} is too large a number ({len(str(value))} digits)")
        if not math.isfinite(value):
            raise BadInput(f"{name} must be finite, not {value!r}")
        number: int | float
        if self.type == "integer":
            if float(value) != int(value):
                raise BadInput(f"{name} must be a whole number, not {value!r}")
            number = int(value)
        else:
            number = float(value)
        if self.min is not None and number < self.min:
            raise BadInput(f"{name}={number:g} is below its minimum {self.min:g}")
        if self.max is not None and number > self.max:
            raise BadInput(f"{name}={number:g} is above its maximum {self.max:g}")
        return number

    def parse(self, text: str) -> Any:
        """A value written as text (a command line, a CSV cell, a form field), checked."""
        value: Any
        try:
            if self.type == "boolean":
                value = parse_boolean(text)
            elif self.type == "text":
                value = text  # what a person typed, spaces and newlines included
            elif self.type == "string":
                value = text.strip()
            else:
                value = float(text.strip().replace("_", ""))
        except ValueError:
            raise BadInput(f"{self.name}={text!r} is not a {self.type}") from None
        return self.check(value)


def _plausible(
    value: Any, low: float | None, high: float | None, where: str
) -> tuple[float, float] | None:
    """`plausible: [min, max]`, a range inside the feature's own bounds."""
    if value is None:
        return None
    if (
        not isinstance(value, list | tuple)
        or len(value) != 2
        or any(isinstance(v, bool) or not isinstance(v, int | float) for v in value)
        or value[0] > value[1]
    ):
        raise BadInput(f"{where}: `plausible` must be [min, max], two numbers in order")
    start, end = float(value[0]), float(value[1])
    if (low is not None and start < low) or (high is not None and end > high):
        raise BadInput(f"{where}: `plausible` must lie inside min and max")
    return start, end


@dataclass(frozen=True)
class OutputSpec:
    """Which output field is the decision, which the score, and which decision helps."""

    decision: str
    score: str
    favourable: str | bool | int
    fields: Mapping[str, Feature]

    def check_finite(self, outputs: Mapping[str, Any]) -> None:
        """Refuse outputs holding NaN or an infinity (they have no JSON, and no meaning),
        whatever the declared fields."""
        for name, value in outputs.items():
            if not _finite(value):
                raise BadInput(f"output field {name!r} holds a non-finite number")

    def check_finite_columns(self, columns: Mapping[str, Iterable[Any]]) -> None:
        """`check_finite` for many answers at once, by output field."""
        for name, values in columns.items():
            if not finite_column(values):
                raise BadInput(f"output field {name!r} holds a non-finite number")

    def check(self, outputs: Mapping[str, Any]) -> dict[str, Any]:
        """The outputs a deployment answered, against the declared fields."""
        missing = [name for name in self.fields if name not in outputs]
        if missing:
            raise BadInput(f"output field {missing[0]!r} is missing")
        self.check_finite(outputs)
        return {
            name: self.fields[name].check(value) if name in self.fields else value
            for name, value in outputs.items()
        }


@dataclass(frozen=True)
class Schema:
    """A deployment's inputs (in the order declared) and its output."""

    inputs: Mapping[str, Feature]
    output: OutputSpec

    @classmethod
    def from_json(cls, io: Any, where: str = "io") -> Schema:
        if not isinstance(io, Mapping):
            raise BadInput(f"{where} must be a mapping")
        inputs_json, output_json = io.get("inputs"), io.get("output")
        if not isinstance(inputs_json, Mapping) or not inputs_json:
            raise BadInput(f"{where}: `inputs` must declare at least one feature")
        if not isinstance(output_json, Mapping):
            raise BadInput(f"{where}: `output` must be a mapping")
        inputs = {
            str(name): Feature.from_json(str(name), spec, f"{where}: input `{name}`")
            for name, spec in inputs_json.items()
        }
        for feature in inputs.values():
            if feature.nullable:  # every question needs a value for every input
                raise BadInput(f"{where}: input `{feature.name}` cannot be nullable")
        fields_json = output_json.get("fields")
        if not isinstance(fields_json, Mapping):
            raise BadInput(f"{where}: output `fields` must be a mapping")
        fields = {
            str(name): Feature.from_json(str(name), spec, f"{where}: output field `{name}`")
            for name, spec in fields_json.items()
        }
        names: dict[str, str] = {}
        for key in ("decision", "score"):
            field = output_json.get(key)
            if not isinstance(field, str):
                raise BadInput(f"{where}: output needs `{key}`, the name of a field")
            if field not in fields:
                raise BadInput(f"{where}: output `{key}` names {field!r}, which is not in `fields`")
            names[key] = field
        if "favourable" not in output_json:
            raise BadInput(f"{where}: output needs `favourable`, the decision value that helps")
        favourable = output_json["favourable"]
        if not isinstance(favourable, str | bool | int):
            raise BadInput(f"{where}: output `favourable` must be a string, number or boolean")
        return cls(inputs, OutputSpec(names["decision"], names["score"], favourable, fields))

    def feature(self, name: str) -> Feature:
        """The input called `name`, or BadInput listing the ones there are."""
        if name not in self.inputs:
            raise BadInput(f"unknown feature {name!r} (expected: {', '.join(self.inputs)})")
        return self.inputs[name]

    def check(self, inputs: Any) -> dict[str, Any]:
        """Every declared feature present, nothing unknown, each value valid; normalised."""
        if not isinstance(inputs, Mapping):
            raise BadInput("inputs must be a JSON object of feature values")
        unknown = sorted(set(inputs) - set(self.inputs))
        if unknown:
            raise BadInput(f"unknown feature {unknown[0]!r} (expected: {', '.join(self.inputs)})")
        missing = [name for name in self.inputs if name not in inputs]
        if missing:
            raise BadInput(f"missing feature {missing[0]!r}")
        return {name: feature.check(inputs[name]) for name, feature in self.inputs.items()}

    def edits(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Edited inputs, each checked; a value given as text is parsed as its type."""
        checked = {}
        for name, value in changes.items():
            feature = self.feature(name)
            # a value given as text is parsed (a free text is already what it is)
            typed_text = isinstance(value, str) and feature.type != "text"
            checked[name] = feature.parse(value) if typed_text else feature.check(value)
        return checked

    def read_rows(self, path: Path | str) -> list[dict[str, Any]]:
        """A CSV file of inputs (one column per feature) as checked, typed rows."""
        with open(path, newline="") as handle:
            return [
                self.check(
                    {name: feature.parse(row[name]) for name, feature in self.inputs.items()}
                )
                for row in csv.DictReader(handle)
            ]

    @property
    def mutable(self) -> list[Feature]:
        """The inputs a question may change."""
        return [feature for feature in self.inputs.values() if not feature.immutable]

    @property
    def movable(self) -> list[Feature]:
        """The inputs a counterfactual may move (see `Feature.movable`)."""
        return [feature for feature in self.inputs.values() if feature.movable]
