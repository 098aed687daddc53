"""Decisions made elsewhere, logged: the sources' formats decoded, halves paired, events
logged once, bad ones quarantined with the reason (a real SQLite ledger in a folder;
the deployment's manifest is built, not captured)."""

from __future__ import annotations

import base64
import dataclasses
import json
import random
import sqlite3
import sys
from pathlib import Path

import pytest
from replay.manifests.manifest import Manifest

from replay.errors import BadInput, EnvironmentProblem
from replay.ingestion import CloudEvent, IngestCounts, Ingestion
from replay.ingestion.files import SourceFile, records
from replay.ingestion.reading import Reading
from replay.ingestion.sagemaker import record_events
from replay.ledger.chain import GENESIS, NewEntry, entry_hash
from replay.ledger.subjects import erase_subject
from replay.settings import load_settings
from tests.factories import manifest_document

CREDIT = Manifest(manifest_document())  # inputs income (number), age (integer)
# A registry model: it answers a score, and a declared threshold rule makes the decision.
RULED = Manifest(
    manifest_document(
        name="credit-xgb",
        model={
            "files": CREDIT.document["model"]["files"],
            "source": {
                "uri": "models:/credit-xgb/1",
                "registered_name": "credit-xgb",
                "version": "1",
                "alias": None,
                "run_id": "r" * 32,
                "flavours": ["xgboost"],
                "mlflow_version": "3.17.0",
                "rule": {
                    "threshold": 0.5,
                    "at_or_above": "approved",
                    "below": "rejected",
                    "score": "score",
                    "decision": "decision",
                },
            },
        },
    )
)


def fresh(folder: Path) -> Ingestion:
    """An ingestion into a new ledger kept in `folder`."""
    settings = load_settings({"REPLAY_HOME": str(folder / "home")}, cwd=folder)
    made = Ingestion(settings)
    made._manifests.update({"credit": CREDIT, "credit-xgb": RULED})  # in place of MLflow
    return made


@pytest.fixture
def ingestion(tmp_path) -> Ingestion:
    return fresh(tmp_path)


def lines(path: Path, records: list) -> SourceFile:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in records))
    return SourceFile(str(path), path=path)


def nested(levels: int) -> list:
    """A list inside a list, `levels` deep: JSON that parses, deeper than any record."""
    value: list = []
    for _ in range(levels - 1):
        value = [value]
    return value


def record(i: int, **changes) -> dict:
    return {
        "time": f"2026-03-01T09:{i:02d}:00Z",
        "inputs": {"income": 1000.0 + i, "age": 30 + i},
        "outputs": {"decision": "approved", "score": i / 7},
        "id": f"order-{i}",
        **changes,
    }


def test_a_file_of_decisions_is_logged_once_with_its_times_and_bad_lines_quarantined(
    ingestion, tmp_path
):
    written = [
        record(1),
        record(2, subject="applicant-2", seed=7),
        record(1),  # the same event again
        "{not json",
        "[" * 100_000,  # deeper than json's recursion reads
        record(6, outputs={"decision": "approved", "score": 0.5, "why": nested(400)}),
        record(3, inputs={"income": "lots", "age": 33}),
        record(4, outputs={"score": 0.5}),
        record(5, colour="red"),
    ]
    file = lines(tmp_path / "decisions.jsonl", written)
    counts = ingestion.log(records(file, "jsonl"), Reading("jsonl", "credit"))
    assert counts.to_dict() == {"logged": 2, "duplicate": 1, "pending": 0, "quarantined": 6}

    logged = ingestion.ledger.list()
    assert [(e.source, e.source_id, e.time) for e in logged] == [
        ("file", "order-1", "2026-03-01T09:01:00.000000+00:00"),
        ("file", "order-2", "2026-03-01T09:02:00.000000+00:00"),
    ]
    assert logged[0].outputs["score"] == 1 / 7 and logged[1].seed == 7
    assert logged[1].is_sealed and logged[1].inputs == {"income": 1002.0, "age": 32}
    reasons = {e.source_id: e.reason for e in ingestion.holding.events("quarantined")}
    assert "income must be a number" in reasons["order-3"]
    assert "output field 'decision' is missing" in reasons["order-4"]
    assert "unknown key 'colour'" in reasons["order-5"]
    assert sum("not JSON" in reason for reason in reasons.values()) == 1
    assert sum("JSON nested deeper than 32 levels" in reason for reason in reasons.values()) == 2

    # nothing new, not even in quarantine
    again = ingestion.log(records(file, "jsonl"), Reading("jsonl", "credit"))
    assert again.to_dict() == {"logged": 0, "duplicate": 9, "pending": 0, "quarantined": 0}
    assert ingestion.ledger.verify().ok and ingestion.ledger.count() == 2


