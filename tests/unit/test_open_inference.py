"""The Open Inference Protocol codec: v2 requests as checked rows, rows' outputs as v2
responses and back, every mistake one line."""

import json
import math

import numpy as np
import pytest
from replay.manifests.open_inference import (
    model_metadata,
    outputs_of_response,
    requested_outputs,
    response_of,
    rows_of_request,
    subjects_of,
)
from tritonclient.http import InferResult

from replay.errors import BadInput
from tests.factories import schema

SCHEMA = schema(
    {
        "descriptor": {"type": "text", "max_length": 20},
        "category": {"type": "string", "values": ["fuel", "travel"]},
        "amount": {"type": "number", "min": 0},
        "present": {"type": "boolean"},
        "payments": {"type": "integer", "min": 0, "max": 200},
    },
    fields={
        "decision": {"type": "string", "values": ["allow", "block"]},
        "score": {"type": "number", "nullable": True},
        "flagged": {"type": "boolean"},
        "tries": {"type": "integer"},
    },
)
OUTPUT = SCHEMA.output


def tensor(name, datatype, data, shape=None):
    return {"name": name, "datatype": datatype, "shape": shape or [len(data)], "data": data}


def request(**changes):
    """Two payments, one tensor per feature, as tritonclient sends them (binary_data=False)."""
    inputs = {
        "descriptor": tensor("descriptor", "BYTES", ["SHELL 0421 Köln", "KLM 074 AMS"]),
        "category": tensor("category", "BYTES", ["fuel", "travel"]),
        "amount": tensor("amount", "FP32", [61.5, 812]),
        "present": tensor("present", "BOOL", [True, False]),
        "payments": tensor("payments", "INT64", [2, 0]),
    }
    for name, replacement in changes.items():
        if replacement is None:
            del inputs[name]
        else:
            inputs[name] = replacement
    return {"id": "req-7", "inputs": list(inputs.values())}


def test_a_request_is_its_rows_checked_and_typed_as_the_schema_says():
    rows, parameters, request_id = rows_of_request(request(), SCHEMA)
    assert rows == [
        {
            "descriptor": "SHELL 0421 Köln",
            "category": "fuel",
            "amount": 61.5,
            "present": True,
            "payments": 2,
        },
        {
            "descriptor": "KLM 074 AMS",
            "category": "travel",
            "amount": 812.0,
            "present": False,
            "payments": 0,
        },
    ]
    assert type(rows[1]["amount"]) is float  # an INT or FP tensor: a number is a float
    assert (parameters, request_id) == ({}, "req-7")


