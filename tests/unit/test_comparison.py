import math

import pytest

from replay.errors import BadInput
from replay.execution.inputs import check_inputs
from replay.execution.reexecution import compare_outputs, ulp_distance


def test_ulp_distance_counts_representable_steps():
    assert ulp_distance(1.0, 1.0) == 0
    assert ulp_distance(1.0, math.nextafter(1.0, 2.0)) == 1
    assert ulp_distance(1.0, math.nextafter(math.nextafter(1.0, 0.0), 0.0)) == 2
    assert ulp_distance(0.0, -0.0) == 0
    assert ulp_distance(-5e-324, 5e-324) == 2


def test_identical_outputs_have_no_difference():
    outputs = {"decision": "rejected", "score": 0.1 + 0.2, "audit": False}
    assert compare_outputs(outputs, dict(outputs)) == []


def test_one_bit_is_a_difference_with_its_size():
    score = 0.2719616777901348
    [difference] = compare_outputs(
        {"score": score, "decision": "rejected"},
        {"score": math.nextafter(score, 1.0), "decision": "rejected"},
    )
    assert difference.field == "score" and difference.ulps == 1
    assert 0 < difference.absolute < 1e-15


def test_missing_and_non_numeric_fields():
    differences = compare_outputs(
        {"decision": "rejected", "reason": "debt"}, {"decision": "approved"}
    )
    assert [(d.field, d.ulps) for d in differences] == [("decision", None), ("reason", None)]
    assert compare_outputs({"audit": True}, {"audit": 1})[0].ulps is None


SCHEMA = {
    "income": {"type": "number", "min": 0, "max": 1_000_000},
    "age": {"type": "integer", "min": 18, "max": 100},
    "region": {"type": "string", "values": ["north", "south"]},
    "student": {"type": "boolean"},
}
VALID = {"income": 52000, "age": 41.0, "region": "north", "student": False}


def test_inputs_are_normalised_to_their_types():
    checked = check_inputs(SCHEMA, VALID)
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
    ],
)
def test_bad_inputs_name_the_feature(change, message):
    with pytest.raises(BadInput, match=message):
        check_inputs(SCHEMA, {**VALID, **change})


def test_a_missing_feature_is_named():
    with pytest.raises(BadInput, match="missing feature 'student'"):
        check_inputs(SCHEMA, {k: v for k, v in VALID.items() if k != "student"})


def test_read_rows_types_and_checks_each_row(tmp_path):
    from replay.execution.inputs import read_rows

    path = tmp_path / "rows.csv"
    path.write_text("income,age,region,student\n52000,41,north,true\n61000.5,30,south,False\n")
    rows = read_rows(path, SCHEMA)
    assert rows == [
        {"income": 52000.0, "age": 41, "region": "north", "student": True},
        {"income": 61000.5, "age": 30, "region": "south", "student": False},
    ]
    assert isinstance(rows[0]["age"], int)
    path.write_text("income,age,region,student\n52000,12,north,true\n")
    with pytest.raises(BadInput, match="age=12 is below its minimum 18"):
        read_rows(path, SCHEMA)


@pytest.mark.parametrize(
    ("value", "text"),
    [(69000.0, "69,000"), (15.4, "15.4"), (0.68, "0.68"), (3, "3"), ("north", "north")],
)
def test_format_value(value, text):
    from replay.execution.inputs import format_value

    assert format_value(value) == text
