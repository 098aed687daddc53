"""The Open Inference Protocol (KServe's v2) on `replay serve`: a real client
(tritonclient, JSON tensors) and MLServer-style JSON, each row logged as a decision and
replayed reproduced; KServe's CloudEvents posted to the same server."""

from __future__ import annotations

import json
import uuid

import httpx
import numpy as np
import pytest

from tests.integration.conftest import read_new_cases

pytestmark = pytest.mark.integration


def test_a_tritonclient_inference_is_logged_per_row_and_replays_reproduced(
    server, captured, tokens, workspace
):
    import tritonclient.http as triton

    import replay

    people = read_new_cases(workspace, "credit")[100:103]
    client = triton.InferenceServerClient(server.removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready()  # open, as probes are
    metadata = client.get_model_metadata(captured.name, headers=tokens["read"])
    assert {t["name"]: t["datatype"] for t in metadata["inputs"]} == {
        name: "INT64" if feature.type == "integer" else "FP64"
        for name, feature in captured.schema.inputs.items()
    }
    inputs = []
    for name, feature in captured.schema.inputs.items():
        column = np.array(
            [[person[name]] for person in people],
            dtype=np.int64 if feature.type == "integer" else np.float64,
        )
        tensor = triton.InferInput(
            name, list(column.shape), "INT64" if column.dtype == np.int64 else "FP64"
        )
        tensor.set_data_from_numpy(column, binary_data=False)
        inputs.append(tensor)
    result = client.infer(
        captured.name,
        inputs,
        outputs=[triton.InferRequestedOutput(n, binary_data=False) for n in ("decision", "score")],
        request_id="triton-1",
        parameters={"subjects": ["oip-a", None, "oip-c"]},
        headers=tokens["decide"],
    )
    answer = result.get_response()
    assert answer["id"] == "triton-1" and answer["model_name"] == captured.name
    assert [t["name"] for t in answer["outputs"]] == ["decision", "score"]  # as asked
    txns = answer["parameters"]["transaction_ids"]
    assert len(set(txns)) == 3 and answer["parameters"]["manifest_id"] == captured.manifest_id
    scores = result.as_numpy("score")
    for person, txn, score, decision in zip(
        people, txns, scores, result.as_numpy("decision"), strict=True
    ):
        entry = replay.show_transaction(txn)
        assert entry.inputs == person and entry.outputs["score"] == float(score)
        assert entry.outputs["decision"] == decision  # JSON BYTES read back as str
        replayed = replay.replay(txn)
        assert replayed.verdict == "reproduced", replayed.differences
    sealed = [replay.show_transaction(txn).is_sealed for txn in txns]
    assert sealed == [True, False, True]  # a subject per row, none for the second


def test_mlserver_style_json_and_the_protocols_errors(server, captured, tokens, workspace):
    person = read_new_cases(workspace, "credit")[104]
    url = f"{server}/v2/models/{captured.name}/versions/{captured.version}/infer"
    body = {
        "parameters": {"content_type": "pd", "subject": "oip-mlserver"},
        "inputs": [
            {
                "name": name,
                "shape": [1, 1],
                "datatype": "INT64" if feature.type == "integer" else "FP64",
                "data": [[person[name]]],
            }
            for name, feature in captured.schema.inputs.items()
        ],
    }
    answered = httpx.post(url, json=body, headers=tokens["decide"], timeout=60)
    assert answered.status_code == 200, answered.text
    outputs = {t["name"]: t for t in answered.json()["outputs"]}
    assert set(outputs) == set(captured.schema.output.fields)
    assert outputs["score"]["datatype"] == "FP64" and outputs["audit"]["datatype"] == "BOOL"

    wrong = json.loads(json.dumps(body))
    wrong["inputs"][0]["data"] = [["many"]]
    refused = httpx.post(url, json=wrong, headers=tokens["decide"], timeout=60)
    assert refused.status_code == 400
    assert f"input {wrong['inputs'][0]['name']!r}" in refused.json()["error"]
    unknown = httpx.post(
        f"{server}/v2/models/no-such-model/infer", json=body, headers=tokens["decide"]
    )
    assert unknown.status_code == 404 and "no model 'no-such-model'" in unknown.json()["error"]
    assert httpx.post(url, json=body).status_code == 401  # tokens as replay's own API
    assert httpx.post(url, json=body, headers=tokens["read"]).status_code == 403


def test_free_text_and_categories_as_bytes_tensors(fraud_warm, fraud_workspace, tokens):
    """A deployment of text, category and boolean inputs, through the app `serve` runs."""
    from fastapi.testclient import TestClient

    import replay
    from replay.settings import load_settings
    from replay.web.serving import create_app

    manifest = fraud_warm.manifest
    payments = read_new_cases(fraud_workspace, "fraud")[:2]
    datatypes = {"text": "BYTES", "string": "BYTES", "boolean": "BOOL", "integer": "INT64"}
    body = {
        "id": "payments-7",
        "inputs": [
            {
                "name": name,
                "shape": [len(payments)],
                "datatype": datatypes.get(feature.type, "FP64"),
                "data": [payment[name] for payment in payments],
            }
            for name, feature in manifest.schema.inputs.items()
        ],
    }
    client = TestClient(create_app(fraud_warm, load_settings()))
    answered = client.post(f"/v2/models/{manifest.name}/infer", json=body, headers=tokens["decide"])
    assert answered.status_code == 200, answered.text
    answer = answered.json()
    assert answer["id"] == "payments-7"
    decisions = {t["name"]: t["data"] for t in answer["outputs"]}["decision"]
    for payment, txn, decision in zip(
        payments, answer["parameters"]["transaction_ids"], decisions, strict=True
    ):
        entry = replay.show_transaction(txn)
        assert entry.inputs == payment and entry.outputs["decision"] == decision
        assert replay.replay(txn).verdict == "reproduced"


def test_kserve_cloud_events_posted_to_serve_are_logged(server, captured, warm, workspace):
    import replay

    secret = replay.add_token(f"kserve-serve-{uuid.uuid4().hex[:6]}", "ingest").token
    person = read_new_cases(workspace, "credit")[105]
    # KServe's events carry no seed: the decision is logged, and replays, with the
    # manifest's (the credit model's audit draw depends on it)
    outputs = warm.predict(person, captured.runtime.seed)
    event_id = f"ce-{uuid.uuid4().hex[:8]}"
    counts = []
    for part, body in (
        ("request", {"instances": [person]}),
        ("response", {"predictions": [outputs]}),
    ):
        headers = {
            "ce-id": event_id,
            "ce-specversion": "1.0",
            "ce-type": f"org.kubeflow.serving.inference.{part}",
            "ce-source": "http://localhost:9081/",
            "ce-inferenceservicename": "some-isvc",  # no --map: the served deployment's
            "content-type": "application/json",
        }
        answer = httpx.post(
            f"{server}/ingest/kserve/{secret}", content=json.dumps(body), headers=headers
        )
        assert answer.status_code == 200, answer.text
        counts.append(answer.json())
    assert [c["pending"] for c in counts] == [1, 0] and counts[1]["logged"] == 1
    (entry,) = [
        e for e in replay.list_transactions(deployment=captured.name) if e.source_id == event_id
    ]
    assert entry.source == "kserve" and entry.manifest_id == captured.manifest_id
    assert replay.replay(entry.txn_id).verdict == "reproduced"
    # an ingest token sends events, and nothing else
    other = httpx.get(
        f"{server}/decisions/{entry.txn_id}", headers={"Authorization": f"Bearer {secret}"}
    )
    assert other.status_code == 403
