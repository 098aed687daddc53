"""The typed input/output schema: building it, checking values, parsing text."""

import pytest
from replay.manifests.schema import Feature, Schema, finite_column, parse_boolean

from replay.errors import BadInput, one_line
from tests.factories import manifest_document, schema

SCHEMA = schema(
    {
        "income": {"type": "number", "min": 0, "max": 1_000_000, "unit": "EUR per year"},
        "age": {"type": "integer", "min": 18, "max": 100, "immutable": True},
        "region": {"type": "string", "values": ["north", "south"]},
        "student": {"type": "boolean"},
    }
)
VALID = {"income": 52000, "age": 41.0, "region": "north", "student": False}


def test_features_are_typed_with_their_constraints():
    income, age, region, student = SCHEMA.inputs.values()
    assert (income.min, income.max, income.unit, income.numeric) == (0, 1e6, "EUR per year", True)
    assert age.immutable and not income.immutable
    assert region.categorical and region.values == ("north", "south") and not region.numeric
    assert student.type == "boolean" and not student.categorical
    assert [f.name for f in SCHEMA.mutable] == ["income", "region", "student"]
    fields = SCHEMA.output.fields
    assert fields["score"].nullable and not fields["decision"].nullable


def test_the_manifest_gives_its_schema_typed():
    from replay.manifests.manifest import Manifest

    manifest = Manifest(manifest_document())
    income = manifest.schema.feature("income")
    assert income.monotone == "increasing" and income.min == 0 and income.max is None
    assert manifest.schema.output.favourable == "approved"
    assert manifest.runtime.seed == 1729


def test_inputs_are_normalised_to_their_types():
    checked = SCHEMA.check(VALID)
    assert isinstance(checked["income"], float) and checked["income"] == 52000.0
    assert isinstance(checked["age"], int) and checked["age"] == 41


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": "red"}, "unknown feature 'colour'"),
        ({"income": "lots"}, "income must be a number"),
        ({"income": -1}, "income=-1 is below its minimum 0"),
        ({"age": 41.5}, "age must be a whole number"),
        ({"age": 101}, "age=101 is above its maximum 100"),
        ({"region": "east"}, "region must be one of north, south"),
        ({"student": "no"}, "student must be true or false"),
        ({"income": float("nan")}, "income must be finite"),
        ({"income": True}, "income must be a number"),
        ({"income": None}, "income must have a value"),
    ],
)
def test_bad_inputs_name_the_feature(change, message):
    with pytest.raises(BadInput, match=message):
        SCHEMA.check({**VALID, **change})


def test_a_missing_feature_is_named():
    with pytest.raises(BadInput, match="missing feature 'student'"):
        SCHEMA.check({k: v for k, v in VALID.items() if k != "student"})


def test_a_nullable_output_field_takes_null_and_a_declared_one_must_be_there():
    output = SCHEMA.output
    assert output.check({"decision": "referred", "score": None}) == {
        "decision": "referred",
        "score": None,
    }
    with pytest.raises(BadInput, match="decision must have a value"):
        output.check({"decision": None, "score": 0.5})
    with pytest.raises(BadInput, match="output field 'score' is missing"):
        output.check({"decision": "approved"})


@pytest.mark.parametrize(
    ("text", "value"),
    [("true", True), ("Yes", True), (" 1 ", True), ("FALSE", False), ("no", False), ("0", False)],
)
def test_booleans_are_read_the_same_way_everywhere(text, value):
    assert parse_boolean(text) is value
    assert SCHEMA.inputs["student"].parse(text) is value


@pytest.mark.parametrize("text", ["maybe", "", "2", "truthy"])
def test_a_word_that_is_not_a_boolean_is_refused_not_read_as_false(text, tmp_path):
    with pytest.raises(BadInput, match="student"):
        SCHEMA.inputs["student"].parse(text)
    path = tmp_path / "rows.csv"
    path.write_text(f"income,age,region,student\n52000,41,north,{text}\n")
    with pytest.raises(BadInput, match="student"):
        SCHEMA.read_rows(path)


def test_edits_given_as_text_are_parsed_as_their_type():
    assert SCHEMA.edits({"income": "65_000", "region": "south", "age": 30}) == {
        "income": 65000.0,
        "region": "south",
        "age": 30,
    }
    with pytest.raises(BadInput, match="income='lots' is not a number"):
        SCHEMA.edits({"income": "lots"})
    with pytest.raises(BadInput, match="unknown feature 'debt'"):
        SCHEMA.edits({"debt": "1"})