def test_parquet_rows_with_json_text_nested_too_deep_are_quarantined_the_rest_logged(
    ingestion, tmp_path
):
    import pyarrow as pa
    import pyarrow.parquet as pq

    good, inputs = record(1), json.dumps(record(1)["inputs"])
    path = tmp_path / "decisions.parquet"
    rows = [
        {**good, "inputs": inputs, "outputs": json.dumps(good["outputs"])},
        {**record(2), "inputs": "[" * 100_000, "outputs": json.dumps(good["outputs"])},
        {**record(3), "inputs": inputs, "outputs": json.dumps(nested(400))},
    ]
    pq.write_table(pa.Table.from_pylist(rows), path)
    file = SourceFile(str(path), path=path)
    counts = ingestion.log(records(file, "parquet"), Reading("parquet", "credit"))
    assert counts.to_dict() == {"logged": 1, "duplicate": 0, "pending": 0, "quarantined": 2}
    assert logged_ids(ingestion) == ["order-1"]
    assert {e.source_id for e in ingestion.holding.events("quarantined")} == {"order-2", "order-3"}


def test_batches_prepared_in_worker_processes_are_logged_as_in_this_one(tmp_path):
    written = [
        record(i, subject=f"applicant-{i}") if i % 7 else record(i, inputs={"income": "x"})
        for i in range(1, 40)
    ]
    written[20:20] = [record(3, subject="applicant-3"), "{not json"]  # a copy, and no JSON
    file = lines(tmp_path / "decisions.jsonl", written)
    here, there = fresh(tmp_path / "here"), fresh(tmp_path / "there")
    alone = here.log(records(file, "jsonl"), Reading("jsonl", "credit"), batch=4, workers=0)
    together = there.log(records(file, "jsonl"), Reading("jsonl", "credit"), batch=4, workers=2)

    assert together == alone
    assert alone.logged and alone.duplicate and alone.quarantined
    assert [(e.source_id, e.time, e.inputs, e.outputs) for e in there.ledger.list()] == [
        (e.source_id, e.time, e.inputs, e.outputs) for e in here.ledger.list()
    ]  # in the order read, each sealed under its person's key made in a worker
    assert all(e.is_sealed for e in there.ledger.list()) and there.ledger.verify().ok
    assert [e.reason for e in there.holding.events("quarantined")] == [
        e.reason for e in here.holding.events("quarantined")
    ]


def test_an_unknown_deployment_is_quarantined_naming_it(ingestion, tmp_path, monkeypatch):
    def unknown(named: str) -> Manifest:
        raise BadInput(f"unknown deployment {named!r}")

    monkeypatch.setattr(ingestion, "manifest_of", unknown)
    file = lines(tmp_path / "d.jsonl", [record(1)])
    counts = ingestion.log(records(file, "jsonl"), Reading("jsonl", "fraud"))
    assert counts.quarantined == 1
    (held,) = ingestion.holding.events("quarantined")
    assert held.reason == "unknown deployment 'fraud'" and held.deployment == "fraud"
    assert json.loads(held.payload or b"")["id"] == "order-1"  # kept as it came


def capture(data_in: str, data_out: str, encoding: str = "CSV", kind: str = "text/csv") -> bytes:
    part = {"observedContentType": kind, "mode": "INPUT", "data": data_in, "encoding": encoding}
    answer = {**part, "mode": "OUTPUT", "data": data_out}
    return json.dumps(
        {
            "captureData": {"endpointInput": part, "endpointOutput": answer},
            "eventMetadata": {"eventId": "ev-1", "inferenceTime": "2026-02-03T04:05:06Z"},
            "eventVersion": "0",
        }
    ).encode()


