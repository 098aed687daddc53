"""The servers' stop, in process: a request still in flight when the drain ends is
answered 503 with the reason, and its handler, blocked in a thread, never acts once it
is released; a handler already acting (logging its decision) is waited for instead.
The real server with paused runners: tests/integration/test_resilience.py."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from replay.web import running
from replay.web.running import Draining, Stopping, claim_answer

SCOPE = {"type": "http", "method": "POST", "path": "/decisions", "headers": []}


def app_of(work: Callable[[Request], None]) -> Any:
    """An ASGI app answering 200 once `work` (run in a thread, as FastAPI runs a route)
    returns."""

    async def app(scope: dict, receive: Any, send: Any) -> None:
        await run_in_threadpool(work, Request(scope, receive))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"done"})

    return app


async def answered(draining: Draining, stop_after: float) -> list[dict]:
    """What the client is sent, the server told to stop `stop_after` seconds in."""
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    request = asyncio.ensure_future(draining(dict(SCOPE), receive, send))
    await asyncio.sleep(stop_after)
    draining.stop()
    await asyncio.wait_for(request, 5)
    return sent


@pytest.fixture(autouse=True)
def short_drain(monkeypatch):
    monkeypatch.setattr(running, "DRAIN", 0.2)


def test_a_request_blocked_at_the_end_of_the_drain_is_503_and_never_acts():
    release, finished = threading.Event(), threading.Event()
    acted: list[str] = []

    def work(request: Request) -> None:
        try:
            release.wait(10)  # a paused runner
            claim_answer(request)
            acted.append("logged")
        except Stopping:
            pass
        finally:
            finished.set()

    sent = asyncio.run(answered(Draining(app_of(work)), stop_after=0.05))
    start, body = sent
    assert start["status"] == 503
    assert (b"content-type", b"application/json") in start["headers"]
    assert json.loads(body["body"])["detail"] == running.STOPPING
    release.set()
    assert finished.wait(5) and acted == []  # answered 503: not logged


def test_a_handler_acting_when_the_drain_ends_is_waited_for():
    acting = threading.Event()

    def work(request: Request) -> None:
        claim_answer(request)  # logging its decision: its answer must go out
        acting.set()
        time.sleep(0.5)  # the commit, past the end of the drain

    sent = asyncio.run(answered(Draining(app_of(work)), stop_after=0.05))
    assert acting.is_set() and sent[0]["status"] == 200 and sent[1]["body"] == b"done"


def test_a_request_done_within_the_drain_is_answered_as_usual():
    sent = asyncio.run(answered(Draining(app_of(lambda request: None)), stop_after=0.05))
    assert sent[0]["status"] == 200
    claim_answer(Request(dict(SCOPE)))  # served without `run`: no stop to race, no refusal