def test_read_rows_types_and_checks_each_row(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("income,age,region,student\n52000,41,north,true\n61000.5,30,south,False\n")
    rows = SCHEMA.read_rows(path)
    assert rows == [
        {"income": 52000.0, "age": 41, "region": "north", "student": True},
        {"income": 61000.5, "age": 30, "region": "south", "student": False},
    ]
    assert isinstance(rows[0]["age"], int)
    path.write_text("income,age,region,student\n52000,12,north,true\n")
    with pytest.raises(BadInput, match="age=12 is below its minimum 18"):
        SCHEMA.read_rows(path)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"type": "float"}, "type must be"),
        ({"type": "number", "min": 5, "max": 1}, "min 5 is above max 1"),
        ({"type": "number", "values": ["a"]}, "only a string feature has `values`"),
        ({"type": "string", "values": []}, "at least one string"),
        ({"type": "number", "monotone": "up"}, "monotone must be"),
        ({"type": "number", "colour": "red"}, "unknown key `colour`"),
        ({"type": "number", "min": "low"}, "`min` must be a number"),
        ({"type": "number", "immutable": "yes"}, "`immutable` must be true or false"),
        ({"type": "number", "actionable": "no"}, "`actionable` must be true or false"),
        ({"type": "number", "label": 3}, "`label` must be text"),
        ({"type": "string", "min": 1}, "only a number or integer has min"),
        ({"type": "text", "step": 1}, "only a number or integer has min, max, plausible or step"),
        ({"type": "number", "plausible": [5]}, "`plausible` must be \\[min, max\\]"),
        ({"type": "number", "plausible": [9, 2]}, "two numbers in order"),
        ({"type": "number", "min": 0, "plausible": [-1, 2]}, "inside min and max"),
        ({"type": "number", "step": 0}, "`step` must be a number above 0"),
        ({"type": "number", "step": True}, "`step` must be a number above 0"),
        ({"type": "string", "max_length": 5}, "only a text has `max_length`"),
        ({"type": "text", "max_length": 0}, "`max_length` must be a whole number above 0"),
    ],
)
def test_malformed_features_are_refused_naming_the_key(spec, message):
    with pytest.raises(BadInput, match=message):
        Feature.from_json("x", spec)


def test_free_text_is_its_own_type_never_a_category_and_never_moved():
    descriptor = Feature.from_json(
        "descriptor", {"type": "text", "max_length": 20, "label": "statement descriptor"}
    )
    assert descriptor.text and not descriptor.categorical and not descriptor.numeric
    assert not descriptor.movable and descriptor.title == "statement descriptor"
    assert descriptor.check("SHELL\nHAMBURG") == "SHELL\nHAMBURG"  # newlines kept
    assert descriptor.parse("") == "" and descriptor.parse(" REWE ") == " REWE "
    assert SCHEMA.edits({"income": " 65000 ", "region": " south "}) == {
        "income": 65000.0,
        "region": "south",
    }
    with pytest.raises(BadInput, match="descriptor is 21 characters long; at most 20 allowed"):
        descriptor.check("x" * 21)
    with pytest.raises(BadInput, match="descriptor must be a string"):
        descriptor.check(5)


def test_what_a_person_reads_and_what_a_counterfactual_may_move():
    card_age = Feature.from_json(
        "card_age", {"type": "integer", "actionable": False, "description": "days"}
    )
    amount = Feature.from_json(
        "amount", {"type": "number", "min": 0, "plausible": [1, 5000], "step": 50}
    )
    assert not card_age.movable and not card_age.immutable and card_age.title == "days"
    assert amount.movable and amount.plausible == (1.0, 5000.0) and amount.step == 50.0
    assert amount.title == "amount"  # no label, no description: the name
    both = schema(
        {"amount": {"type": "number"}, "card_age": {"type": "integer", "actionable": False}}
    )
    assert [f.name for f in both.movable] == ["amount"]
    assert [f.name for f in both.mutable] == ["amount", "card_age"]  # a what-if may


def test_an_input_cannot_be_nullable():
    with pytest.raises(BadInput, match="input `x` cannot be nullable"):
        schema({"x": {"type": "number", "nullable": True}})


def test_output_fields_must_include_the_decision_and_score():
    with pytest.raises(BadInput, match="output `score` names 'score'"):
        Schema.from_json(
            {
                "inputs": {"x": {"type": "number"}},
                "output": {
                    "decision": "decision",
                    "score": "score",
                    "favourable": "yes",
                    "fields": {"decision": {"type": "string"}},
                },
            }
        )


@pytest.mark.parametrize(
    ("problem", "line"),
    [
        (ValueError(""), "ValueError"),
        (ValueError("first\nsecond"), "first"),
        ("", "(no message)"),
        ("x" * 500, "x" * 157 + "..."),
    ],
)
def test_one_line_never_fails_on_an_empty_message(problem, line):
    assert one_line(problem) == line


@pytest.mark.parametrize(
    ("values", "finite"),
    [
        ([0.5, 1.0, -2.0], True),
        ([1e308, 1e308], True),  # their sum overflows; each is finite
        ([1.0, float("nan")], False),
        ([float("inf"), float("-inf")], False),  # their sum is NaN
        ([1e308, 1e308, float("inf")], False),
        (["a", 1, True, None], True),
        ([0.5, "a"], True),
        ([0.5, "a", float("nan")], False),
        ([{"nested": [1.0, float("inf")]}], False),
        ([], True),
    ],
)
def test_a_column_is_finite_when_every_value_is(values, finite):
    assert finite_column(values) is finite
    assert finite_column(iter(values)) is finite


def test_an_array_column_is_finite_by_its_type():
    import numpy as np
    import pandas as pd

    assert finite_column(np.array([1.0, 2.0])) and not finite_column(np.array([1.0, np.nan]))
    assert finite_column(np.array([1, 2])) and finite_column(np.array([True]))
    assert finite_column(pd.Series(["a", "b"]).array)
    assert not finite_column(np.array(["a", 1.0, np.inf], dtype=object))