@pytest.mark.parametrize(
    ("line", "inputs", "outputs"),
    [
        (capture("1200.5,41", "0.25"), [{"income": 1200.5, "age": 41}], [{"score": 0.25}]),
        (
            capture("1200.5,41\n900,30", "0.75\n0.25"),
            [{"income": 1200.5, "age": 41}, {"income": 900.0, "age": 30}],
            [{"score": 0.75}, {"score": 0.25}],
        ),
        (
            capture(
                json.dumps({"instances": [{"income": 5.0, "age": 20}]}),
                json.dumps({"predictions": [0.5]}),
                "JSON",
                "application/json",
            ),
            [{"income": 5.0, "age": 20}],
            [{"score": 0.5}],
        ),
        (
            capture(
                base64.b64encode(b"[[5.0, 20]]").decode(),
                base64.b64encode(b"[[0.5]]").decode(),
                "BASE64",
                "application/json",
            ),
            [{"income": 5.0, "age": 20}],
            [{"score": 0.5}],
        ),
    ],
)
def test_sagemaker_captures_are_decoded_by_their_encoding(line, inputs, outputs):
    made = record_events(line, "capture:1", "credit-xgb", RULED)
    assert [m.inputs for m in made] == inputs and [m.outputs for m in made] == outputs
    ids = [m.source_id for m in made]
    assert ids == (["ev-1"] if len(made) == 1 else ["ev-1/0", "ev-1/1"])
    assert {m.time.isoformat() for m in made if m.time} == {"2026-02-03T04:05:06+00:00"}


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (
            capture("[[1200.5, 41]]", "[[0.25, 0.1, 0.3]]", "JSON", "application/json"),
            "3 output values for the output fields score",
        ),
        (capture("1200.5,41", "0.25,0.1,0.3"), "1 input rows but 3 outputs"),
        (capture("1200.5,41\n900,30", "0.75"), "2 input rows but 1 outputs"),
        (capture("1200.5", "0.5"), "a CSV row of 1 values for 2 inputs"),
        (capture("@@@", "@@@", "BASE64"), "does not decode"),
        (
            b'{"captureData": {"endpointInput": {}}, "eventMetadata": {"eventId": "e"}}',
            "without its response",
        ),
        (b"[" * 100_000, "nested deeper than 32 levels"),  # deeper than json reads
        (capture("[" * 100_000, "0.5", "JSON", "application/json"), "does not parse"),
        (
            capture(json.dumps(nested(400)), "0.5", "JSON", "application/json"),
            "its JSON data does not parse: JSON nested deeper than 32 levels",
        ),
    ],
)
def test_an_undecodable_capture_is_one_unreadable_event_saying_why(line, reason):
    (event,) = record_events(line, "capture:1", "credit-xgb", RULED)
    assert reason in event.reason


def test_a_score_alone_is_decided_by_the_deployments_declared_rule(ingestion):
    line = capture("1200.5,41\n900,30", "0.75\n0.25")
    counts = ingestion.log([(line, "c:1")], Reading("sagemaker", "credit-xgb", RULED))
    assert counts.logged == 2
    assert [e.outputs for e in ingestion.ledger.list()] == [
        {"score": 0.75, "decision": "approved"},
        {"score": 0.25, "decision": "rejected"},
    ]


def event(part: str, body: dict, event_id: str = "ce-1", service: str = "credit") -> CloudEvent:
    headers = {
        "ce-id": event_id,
        "ce-type": f"org.kubeflow.serving.inference.{part}",
        "ce-source": "http://localhost:9081/",
        "ce-specversion": "1.0",
        "ce-time": "2026-04-05T06:07:08.123Z",
        "ce-inferenceservicename": service,
        "ce-namespace": "default",
        "ce-component": "predictor",
        "ce-endpoint": "",
    }
    return CloudEvent.of(headers, json.dumps(body).encode())


REQUEST = {"instances": [[2500.0, 44]], "parameters": {"subject": "applicant-9"}}
RESPONSE = {"predictions": [{"decision": "rejected", "score": 0.9}]}


def logged_once(ingestion: Ingestion) -> None:
    """The ledger holds REQUEST's decision with RESPONSE's outputs, once, sealed."""
    (entry,) = ingestion.ledger.list()
    assert (entry.source, entry.source_id, entry.time) == (
        "kserve",
        "ce-1",
        "2026-04-05T06:07:08.123000+00:00",
    )
    assert entry.is_sealed and entry.inputs == {"income": 2500.0, "age": 44}
    assert entry.outputs == RESPONSE["predictions"][0]


@pytest.mark.parametrize("first", ["request", "response"])
def test_kserve_halves_are_paired_in_either_order_and_logged_once(ingestion, first):
    halves = {"request": event("request", REQUEST), "response": event("response", RESPONSE)}
    second = "response" if first == "request" else "request"
    assert ingestion.receive(halves[first]).pending == 1
    (held,) = ingestion.holding.events("pending")
    assert (held.source_id, held.held_as, held.deployment) == ("ce-1", first, "credit")
    assert ingestion.receive(halves[second]).logged == 1
    assert ingestion.holding.events("pending") == []
    for half in halves.values():  # either half again adds nothing, holds nothing
        assert ingestion.receive(half).duplicate == 1
    logged_once(ingestion)