def test_mlservers_data_frame_request_with_columns_of_shape_n_1_is_taken():
    """MLServer's pandas codec: `content_type: pd`, each column [N, 1], nested or flat,
    strings marked `str`, integers of any width."""
    body = request(
        descriptor={
            **tensor("descriptor", "BYTES", ["A", "B"], [2, 1]),
            "parameters": {"content_type": "str"},
        },
        amount=tensor("amount", "FP64", [[61.5], [812.0]], [2, 1]),
        payments=tensor("payments", "UINT8", [[2], [0]], [2, 1]),
    )
    body["parameters"] = {"content_type": "pd", "subjects": ["card-1", None]}
    rows, parameters, _ = rows_of_request(body, SCHEMA)
    assert [row["descriptor"] for row in rows] == ["A", "B"]
    assert [row["amount"] for row in rows] == [61.5, 812.0]
    assert [row["payments"] for row in rows] == [2, 0]
    assert subjects_of(parameters, len(rows)) == ["card-1", None]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([1, 2], "an inference request must be a JSON object"),
        ({"inputs": []}, "the request needs inputs: one tensor per feature"),
        ({**request(), "id": 7}, "the request's id must be a string"),
        ({**request(), "parameters": []}, "the request's parameters must be a JSON object"),
        (
            {**request(), "parameters": {"content_type": "np"}},
            "content_type 'np' is not taken: send one tensor per feature",
        ),
        (
            request(extra=tensor("extra", "FP64", [1, 2])),
            "unknown input 'extra' (expected: descriptor, category, amount, present, payments)",
        ),
        (request(payments=None), "missing input 'payments'"),
        (
            {**request(), "inputs": [*request()["inputs"], tensor("amount", "FP64", [1, 2])]},
            "input 'amount' is given twice",
        ),
        (request(amount=tensor("amount", "FP64", [1.0])), "input 'amount' holds 1 rows"),
        (
            request(amount=tensor("amount", "FP64", [1, 2, 3, 4], [2, 2])),
            "input 'amount': shape must be [N] or [N, 1] (one value per row), not [2, 2]",
        ),
        (
            request(amount=tensor("amount", "FP64", [1, 2], [2.0])),
            "input 'amount': shape must be a list of whole numbers, not [2.0]",
        ),
        (
            request(amount=tensor("amount", "FP64", [1, 2], [3])),
            "input 'amount': 2 values do not fill shape [3]",
        ),
        (
            request(amount=tensor("amount", "FP64", [[1], 2], [2, 1])),
            "input 'amount': data is nested unlike shape [2, 1]",
        ),
        (request(amount=tensor("amount", "FP64", ["61.5", "3"])), "'61.5' is not FP64"),
        (request(amount=tensor("amount", "FP64", [None, 3])), "None is not FP64"),
        (request(present=tensor("present", "BOOL", [1, 0])), "input 'present': 1 is not BOOL"),
        (request(payments=tensor("payments", "INT64", [2.5, 0])), "2.5 is not INT64"),
        (request(payments=tensor("payments", "INT64", [True, 0])), "True is not INT64"),
        (request(payments=tensor("payments", "UINT8", [256, 0])), "256 is not UINT8"),
        (request(payments=tensor("payments", "INT8", [-129, 0])), "-129 is not INT8"),
        (
            request(payments=tensor("payments", "STRING", [2, 0])),
            "input 'payments': datatype must be one of BOOL, BYTES, INT8",
        ),
        (
            request(
                amount={**tensor("amount", "FP64", []), "parameters": {"binary_data_size": 16}}
            ),
            "binary or shared-memory tensor data is not taken; send the data as JSON "
            "(tritonclient: binary_data=False)",
        ),
        (
            {"inputs": [tensor(name, "FP64", []) for name in SCHEMA.inputs]},
            "the request holds no rows",
        ),
        # the schema's own checks, naming the row and the feature
        (
            request(amount=tensor("amount", "FP64", [61.5, -1])),
            "row 2 of 2: amount=-1 is below its minimum 0",
        ),
        (
            request(category=tensor("category", "BYTES", ["fuel", "casino"])),
            "row 2 of 2: category must be one of fuel, travel, not 'casino'",
        ),
        (
            request(present=tensor("present", "BYTES", ["yes", "no"])),
            "row 1 of 2: present must be true or false, not 'yes'",
        ),
        (
            request(descriptor=tensor("descriptor", "BYTES", ["x" * 21, "y"])),
            "row 1 of 2: descriptor is 21 characters long; at most 20 allowed",
        ),
    ],
)
def test_a_malformed_request_is_refused_in_one_line(body, message):
    with pytest.raises(BadInput) as refused:
        rows_of_request(body, SCHEMA)
    assert message in str(refused.value)
    assert "\n" not in str(refused.value)


def test_a_person_is_named_by_subject_for_one_row_or_subjects_one_per_row():
    assert subjects_of({}, 3) == [None, None, None]
    assert subjects_of({"subject": "card-9"}, 1) == ["card-9"]
    assert subjects_of({"subjects": ["a", None]}, 2) == ["a", None]
    for parameters, rows, message in [
        ({"subject": "card-9"}, 2, "names the person of a request of one row, not 2"),
        ({"subject": 9}, 1, "parameters.subject must be a string"),
        ({"subjects": ["a"]}, 2, "must list one subject per row (2)"),
        ({"subjects": ["a", 3]}, 2, "must hold strings (null for a row about no one)"),
        ({"subject": "a", "subjects": ["a"]}, 1, "not both"),
    ]:
        with pytest.raises(BadInput, match=message.replace("(", r"\(").replace(")", r"\)")):
            subjects_of(parameters, rows)


def test_requested_outputs_are_named_fields_and_unknown_ones_are_refused():
    body = request()
    assert requested_outputs(body, OUTPUT) is None
    body["outputs"] = [{"name": "score", "parameters": {"binary_data": False}}, {"name": "tries"}]
    assert requested_outputs(body, OUTPUT) == ("score", "tries")
    body["outputs"] = [{"name": "proba"}]
    with pytest.raises(BadInput, match="unknown output 'proba' \\(the deployment's: decision,"):
        requested_outputs(body, OUTPUT)


ANSWERS = [
    {"decision": "allow", "score": 0.8807970779778823, "flagged": False, "tries": 1},
    {"decision": "block", "score": None, "flagged": True, "tries": 0},  # a rule decided
]


def test_a_response_has_one_tensor_per_output_field_nulls_as_json_null():
    response = response_of("fraud-screen", "1.0", "req-7", ANSWERS, OUTPUT, {"n": 2})
    assert response == {
        "model_name": "fraud-screen",
        "model_version": "1.0",
        "id": "req-7",
        "parameters": {"n": 2},
        "outputs": [
            {"name": "decision", "datatype": "BYTES", "shape": [2], "data": ["allow", "block"]},
            {"name": "score", "datatype": "FP64", "shape": [2], "data": [0.8807970779778823, None]},
            {"name": "flagged", "datatype": "BOOL", "shape": [2], "data": [False, True]},
            {"name": "tries", "datatype": "INT64", "shape": [2], "data": [1, 0]},
        ],
    }
    without_id = response_of("m", "1", None, ANSWERS, OUTPUT, {}, requested=("tries",))
    assert "id" not in without_id
    assert [t["name"] for t in without_id["outputs"]] == ["tries"]


