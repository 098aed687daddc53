"""An MLflow model described as a deployment: URIs, signature, spec, requirements, rule."""

import json

import pytest
from replay.manifests.model_uri import looks_like_model, parse_model_uri
from replay.manifests.pyfunc import (
    container_requirements,
    describe_inputs,
    describe_output,
    pyfunc_deployment,
    signature_inputs,
    signature_outputs,
    system_needs,
)
from replay.manifests.schema import Schema

from replay.errors import BadInput


def mlmodel(inputs, outputs=None, flavours=("sklearn",)):
    signature = {"inputs": json.dumps(inputs)}
    if outputs is not None:
        signature["outputs"] = json.dumps(outputs)
    return {
        "flavors": {"python_function": {"loader_module": "x"}, **{f: {} for f in flavours}},
        "signature": signature,
    }


COLUMNS = [
    {"type": "double", "name": "income", "required": True},
    {"type": "long", "name": "age", "required": True},
    {"type": "string", "name": "region", "required": True},
    {"type": "boolean", "name": "owner", "required": True},
]
ROWS = [
    {"income": 1200.5, "age": 31, "region": "north", "owner": True},
    {"income": 8800.0, "age": 64, "region": "south", "owner": False},
    {"income": 4000.0, "age": 45, "region": "north", "owner": True},
]
PROBABILITIES = [{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1, 2]}}]
RULE = {"threshold": 0.5, "at_or_above": "approve", "below": "reject"}


@pytest.mark.parametrize(
    ("uri", "kind", "name", "version", "alias", "run_id"),
    [
        ("models:/fraud/3", "version", "fraud", "3", None, None),
        ("models:/fraud@champion", "alias", "fraud", None, "champion", None),
        ("runs:/0a1b2c/model", "run", None, None, None, "0a1b2c"),
    ],
)
def test_model_uris_are_parsed(uri, kind, name, version, alias, run_id):
    found = parse_model_uri(uri)
    assert (found.kind, found.name, found.version, found.alias, found.run_id) == (
        kind,
        name,
        version,
        alias,
        run_id,
    )
    assert looks_like_model(uri)


@pytest.mark.parametrize(
    "uri", ["models:/fraud/Production", "models:/fraud", "runs:/abc", "models:/a/1/2"]
)
def test_unfrozen_or_malformed_uris_are_refused(uri):
    with pytest.raises(BadInput, match=r"fraud|runs|models"):
        parse_model_uri(uri)


def test_a_folder_is_a_model_only_with_an_mlmodel_file_and_no_replay_yaml(tmp_path):
    assert not looks_like_model(tmp_path)
    (tmp_path / "MLmodel").write_text("flavors: {}\n")
    assert looks_like_model(tmp_path)
    assert parse_model_uri(tmp_path).kind == "folder"
    (tmp_path / "replay.yaml").write_text("name: x\n")
    assert not looks_like_model(tmp_path)


def test_inputs_take_types_from_the_signature_and_bounds_from_the_rows():
    columns = [(c["name"], c["type"]) for c in COLUMNS]
    inputs = describe_inputs(columns, ROWS, {"age": {"immutable": True}}, "m")
    assert inputs["income"] == {"type": "number", "min": 1200.5, "max": 8800.0}
    assert inputs["age"] == {"type": "integer", "min": 31, "max": 64, "immutable": True}
    assert inputs["region"] == {"type": "string", "values": ["north", "south"]}
    assert inputs["owner"] == {"type": "boolean"}


def test_a_spec_overrides_bounds_and_may_make_a_string_free_text():
    columns = [("income", "double"), ("note", "string")]
    rows = [{"income": 5.0, "note": "a"}, {"income": 6.0, "note": "b"}]
    overrides = {"income": {"min": 0, "max": 100000}, "note": {"type": "text"}}
    inputs = describe_inputs(columns, rows, overrides, "m")
    assert inputs["income"]["min"] == 0 and inputs["income"]["max"] == 100000
    assert inputs["note"] == {"type": "text"}


def test_an_input_the_model_does_not_have_is_refused():
    with pytest.raises(BadInput, match="spec input `salary` is not among"):
        describe_inputs([("income", "double")], [{"income": 1.0}], {"salary": {}}, "m")


