import math

import pytest

from replay.display import format_value
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


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (69000.0, "69,000"),
        (15.4, "15.4"),
        (0.68, "0.68"),
        (3, "3"),
        ("north", "north"),
        (True, "True"),
    ],
)
def test_format_value(value, text):
    assert format_value(value) == text
