"""The CloudEvents listener's own ASGI pieces, in process, with a scripted ingestion in
place of the ledger: which requests reach the events route, how the route reads a body
and answers, and how halves arriving together are answered. The real listener with the
ledger: tests/integration/test_ingest.py."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from replay.errors import EnvironmentProblem
from replay.ingestion import CloudEvent, IngestCounts
from replay.web.listening import ArrivingTogether, EventsFirst, EventsRoute, _events_path

HEADERS = [
    (b"ce-id", b"e-1"),
    (b"ce-type", b"org.kubeflow.serving.inference.request"),
    (b"ce-inferenceservicename", b"credit"),
    (b"content-type", b"application/json"),
]


class Scripted:
    """An ingestion answering each batch with `pending` for every half (or failing),
    keeping the batches it was given."""

    def __init__(self, failure: Exception | None = None) -> None:
        self.batches: list[list[CloudEvent]] = []
        self.failure = failure

    def knows(self, _service: str) -> bool:
        return True

    def receive_all(self, events: list[CloudEvent]) -> list[IngestCounts]:
        self.batches.append(events)
        if self.failure is not None:
            raise self.failure
        return [IngestCounts(pending=1) for _ in events]


def event(event_id: str) -> CloudEvent:
    headers = {"ce-id": event_id, "ce-type": "org.kubeflow.serving.inference.request"}
    return CloudEvent.of(headers, b"{}")


@pytest.mark.parametrize(
    ("path", "is_events"),
    [
        ("/ingest/kserve", True),
        ("/ingest/kserve/rpl_token", True),
        ("/ingest/kserve/", False),  # Starlette's routes redirect it
        ("/ingest/kserve/a/b", False),
        ("/ingest/kserveX", False),
        ("/health", False),
    ],
)
def test_events_paths_are_the_route_and_one_token_segment(path: str, is_events: bool) -> None:
    assert _events_path(path) is is_events


def test_only_posts_of_events_skip_the_app() -> None:
    reached: list[str] = []

    def app(name: str) -> Any:
        async def call(scope: dict, receive: Any, send: Any) -> None:
            reached.append(name)

        return call

    first = EventsFirst(app("events"), app("others"))  # type: ignore[arg-type]
    for method, path in [
        ("POST", "/ingest/kserve/t"),
        ("GET", "/ingest/kserve/t"),
        ("POST", "/health"),
        ("POST", "/ingest/kserve/t/"),
    ]:
        asyncio.run(first({"type": "http", "method": method, "path": path}, None, None))
    assert reached == ["events", "others", "others", "others"]


def answer_of(route: EventsRoute, messages: list[dict]) -> list[dict]:
    """What the route sends for a request whose body arrives as `messages`."""
    sent: list[dict] = []
    queue = list(messages)

    async def receive() -> dict:
        return queue.pop(0)

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(route({"type": "http", "headers": HEADERS}, receive, send))
    return sent


def test_a_body_in_parts_is_received_whole_and_answered_with_its_counts() -> None:
    ingestion = Scripted()
    route = EventsRoute(ingestion, in_loop=True)  # type: ignore[arg-type]
    body = json.dumps({"instances": [{"income": 1}]}).encode()
    sent = answer_of(
        route,
        [
            {"type": "http.request", "body": body[:5], "more_body": True},
            {"type": "http.request", "body": body[5:], "more_body": False},
        ],
    )
    assert sent[0]["status"] == 200
    assert json.loads(sent[1]["body"]) == IngestCounts(pending=1).to_dict()
    assert ingestion.batches[0][0].body == body.decode()
    assert dict(sent[0]["headers"])[b"content-length"] == str(len(sent[1]["body"])).encode()


def test_a_sender_gone_mid_body_gets_nothing_and_nothing_is_received() -> None:
    ingestion = Scripted()
    route = EventsRoute(ingestion, in_loop=True)  # type: ignore[arg-type]
    sent = answer_of(
        route,
        [
            {"type": "http.request", "body": b"{", "more_body": True},
            {"type": "http.disconnect"},
        ],
    )
    assert sent == [] and ingestion.batches == []


def test_a_failing_ledger_is_answered_503_saying_why() -> None:
    ingestion = Scripted(EnvironmentProblem("ledger /x: disk I/O error"))
    route = EventsRoute(ingestion, in_loop=True)  # type: ignore[arg-type]
    sent = answer_of(route, [{"type": "http.request", "body": b"{}"}])
    assert sent[0]["status"] == 503
    assert "disk I/O error" in json.loads(sent[1]["body"])["error"]


def test_halves_arriving_together_are_one_batch_and_a_cancelled_caller_harms_none() -> None:
    async def scenario() -> tuple[list[Any], Scripted]:
        ingestion = Scripted()
        arriving = ArrivingTogether(ingestion, in_loop=True)  # type: ignore[arg-type]
        callers = [asyncio.ensure_future(arriving.receive(event(f"e-{i}"))) for i in range(3)]
        await asyncio.sleep(0)  # each caller has handed in its half
        callers[1].cancel()
        results = await asyncio.gather(*callers, return_exceptions=True)
        return results, ingestion

    results, ingestion = asyncio.run(scenario())
    assert [len(batch) for batch in ingestion.batches] == [3]  # the cancelled one's too
    assert results[0] == results[2] == IngestCounts(pending=1)
    assert isinstance(results[1], asyncio.CancelledError)


def test_a_failed_batch_fails_every_caller_still_waiting() -> None:
    async def scenario() -> list[Any]:
        arriving = ArrivingTogether(Scripted(EnvironmentProblem("no disk")), in_loop=True)  # type: ignore[arg-type]
        callers = [asyncio.ensure_future(arriving.receive(event(f"e-{i}"))) for i in range(3)]
        await asyncio.sleep(0)
        callers[0].cancel()
        return await asyncio.gather(*callers, return_exceptions=True)

    results = asyncio.run(scenario())
    assert isinstance(results[0], asyncio.CancelledError)
    assert all(isinstance(result, EnvironmentProblem) for result in results[1:])