def test_an_input_with_no_value_shown_needs_bounds():
    with pytest.raises(BadInput, match="no bounds for input `income`"):
        describe_inputs([("income", "double")], [{"income": None}], {}, "m")


def test_outputs_are_named_as_mlflow_names_them():
    assert signature_outputs(mlmodel(COLUMNS)) == {"prediction": "number"}
    assert signature_outputs(mlmodel(COLUMNS, PROBABILITIES)) == {
        "prediction_0": "number",
        "prediction_1": "number",
    }
    labels = [{"type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1]}}]
    assert signature_outputs(mlmodel(COLUMNS, labels)) == {"prediction": "integer"}
    named = [{"type": "double", "name": "risk"}, {"type": "string", "name": "band"}]
    assert signature_outputs(mlmodel(COLUMNS, named)) == {"risk": "number", "band": "string"}


def test_a_rule_makes_the_decision_from_the_score():
    fields = {"prediction_0": "number", "prediction_1": "number"}
    given = {"score": "prediction_1", "favourable": "approve", "rule": RULE}
    output, rule = describe_output(fields, given, "m")
    assert output["decision"] == "decision" and output["score"] == "prediction_1"
    assert output["fields"]["decision"] == {"type": "string", "values": ["approve", "reject"]}
    assert rule == {**RULE, "score": "prediction_1", "decision": "decision"}


def test_without_a_rule_a_model_output_is_the_decision():
    output, rule = describe_output({"prediction": "integer"}, {"favourable": 0}, "m")
    assert rule is None
    assert output["decision"] == output["score"] == "prediction"


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({}, "which decision helps"),
        ({"favourable": "yes", "rule": {"threshold": 0.5}}, "rule must be"),
        ({"favourable": "maybe", "rule": RULE}, "neither outcome"),
        ({"favourable": "approve", "score": "nope", "rule": RULE}, "score `nope`"),
        ({"favourable": 1, "decision": "label"}, "decision `label`"),
        ({"favourable": "approve", "rule": RULE, "colour": "red"}, "unknown key `colour`"),
        ({"favourable": "approve", "rule": {**RULE, "threshold": "high"}}, "threshold must"),
    ],
)
def test_an_output_spec_that_cannot_decide_is_refused(given, message):
    with pytest.raises(BadInput, match=message):
        describe_output({"prediction": "number"}, given, "m")


def test_the_loader_is_the_smallest_that_works_and_pandas_is_there():
    text = "mlflow==3.17.2\nscikit-learn==1.5.2\nxgboost==3.2.0  # booster\n\ncloudpickle==3.1.2\n"
    requirements, notes = container_requirements(text, "m")
    assert requirements.splitlines() == [
        "mlflow-skinny==3.17.2",
        "scikit-learn==1.5.2",
        "xgboost-cpu==3.2.0",
        "cloudpickle==3.1.2",
        "pandas",
    ]
    assert notes == [
        "the container loads the model with mlflow-skinny in place of mlflow",
        "the container loads the model with xgboost-cpu in place of xgboost",
    ]
    # MLflow may name both distributions of XGBoost: the loader is named once
    twice, _ = container_requirements("mlflow==3\nxgboost-cpu==3.2.0\nxgboost==3.2.0\n", "m")
    assert twice.splitlines() == ["mlflow-skinny==3", "xgboost-cpu==3.2.0", "pandas"]
    with pytest.raises(BadInput, match="does not name mlflow"):
        container_requirements("numpy==2.1.3\n", "m")
    with pytest.raises(BadInput, match="not supported"):
        container_requirements("mlflow==3\n-e ./local\n", "m")


def test_lightgbm_is_known_to_need_libgomp():
    assert system_needs("lightgbm==4.7.0\n", ["python_function"]) == ["libgomp1"]
    assert system_needs("scikit-learn==1.5.2\n", ["sklearn"]) == []


