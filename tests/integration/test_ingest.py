"""Decisions made by other serving stacks, logged and replayed: SageMaker Data Capture
files in a bucket of moto's S3 server (CSV and JSON payloads), and KServe's CloudEvents
posted over HTTP to `replay ingest --listen` as its payload logger posts them."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import boto3
import httpx
import pytest
from workspace import read_new_cases

from tests.integration.conftest import free_port, run_cli

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def decided(warm, workspace):
    """Eight applicants and what the frozen deployment decides for each (seed: the
    manifest's, as a stack that logs no seed decides)."""
    people = read_new_cases(workspace, "credit")[:8]
    seed = warm.manifest.runtime.seed
    return [(person, warm.predict(person, seed)) for person in people]


def capture_line(event_id: str, person: dict, outputs: dict, names: list[str], csv: bool) -> str:
    if csv:
        asked = {"observedContentType": "text/csv", "data": ",".join(str(person[n]) for n in names)}
        asked["encoding"] = "CSV"
    else:
        asked = {"observedContentType": "application/json", "encoding": "JSON"}
        asked["data"] = json.dumps({"instances": [person]})
    answered = {"observedContentType": "application/json", "encoding": "JSON"}
    answered["data"] = json.dumps({"predictions": [outputs]})
    return json.dumps(
        {
            "captureData": {
                "endpointInput": {**asked, "mode": "INPUT"},
                "endpointOutput": {**answered, "mode": "OUTPUT"},
            },
            "eventMetadata": {"eventId": event_id, "inferenceTime": "2026-05-01T10:00:00Z"},
            "eventVersion": "0",
        }
    )


def test_sagemaker_captures_in_s3_are_logged_once_and_replay_reproduced(
    s3, captured, built, decided
):
    bucket = s3(f"capture-{uuid.uuid4().hex[:10]}")
    names = list(captured.schema.inputs)
    client = boto3.client("s3")
    ids = [f"sm-{uuid.uuid4().hex[:8]}-{i}" for i in range(len(decided))]
    for hour, half in ((10, slice(0, 4)), (11, slice(4, 8))):  # CSV, then JSON requests
        lines = [
            capture_line(event_id, person, outputs, names, csv=hour == 10)
            for event_id, (person, outputs) in zip(ids[half], decided[half], strict=True)
        ]
        key = f"credit/AllTraffic/2026/05/01/{hour}/capture-{hour}.jsonl"
        client.put_object(Bucket=bucket, Key=key, Body="\n".join(lines).encode())
    altered = json.loads(capture_line("sm-broken", *decided[0], names, csv=False))
    altered["captureData"]["endpointOutput"]["data"] = "{not json"
    client.put_object(Bucket=bucket, Key="credit/x/broken.jsonl", Body=json.dumps(altered))

    location = f"s3://{bucket}/credit/"
    order = ("--columns", ",".join(names))  # the model's order: the manifest keeps them sorted
    # by manifest id: other tests capture newer versions of the same deployment
    target = ("--deployment", captured.manifest_id)
    args = ("ingest", location, "--format", "sagemaker", *target, *order, "--json")
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    counts = json.loads(result.stdout)
    held = run_cli("ingest", "--quarantined", "--json").stdout
    assert counts == {"logged": 8, "duplicate": 0, "pending": 0, "quarantined": 1}, held
    again = json.loads(run_cli(*args).stdout)
    assert again == {"logged": 0, "duplicate": 9, "pending": 0, "quarantined": 0}

    import replay

    logged = {e.source_id: e for e in replay.list_transactions(deployment=captured.name)}
    assert set(ids) <= set(logged)
    entry = logged[ids[0]]  # a CSV request, typed by the schema
    assert (entry.source, entry.time) == ("sagemaker", "2026-05-01T10:00:00.000000+00:00")
    assert entry.inputs == decided[0][0] and entry.seed is None
    for event_id in (ids[0], ids[5]):
        assert replay.replay(logged[event_id].txn_id).verdict == "reproduced"
    (held,) = [e for e in replay.held_events("quarantined") if e.source_id == "sm-broken"]
    assert "endpointOutput: its JSON data does not parse" in held.reason


@pytest.fixture(scope="module")
def listener(captured, built, tokens, tmp_path_factory):
    """`replay ingest --listen` on a free port, with a token of scope `ingest`."""
    import replay

    secret = replay.add_token(f"kserve-{uuid.uuid4().hex[:6]}", "ingest").token
    port = free_port()
    log = tmp_path_factory.mktemp("listener") / "listen.log"
    command = [
        str(Path(sys.executable).parent / "replay"),
        "ingest",
        "--listen",
        str(port),
        "--map",
        f"credit-isvc={captured.manifest_id}",
    ]
    with open(log, "w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"replay ingest --listen did not answer: {log.read_text()}")
            time.sleep(0.3)
    yield url, secret
    process.terminate()
    process.wait(30)


def post_event(url: str, path: str, part: str, event_id: str, body: dict, headers=None):
    sent = {
        "ce-id": event_id,
        "ce-specversion": "1.0",
        "ce-type": f"org.kubeflow.serving.inference.{part}",
        "ce-source": "http://localhost:9081/",
        "ce-time": "2026-06-01T12:00:00Z",
        "ce-inferenceservicename": "credit-isvc",
        "ce-namespace": "default",
        "ce-component": "predictor",
        "ce-endpoint": "credit-isvc-predictor",
        "content-type": "application/json",
        **(headers or {}),
    }
    return httpx.post(f"{url}{path}", content=json.dumps(body), headers=sent, timeout=30)


def test_kserve_cloud_events_are_paired_in_either_order_counted_and_replayed(
    listener, captured, decided
):
    url, secret = listener
    path = f"/ingest/kserve/{secret}"  # the logger is given a URL, never headers
    events = {}
    for i, (person, outputs) in enumerate(decided[:4]):
        request = {"instances": [person], "parameters": {"subject": f"p-{i}"}}
        events[f"ce-{uuid.uuid4().hex[:8]}"] = (request, {"predictions": [outputs]})
    (first, second, third, fourth) = events
    answers = []
    answers.append(post_event(url, path, "request", first, events[first][0]))
    answers.append(post_event(url, path, "response", first, events[first][1]))
    answers.append(post_event(url, path, "response", second, events[second][1]))  # first
    answers.append(post_event(url, path, "request", second, events[second][0]))
    answers.append(post_event(url, path, "response", second, events[second][1]))  # again
    answers.append(post_event(url, path, "request", third, events[third][0]))  # no response
    answers.append(
        post_event(url, "/ingest/kserve", "request", fourth, events[fourth][0], {})
    )  # no token
    assert [a.status_code for a in answers] == [200] * 6 + [401]
    assert "token" in answers[6].json()["error"]  # as this route's own errors
    counts = [a.json() for a in answers[:6]]
    assert [max(c, key=c.get) for c in counts] == [
        "pending", "logged", "pending", "logged", "duplicate", "pending"
    ]  # fmt: skip

    import replay

    pending = run_cli("ingest", "--pending", "--json")
    assert [e["source_id"] for e in json.loads(pending.stdout)] == [third]
    logged = {e.source_id: e for e in replay.list_transactions(deployment=captured.name)}
    for event_id in (first, second):
        entry = logged[event_id]
        assert entry.source == "kserve" and entry.is_sealed
        assert replay.replay(entry.txn_id).verdict == "reproduced"

    response = post_event(url, path, "response", third, events[third][1])
    assert response.json()["logged"] == 1
    assert json.loads(run_cli("ingest", "--pending", "--json").stdout) == []
    garbled = httpx.post(f"{url}{path}", content=b"{}", headers={"ce-id": "x", "ce-type": "y"})
    assert garbled.status_code == 400 and "quarantined" in garbled.json()["error"]
    wrong = httpx.get(f"{url}{path}")  # KServe's logger posts
    assert wrong.status_code == 405 and "GET" in wrong.text
    assert httpx.get(f"{url}/health").json()["held"]["quarantined"] >= 1


def test_kserve_cloud_events_posted_at_once_are_each_logged_once(listener, captured, decided):
    """Many senders at once: halves received together are committed together."""
    from concurrent.futures import ThreadPoolExecutor

    import replay

    url, secret = listener
    path = f"/ingest/kserve/{secret}"
    sent = {}
    for i in range(24):
        person, outputs = decided[i % len(decided)]
        request = {"instances": [person], "parameters": {"subject": f"q-{i}"}}
        sent[f"ce-{uuid.uuid4().hex[:8]}"] = (request, {"predictions": [outputs]})

    def both(event_id: str) -> list[dict]:
        request, response = sent[event_id]
        halves = [("request", request), ("response", response)]
        if len(event_id) % 2:  # some responses first
            halves.reverse()
        return [post_event(url, path, part, event_id, body).json() for part, body in halves]

    with ThreadPoolExecutor(12) as senders:
        answers = list(senders.map(both, sent))
    assert all([max(a, key=a.get) for a in pair] == ["pending", "logged"] for pair in answers)
    logged = [e.source_id for e in replay.list_transactions(deployment=captured.name)]
    assert sorted(event_id for event_id in logged if event_id in sent) == sorted(sent)


def test_an_altered_production_output_is_diverged_in_the_audit_naming_the_field(
    captured, decided, tmp_path
):
    """Decisions written to a file by another stack, one of them with a score production
    never got from the frozen deployment: the audit re-executes them on Dask and names it."""
    import mlflow

    import replay
    from replay.settings import load_settings

    lines = []
    for i, (person, outputs) in enumerate(decided[:5]):
        answered = dict(outputs)
        if i == 3:
            answered["score"] = outputs["score"] + 0.001
        moment = f"2025-03-01T0{i}:15:00+00:00"
        lines.append(json.dumps({"time": moment, "inputs": person, "outputs": answered}))
    source = tmp_path / "decisions.jsonl"
    source.write_text("\n".join(lines) + "\n")
    counts = replay.ingest(str(source), format="jsonl", deployment=captured.manifest_id)
    assert counts.logged == 5

    out = tmp_path / "audit"
    out.mkdir()
    window = ["--since", "2025-03-01", "--until", "2025-03-02"]
    audited = run_cli(
        "audit", "--deployment", captured.name, "--source", "file", *window,
        "--out", str(out), "--workers", "1", "--json",
    )  # fmt: skip
    assert audited.returncode == 1, audited.stderr  # one did not reproduce
    result = json.loads(audited.stdout)
    summary = result["summary"]
    assert summary["counts"] == {"reproduced": 4, "diverged": 1, "failed": 0}
    assert summary["by_source"] == {"file": {"reproduced": 4, "diverged": 1, "failed": 0}}
    assert list(summary["fields"]) == ["score"]
    assert summary["fields"]["score"]["max_absolute"] == pytest.approx(0.001)
    assert [w["window"] for w in summary["by_window"]] == [f"2025-03-01T0{i}" for i in range(5)]
    (example,) = summary["examples"]
    assert example["time"].startswith("2025-03-01T03:15")
    page = Path(result["files"]["html"]).read_text()
    assert example["txn_id"] in page and "<svg" in page
    recorded = replay.show_transaction(result["record_txn"])
    assert recorded.kind == "audit" and recorded.outputs["fields"] == {"score": 1}
    run = mlflow.MlflowClient(load_settings().tracking_uri).get_run(result["mlflow_run"])
    assert run.data.tags["replay.kind"] == "audit" and run.data.metrics["diverged"] == 1
    # the whole selection again, but only what production got right: exit 0
    again = run_cli(
        "audit", "--deployment", captured.name, "--source", "file", "--since", "2025-03-01",
        "--until", "2025-03-01T03:00", "--out", str(out), "--workers", "1",
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "3 ingested decisions of" in again.stdout and "0 diverged" in again.stdout
