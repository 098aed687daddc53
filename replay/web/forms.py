"""The console's forms, built from a manifest's input schema and read back into the
values its questions take. Text from a form is parsed by the schema itself
(`Feature.parse`), so a form says exactly what the command line says about a bad value.

A form sends back every field, edited or not, as the browser rewrote it: a textarea's
line breaks as CRLF, a one-line input's dropped. So a field is an edit only when what
was sent differs from what the logged value would have been sent as.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import replay
from replay.display import shorten
from replay.errors import BadInput
from replay.manifests.schema import Feature, Schema

if TYPE_CHECKING:
    from replay.questions import Range

# Points a console sweep may ask for: a plot a person reads while on the phone, not a
# batch job (`replay sweep` has no such limit).
MAX_POINTS_1D = 201
MAX_POINTS_2D = 2_601
FORM_FIELDS = {"csrf"}  # sent with every form, not an input


@dataclass(frozen=True)
class InputField:
    """One input of the what-if form."""

    name: str
    kind: str  # number, integer, boolean, choice, string (one line) or text (a textarea)
    value: str  # as logged, written as the form sends it back
    locked: bool  # immutable: shown, never changed by a question
    min: float | None
    max: float | None
    unit: str | None
    description: str | None
    choices: tuple[str, ...]
    max_length: int | None

    @property
    def bounds(self) -> str:
        if self.kind == "text":
            most = f", at most {self.max_length:,} characters" if self.max_length else ""
            return f"free text{most}"
        low, high = (None if b is None else shown(b) for b in (self.min, self.max))
        if low is not None and high is not None:
            return f"{low} to {high}"
        if low is not None:
            return f"at least {low}"
        return f"at most {high}" if high is not None else ""


def as_text(value: Any) -> str:
    """A logged value as a form field holds it: parsed back, it is the same value."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)
    return str(value)


def shown(value: Any) -> str:
    """A value for people to read: numbers with thousands separators, text on one short
    line (`replay.display.shorten`)."""
    if hasattr(value, "item") and not isinstance(value, str):  # a numpy scalar (a sweep's)
        value = value.item()
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if value.is_integer() and abs(value) < 1e15 else f"{value:,.6g}"
    if isinstance(value, str):
        return shorten(value)
    return json.dumps(value)


def _kind(feature: Feature) -> str:
    if feature.type == "boolean":
        return "boolean"
    if feature.categorical:
        return "choice"
    return feature.type  # number, integer, string or text


def _line_feeds(text: str) -> str:
    """`text` with each line break (CRLF, CR or LF) as one LF."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _as_sent(kind: str, text: str) -> str:
    """`text` as a browser sends it back from a field of `kind`: a textarea's line breaks
    as CRLF, a one-line input's removed (HTML's value sanitization)."""
    lines = _line_feeds(text)
    return lines.replace("\n", "\r\n") if kind == "text" else lines.replace("\n", "")


def input_fields(schema: Schema, inputs: Mapping[str, Any]) -> list[InputField]:
    return [
        InputField(
            name=feature.name,
            kind=_kind(feature),
            value=as_text(inputs.get(feature.name)),
            locked=feature.immutable,
            min=feature.min,
            max=feature.max,
            unit=feature.unit,
            description=feature.description,
            choices=feature.values or (),
            max_length=feature.max_length,
        )
        for feature in schema.inputs.values()
    ]


def whatif_changes(
    schema: Schema, inputs: Mapping[str, Any], form: Mapping[str, str]
) -> dict[str, Any]:
    """The inputs the form changed, typed and checked: a field sent back as the logged
    value would be sent is no edit, and edited text has its line breaks as line feeds
    (a textarea sends CRLF). A locked (immutable) input sent with another value is
    refused: the page never offers to change it."""
    unknown = sorted(set(form) - set(schema.inputs) - FORM_FIELDS)
    if unknown:
        raise BadInput(f"unknown input {unknown[0]!r}")
    changes = {}
    for name, feature in schema.inputs.items():
        if name not in form:
            continue  # a locked field is disabled, so the browser does not send it
        kind = _kind(feature)
        if _as_sent(kind, form[name]) == _as_sent(kind, as_text(inputs.get(name))):
            continue
        value = feature.parse(_line_feeds(form[name]) if kind == "text" else form[name])
        if value == inputs.get(name):
            continue
        if feature.immutable:
            raise BadInput(f"{name} is locked: it describes the person and is never changed")
        changes[name] = value
    if not changes:
        raise BadInput(
            "nothing to change: no value was edited, so the decision and its score stay as logged"
        )
    return changes


@dataclass(frozen=True)
class SweepChoice:
    """A feature the sweep form offers, with a default range around the logged value."""

    name: str
    start: float
    stop: float
    unit: str | None


def sweep_choices(schema: Schema, inputs: Mapping[str, Any]) -> list[SweepChoice]:
    """The numeric inputs a question may change, each with its bounds, or half to one
    and a half times the logged value where the schema sets none."""
    choices = []
    for feature in schema.mutable:
        if not feature.numeric:
            continue
        logged = inputs.get(feature.name)
        base = float(logged) if isinstance(logged, int | float) else 0.0
        start = feature.min if feature.min is not None else min(base * 0.5, base * 1.5)
        stop = feature.max if feature.max is not None else max(base * 0.5, base * 1.5, start + 1)
        choices.append(SweepChoice(feature.name, start, stop, feature.unit))
    return choices


def _number(form: Mapping[str, str], key: str, label: str, default: float) -> float:
    text = form.get(key, "").strip().replace("_", "")  # as Feature.parse reads numbers
    if not text:
        return default
    try:
        return float(text)
    except ValueError:
        raise BadInput(f"{label} must be a number, not {form.get(key, '')!r}") from None


def sweep_ranges(schema: Schema, inputs: Mapping[str, Any], form: Mapping[str, str]) -> list[Range]:
    """One or two ranges from the sweep form (`feature`, `start`, `stop`, `points`, and
    the same with a `2` for a second feature, left empty for a 1-D sweep). A blank start
    or end is the feature's offered range (`sweep_choices`)."""
    offered = {choice.name: choice for choice in sweep_choices(schema, inputs)}
    ranges = []
    for suffix, points in (("", 25.0), ("2", 11.0)):
        name = form.get(f"feature{suffix}", "").strip()
        if not name:
            if not suffix:
                raise BadInput("choose a feature to sweep")
            continue
        if name not in offered:
            raise BadInput(f"{name!r} is not a number a question may change")
        start = _number(form, f"start{suffix}", f"the start of {name}", offered[name].start)
        stop = _number(form, f"stop{suffix}", f"the end of {name}", offered[name].stop)
        count = _number(form, f"points{suffix}", f"the number of points of {name}", points)
        if not count.is_integer() or count < 2:
            raise BadInput(f"the number of points of {name} must be a whole number from 2")
        ranges.append(replay.Range(name, start, stop, int(count)))
    total = 1
    for r in ranges:
        total *= r.count
    limit = MAX_POINTS_1D if len(ranges) == 1 else MAX_POINTS_2D
    if total > limit:
        raise BadInput(f"{total:,} points is more than the console draws ({limit:,}); use fewer")
    return ranges