def test_the_written_replay_yaml_is_a_valid_schema():
    decided = pyfunc_deployment(
        mlmodel=mlmodel(COLUMNS, PROBABILITIES, flavours=("lightgbm",)),
        requirements_txt="mlflow==3.17.2\nlightgbm==4.7.0\npandas==3.1.1\n",
        rows=ROWS,
        spec={
            "name": "credit-lgbm",
            "inputs": {"age": {"immutable": True}},
            "output": {"score": "prediction_1", "favourable": "approve", "rule": RULE},
        },
        name="ignored",
        version="7",
        model_files=["mlflow/MLmodel", "mlflow/model.lgb"],
        reference="reference.csv",
        where="models:/credit/7",
    )
    document = decided.spec
    assert document["name"] == "credit-lgbm" and document["version"] == "7"
    assert document["system_packages"] == ["libgomp1"]
    assert decided.adapter["columns"][:2] == [["income", "float64"], ["age", "int64"]]
    schema = Schema.from_json({"inputs": document["inputs"], "output": document["output"]})
    assert schema.inputs["age"].immutable
    assert schema.output.favourable == "approve"
    assert any("libgomp1" in note for note in decided.notes)


def test_a_spec_may_not_say_what_comes_from_the_model():
    with pytest.raises(BadInput, match="unknown key `entrypoint` in the spec \\(it comes from"):
        pyfunc_deployment(
            mlmodel=mlmodel(COLUMNS),
            requirements_txt="mlflow==3\n",
            rows=ROWS,
            spec={"entrypoint": "x:y"},
            name="m",
            version="1",
            model_files=[],
            reference="reference.csv",
            where="m",
        )


def test_a_model_without_a_signature_is_refused():
    model = {"flavors": {"python_function": {}}}
    with pytest.raises(BadInput, match="without a signature"):
        pyfunc_deployment(
            mlmodel=model,
            requirements_txt="mlflow==3\n",
            rows=ROWS,
            spec={},
            name="m",
            version="1",
            model_files=[],
            reference="reference.csv",
            where="m",
        )


TABLE = [{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 3]}}]


def test_a_tensor_input_is_named_by_the_spec_in_order():
    named = ["income", "debts", "age"]
    assert signature_inputs(mlmodel(TABLE), "m", named) == [
        ("income", "float"),
        ("debts", "float"),
        ("age", "float"),
    ]
    rows = [
        {"income": 900.0, "debts": 10.0, "age": 30.0},
        {"income": 50.0, "debts": 0.0, "age": 70.0},
    ]
    decided = pyfunc_deployment(
        mlmodel=mlmodel(TABLE, flavours=("pytorch",)),
        requirements_txt="mlflow==3.17.2\ntorch==2.13.0\n",
        rows=rows,
        spec={
            "inputs": {"income": {}, "debts": {"max": 500}, "age": {"immutable": True}},
            "output": {"score": "prediction", "favourable": "approve", "rule": RULE},
        },
        name="credit-torch",
        version="1",
        model_files=["mlflow/MLmodel"],
        reference="reference.csv",
        where="m",
    )
    assert decided.adapter["tensor"] == "float32"
    assert [column for column, _ in decided.adapter["columns"]] == named
    assert decided.spec["inputs"]["income"] == {"type": "number", "min": 50.0, "max": 900.0}
    assert decided.spec["inputs"]["debts"]["max"] == 500


@pytest.mark.parametrize(
    ("inputs", "named", "message"),
    [
        (TABLE, ["income", "debts"], "a table of 3 unnamed numbers .* \\(2 named\\)"),
        (TABLE, [], "name its columns in order under `inputs`"),
        (
            [{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 28, 28]}}],
            ["pixels"],
            "shape \\[-1, 28, 28\\]; replay answers tabular models",
        ),
        ([{"type": "tensor", "tensor-spec": {"dtype": "str", "shape": [-1, 1]}}], ["t"], "str"),
    ],
)
def test_a_tensor_that_is_not_a_named_table_is_refused(inputs, named, message):
    with pytest.raises(BadInput, match=message):
        signature_inputs(mlmodel(inputs), "m", named)


def test_an_unnamed_column_is_refused():
    unnamed = [{"type": "double"}, {"type": "double"}]
    with pytest.raises(BadInput, match="input \\(unnamed\\) is a double"):
        signature_inputs(mlmodel(unnamed), "m")