def test_a_response_reads_back_as_the_rows_outputs_bit_for_bit():
    response = json.loads(json.dumps(response_of("m", "1", None, ANSWERS, OUTPUT, {})))
    back = outputs_of_response(response, OUTPUT, 2)
    assert back == ANSWERS
    assert back[0]["score"].hex() == ANSWERS[0]["score"].hex()


def test_tritonclient_reads_a_response_a_null_score_as_nan():
    body = json.dumps(response_of("m", "1", "req-7", ANSWERS, OUTPUT, {})).encode()
    result = InferResult.from_response_body(body)
    score = result.as_numpy("score")
    assert score[0] == ANSWERS[0]["score"] and math.isnan(score[1])
    assert result.as_numpy("decision").tolist() == ["allow", "block"]
    assert result.as_numpy("flagged").dtype == np.bool_
    assert result.get_response()["id"] == "req-7"


def test_another_servers_response_keeps_tensors_of_no_declared_field():
    """A KServe model's response: a declared field as [N, 1], probabilities [N, 2]."""
    body = {
        "outputs": [
            tensor("decision", "BYTES", [["allow"], ["block"]], [2, 1]),
            tensor("score", "FP32", [0.5, 0.25]),
            tensor("flagged", "BOOL", [False, True]),
            tensor("tries", "INT32", [3, 4]),
            tensor("proba", "FP32", [0.5, 0.5, 0.75, 0.25], [2, 2]),
            tensor("model", "BYTES", ["v7", "v7"]),
        ]
    }
    first, second = outputs_of_response(body, OUTPUT, 2)
    assert first == {
        "decision": "allow",
        "score": 0.5,
        "flagged": False,
        "tries": 3,
        "proba": [0.5, 0.5],
        "model": "v7",
    }
    assert second["proba"] == [0.75, 0.25]
    deeper = {"outputs": [*body["outputs"][:4], tensor("grid", "INT8", list(range(12)), [2, 2, 3])]}
    assert outputs_of_response(deeper, OUTPUT, 2)[1]["grid"] == [[6, 7, 8], [9, 10, 11]]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda body: body["outputs"].pop(0), "row 1 of 2: output field 'decision' is missing"),
        (
            lambda body: body["outputs"][1].update(data=[[0.5, 0.1], [0.2, 0.3]], shape=[2, 2]),
            "output 'score': shape must be [N] or [N, 1] (one value per row), not [2, 2]",
        ),
        (
            lambda body: body["outputs"][2].update(data=[None, True]),
            "row 1 of 2: flagged must have a value, not null",
        ),
        (
            lambda body: body["outputs"][0].update(data=["allow", "maybe"]),
            "row 2 of 2: decision must be one of allow, block, not 'maybe'",
        ),
        (lambda body: body["outputs"][3].update(data=[1, 2, 3], shape=[3]), "holds 3 rows, not 2"),
        (lambda body: body.update(outputs=[]), "the response has no outputs"),
        (
            lambda body: body["outputs"].append(tensor("score", "FP64", [1, 2])),
            "output 'score' is given twice",
        ),
    ],
)
def test_a_response_that_does_not_hold_the_rows_is_refused(change, message):
    body = json.loads(json.dumps(response_of("m", "1", None, ANSWERS, OUTPUT, {})))
    change(body)
    with pytest.raises(BadInput) as refused:
        outputs_of_response(body, OUTPUT, 2)
    assert message in str(refused.value)


def test_metadata_names_each_feature_and_field_with_its_datatype():
    metadata = model_metadata("fraud-screen", ["1.0", "f00d"], SCHEMA)
    assert metadata["name"] == "fraud-screen" and metadata["versions"] == ["1.0", "f00d"]
    assert metadata["inputs"] == [
        {"name": "descriptor", "datatype": "BYTES", "shape": [-1]},
        {"name": "category", "datatype": "BYTES", "shape": [-1]},
        {"name": "amount", "datatype": "FP64", "shape": [-1]},
        {"name": "present", "datatype": "BOOL", "shape": [-1]},
        {"name": "payments", "datatype": "INT64", "shape": [-1]},
    ]
    assert [(t["name"], t["datatype"]) for t in metadata["outputs"]] == [
        ("decision", "BYTES"),
        ("score", "FP64"),
        ("flagged", "BOOL"),
        ("tries", "INT64"),
    ]