def test_a_held_request_is_sealed_under_its_persons_key(ingestion):
    ingestion.receive(event("request", {**REQUEST, "instances": [[987654.25, 44]]}))
    (held,) = ingestion.holding.events("pending")
    assert held.subject is not None and held.subject.startswith("s_")
    assert b"987654.25" in (held.payload or b"")  # opened with the key
    ledger_file = Path(ingestion.settings.ledger)
    database = sqlite3.connect(ledger_file)
    stored = database.execute("SELECT payload FROM held_events").fetchone()[0]
    assert "987654.25" not in stored and stored.startswith("aes-256-gcm:")


def test_a_pair_that_is_no_decision_is_quarantined_and_released(ingestion):
    ingestion.receive(event("request", REQUEST, "ce-2"))
    counts = ingestion.receive(event("response", {"predictions": [{"score": 0.9}]}, "ce-2"))
    assert counts.quarantined == 1 and ingestion.holding.events("pending") == []
    (held,) = ingestion.holding.events("quarantined")
    assert "output field 'decision' is missing" in held.reason
    assert set(json.loads(held.payload or b"")) == {"request", "response"}


PENDING, LOGGED = IngestCounts(pending=1), IngestCounts(logged=1)
DUPLICATE, QUARANTINED = IngestCounts(duplicate=1), IngestCounts(quarantined=1)
NO_DECISION = {"predictions": [{"score": 0.9}]}  # the output field 'decision' missing
TWO_ROWS = {"instances": [[1500.0, 21], [3500.0, 62]], "parameters": {"subjects": ["a", "b"]}}
TWO_ANSWERS = {
    "predictions": [{"decision": "approved", "score": 0.2}, {"decision": "rejected", "score": 0.8}]
}


def pair(event_id: str, request: dict = REQUEST, response: dict = RESPONSE) -> list[CloudEvent]:
    return [event("request", request, event_id), event("response", response, event_id)]


def held_ids(ingestion: Ingestion, state: str) -> list[tuple[str, str]]:
    return [(e.source_id, e.held_as) for e in ingestion.holding.events(state)]


def logged_ids(ingestion: Ingestion) -> list[str | None]:
    return [entry.source_id for entry in ingestion.ledger.list()]


def holding_writes(ingestion: Ingestion) -> sqlite3.Connection:
    """The ledger's database, noting every row ever written to the holding table (in
    `held_log`), even one deleted again in the same transaction."""
    database = sqlite3.connect(ingestion.settings.ledger)
    database.executescript(
        """
        CREATE TABLE held_log (source_id TEXT, held_as TEXT);
        CREATE TRIGGER held_logged AFTER INSERT ON held_events
        BEGIN INSERT INTO held_log VALUES (NEW.source_id, NEW.held_as); END;
        """
    )
    return database


@pytest.mark.parametrize("first", ["request", "response"])
def test_a_request_and_its_response_received_together_are_logged_once_and_never_held(
    ingestion, first
):
    halves = {"request": event("request", REQUEST), "response": event("response", RESPONSE)}
    second = "response" if first == "request" else "request"
    database = holding_writes(ingestion)
    assert ingestion.receive_all([halves[first], halves[second]]) == [PENDING, LOGGED]
    logged_once(ingestion)
    assert ingestion.holding.events("pending") == []
    assert ingestion.holding.events("quarantined") == []
    assert database.execute("SELECT * FROM held_log").fetchall() == []  # not even for a while
    assert ingestion.ledger.verify().ok


def test_the_same_request_twice_in_one_batch_is_held_once(ingestion):
    request = event("request", REQUEST)
    assert ingestion.receive_all([request, request]) == [PENDING, DUPLICATE]
    assert held_ids(ingestion, "pending") == [("ce-1", "request")]
    assert ingestion.ledger.count() == 0
    assert ingestion.receive(event("response", RESPONSE)) == LOGGED  # the one held is paired
    assert logged_ids(ingestion) == ["ce-1"] and held_ids(ingestion, "pending") == []


@pytest.mark.parametrize(
    ("halves", "logged"),
    [
        (pair("ce-1"), ["ce-1"]),
        ([*reversed(pair("ce-1"))], ["ce-1"]),
        (pair("ce-1", TWO_ROWS, TWO_ANSWERS), ["ce-1/0", "ce-1/1"]),  # known by its first row
    ],
)
def test_a_pair_received_twice_in_one_batch_is_logged_once_and_its_copies_are_duplicates(
    ingestion, halves, logged
):
    counts = ingestion.receive_all([*halves, *halves])
    assert counts == [PENDING, IngestCounts(logged=len(logged)), DUPLICATE, DUPLICATE]
    assert logged_ids(ingestion) == logged
    assert held_ids(ingestion, "pending") == [] and held_ids(ingestion, "quarantined") == []
    assert ingestion.receive_all([*halves]) == [DUPLICATE, DUPLICATE]  # and in a later batch


def test_a_batch_completes_pairs_held_before_holds_new_halves_and_quarantines_bad_pairs(
    ingestion,
):
    request_1, response_1 = pair("ce-1")
    request_4, _ = pair("ce-4")
    assert [ingestion.receive(request_1), ingestion.receive(request_4)] == [PENDING, PENDING]
    counts = ingestion.receive_all(
        [
            response_1,  # completes the request held before
            event("request", REQUEST, "ce-2"),  # waits for its response
            *pair("ce-3", response=NO_DECISION),  # both halves here, no decision
            event("response", NO_DECISION, "ce-4"),  # the request held before, no decision
        ]
    )
    assert counts == [LOGGED, PENDING, PENDING, QUARANTINED, QUARANTINED]
    assert logged_ids(ingestion) == ["ce-1"]
    assert held_ids(ingestion, "pending") == [("ce-2", "request")]  # ce-1's and ce-4's released
    reasons = {e.source_id: e.reason for e in ingestion.holding.events("quarantined")}
    assert set(reasons) == {"ce-3", "ce-4"}
    for reason in reasons.values():
        assert "output field 'decision' is missing" in reason
    for kept in ingestion.holding.events("quarantined"):  # the pair kept as it came
        assert set(json.loads(kept.payload or b"")) == {"request", "response"}
    assert ingestion.receive_all([response_1, *pair("ce-3")]) == [DUPLICATE] * 3


def test_bodies_nested_too_deep_are_quarantined_and_fail_no_other_half(ingestion):
    """A request deeper than json's recursion reads, and a response that parses but
    nests an output 400 levels deep (the schema's checks recurse): each pair is
    quarantined saying why, and the other halves received with them are logged."""
    deep = dataclasses.replace(event("request", REQUEST, "ce-5"), body="[" * 100_000)
    answered = {"predictions": [{**RESPONSE["predictions"][0], "why": nested(400)}]}
    counts = ingestion.receive_all(
        [
            deep,
            *pair("ce-1"),
            event("response", RESPONSE, "ce-5"),
            *pair("ce-6", response=answered),
        ]
    )
    assert counts == [PENDING, PENDING, LOGGED, QUARANTINED, PENDING, QUARANTINED]
    reasons = {e.source_id: e.reason for e in ingestion.holding.events("quarantined")}
    assert "the request is JSON nested deeper than 32 levels" in reasons["ce-5"]
    assert "the response is JSON nested deeper than 32 levels" in reasons["ce-6"]
    logged_once(ingestion)


def test_a_response_whose_held_request_was_erased_is_quarantined_saying_so(ingestion):
    assert ingestion.receive_all(pair("ce-0")) == [PENDING, LOGGED]  # applicant-9 is known
    secret = {**REQUEST, "instances": [[987654.25, 44]]}
    assert ingestion.receive(event("request", secret, "ce-1")) == PENDING
    (waiting,) = ingestion.holding.events("pending")
    assert waiting.subject is not None and b"987654.25" in (waiting.payload or b"")
    erase_subject("applicant-9", settings=ingestion.settings)
    (waiting,) = ingestion.holding.events("pending")
    assert waiting.payload is None  # its key is gone: it cannot be opened

    other = {**REQUEST, "parameters": {"subject": "applicant-7"}}
    response = event("response", RESPONSE, "ce-1")
    counts = ingestion.receive_all([response, *pair("ce-2", request=other), response])
    assert counts == [QUARANTINED, PENDING, LOGGED, DUPLICATE]
    assert logged_ids(ingestion) == ["ce-0", "ce-2"]
    assert ingestion.holding.events("pending") == []  # the erased request released
    (refused,) = ingestion.holding.events("quarantined")
    assert (refused.source_id, refused.reason) == ("ce-1", "its subject's data was erased")
    assert b"987654.25" not in (refused.payload or b"")
    assert ingestion.ledger.keys.existing([waiting.subject]) == {}  # no new key made for them
    assert ingestion.receive(response) == DUPLICATE
    assert ingestion.ledger.verify().ok


def mixed_halves() -> list[CloudEvent]:
    """Halves of every fate: paired in either order, copied, never answered, no
    decision, several rows."""
    request_3, response_3 = pair("ce-3", response=NO_DECISION)
    return [
        *pair("ce-1"),
        *pair("ce-1"),
        *reversed(pair("ce-2", request={**REQUEST, "parameters": {"subject": "applicant-2"}})),
        request_3,
        response_3,
        response_3,
        request_3,
        *pair("ce-4", TWO_ROWS, TWO_ANSWERS),
        pair("ce-4", TWO_ROWS, TWO_ANSWERS)[1],
        event("request", REQUEST, "ce-5"),  # never answered
        event("request", REQUEST, "ce-5"),
        *pair("ce-6", request={"instances": [[2500.0]]}),  # an input missing
    ]


@pytest.mark.parametrize("shuffled", [None, 1, 2, 3, 4, 5])
def test_halves_received_together_fare_as_if_each_had_its_own_transaction(tmp_path, shuffled):
    halves = mixed_halves()
    if shuffled is not None:
        random.Random(shuffled).shuffle(halves)
    together, alone = fresh(tmp_path / "together"), fresh(tmp_path / "alone")
    counts = together.receive_all(halves)
    assert counts == [alone.receive(half) for half in halves]
    assert all(vars(sum(counts, IngestCounts())).values())  # every fate is met

    def state(ingestion: Ingestion) -> tuple[list, list, list]:
        logged = [(e.source_id, e.inputs, e.outputs) for e in ingestion.ledger.list()]
        return (
            logged,
            held_ids(ingestion, "pending"),
            sorted((e.source_id, e.reason) for e in ingestion.holding.events("quarantined")),
        )

    assert state(together) == state(alone)
    assert together.ledger.verify().ok


def test_an_event_that_is_not_kserves_is_refused_saying_why():
    with pytest.raises(BadInput, match="no ce-id header"):
        CloudEvent.of({"content-type": "application/json"}, b"{}")
    with pytest.raises(BadInput, match="is not KServe's"):
        CloudEvent.of({"ce-id": "x", "ce-type": "com.example.other"}, b"{}")


def test_an_older_entry_holding_a_later_formats_column_is_named_changed(ingestion):
    ledger = ingestion.ledger
    ledger.record(NewEntry(manifest_id="m" * 64, deployment="credit", inputs={}, outputs={}))
    body = {**ledger.at(1).columns(), "format": 2, "source": "file", "source_id": "x"}
    body.pop("prev_hash"), body.pop("hash")
    covered = {key: value for key, value in body.items() if key not in ("source", "source_id")}
    forged = entry_hash(GENESIS, covered)
    database = sqlite3.connect(ingestion.settings.ledger)
    database.execute("DROP TRIGGER entries_no_update")
    database.execute(
        "UPDATE entries SET format = 2, source = 'file', source_id = 'x', hash = ? WHERE seq = 1",
        [forged],
    )
    database.commit()
    assert ledger.verify().first_bad == 1
    database.execute("UPDATE entries SET source = NULL, source_id = NULL WHERE seq = 1")
    database.commit()
    assert ledger.verify().ok  # a format 2 entry without them holds


def unreachable_store() -> Ingestion:
    raise EnvironmentProblem("subject key store unreachable")


def test_a_preparing_process_that_cannot_start_says_why(tmp_path):
    from replay.ingestion.preparing import preparing_processes

    batches = [[(json.dumps(record(1)).encode(), "d:1")]]
    with (
        preparing_processes(unreachable_store, Reading("jsonl", "credit"), 1) as in_order,
        pytest.raises(EnvironmentProblem, match="subject key store unreachable"),
    ):
        list(in_order(batches))


def test_a_deployment_is_known_once_looked_up_or_refused(ingestion, monkeypatch):
    def not_captured(target: str, settings) -> str:
        raise BadInput(f"{target!r} is not captured")

    # the module (`replay.ingestion.ingest` names the function `ingest` there)
    monkeypatch.setattr(sys.modules["replay.ingestion.ingest"], "resolve_target", not_captured)
    assert ingestion.knows("credit") and not ingestion.knows("fraud")
    with pytest.raises(BadInput, match="unknown deployment 'fraud'"):
        ingestion.manifest_of("fraud")
    assert ingestion.knows("fraud")  # refused, and remembered a while without a lookup
