"""What replay's HTTP servers (`serve`, `console`, `ingest --listen`) share: a bound on
what a request may send, a SIGTERM that answers the requests still in flight and ends
the process in bounded time with its containers closed, and errors written as each
route's protocol writes them."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

from replay.errors import EnvironmentProblem

if TYPE_CHECKING:  # FastAPI loads in about 0.3 s: only a running server pays it
    import socket

    from fastapi import Request
    from starlette.applications import Starlette
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Seconds from SIGTERM to the end of the process, whatever happens: requests in flight
# get DRAIN seconds to finish and those still waiting are then answered 503; uvicorn's
# graceful wait (GRACEFUL_WAIT, a backstop for an answer already half sent) cancels what
# is left; then the containers are closed within STOP_WITHIN.
DRAIN = 4.0
GRACEFUL_WAIT = 5
STOP_WITHIN = 15.0

STOPPING = (
    f"the server is stopping: this request did not finish within {DRAIN:g} s of the "
    "signal to stop and gets no other answer; send it again once the server is back"
)


class Stopping(EnvironmentProblem):
    """The server stopped before this request was answered."""


INGEST_PATHS = "/ingest/"  # where other stacks' events are received (`listening`)


def is_open_inference(path: str) -> bool:
    """Whether `path` is one of the Open Inference Protocol's routes (KServe's v2)."""
    return path == "/v2" or path.startswith("/v2/")


def error_body(path: str, message: str) -> dict[str, str]:
    """An error's JSON body as the route's protocol writes it: `{"error": ...}` on the
    Open Inference Protocol's routes (its clients read that key) and on those receiving
    other stacks' events (as their own answers), FastAPI's `{"detail": ...}` on replay's
    own."""
    plain = is_open_inference(path) or path.startswith(INGEST_PATHS)
    return {"error" if plain else "detail": message}


def limit_body(app: Starlette, max_body: int) -> None:
    """Refuse a body over `max_body` bytes (413), or of no stated length (411)."""
    app.add_middleware(BodyLimit, max_body=max_body)


class BodyLimit:
    """ASGI middleware (plain: it runs on every request, and Starlette's
    BaseHTTPMiddleware costs a task and a stream per request) for `limit_body`."""

    def __init__(self, app: ASGIApp, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in {"POST", "PUT", "PATCH"}:
            refusal = self._refusal(scope)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope) -> Any:
        # A chunked body would be read whole (before the caller is even checked),
        # whatever Content-Length claims: only bodies of a stated length are read.
        # (The raw headers, once through: this runs on every post.)
        length, chunked = None, False
        for name, value in scope["headers"]:
            if name == b"content-length" and length is None:
                length = value
            chunked = chunked or name == b"transfer-encoding"
        if length is None or chunked:
            return refused(scope["path"], 411, "send the body with a Content-Length")
        if not length.isdigit() or int(length) > self.max_body:
            limit = f"{self.max_body:,} bytes (REPLAY_MAX_BODY)"
            return refused(scope["path"], 413, f"the request body is over {limit}")
        return None


def refused(path: str, status: int, message: str, headers: dict[str, str] | None = None) -> Any:
    """The answer refusing a request to `path`, made only when a check refuses (the
    checks run on every request)."""
    from fastapi.responses import JSONResponse

    return JSONResponse(error_body(path, message), status, headers)


_HANDLER, _STOP = "handler", "stop"


class _Answer:
    """Who answers one request: its handler, or the server stopping (503). Claimed once,
    so a request answered 503 is never acted on afterwards by its handler's thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by: str | None = None

    def claim(self, by: str) -> bool:
        with self._lock:
            self._by = self._by or by
            return self._by == by


def claim_answer(request: Request) -> None:
    """Called by a handler before it acts for good (logs a decision): Stopping once the
    server has answered this request 503. A request served without `run` (in process)
    has no stop to race."""
    answer = request.scope.get("state", {}).get("answer")
    if answer is not None and not answer.claim(_HANDLER):
        raise Stopping(STOPPING)


class Draining:
    """ASGI middleware around a whole app: once the server stops, a request still in
    flight DRAIN seconds later is answered 503 with the reason as JSON (uvicorn's own
    cancel, past its graceful wait, answers a bare 500 in plain text). Its handler may
    be blocked in a thread (on a paused container): it is raced, not awaited."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._waiting: set[asyncio.Future[None]] = set()  # a request's each, in flight
        self._drained = False

    def stop(self) -> None:
        """The server is stopping: called in its event loop."""
        asyncio.get_running_loop().call_later(DRAIN, self._drain)

    def _drain(self) -> None:
        self._drained = True
        for waiter in self._waiting:
            _wake(waiter)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        answer = _Answer()
        scope.setdefault("state", {})["answer"] = answer
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        handler = asyncio.ensure_future(self.app(scope, receive, sending))
        # woken when the handler ends or the drain is over: a future of its own and a
        # callback cost a third of what asyncio.wait on both did (the listener's posts)
        waiter = asyncio.get_running_loop().create_future()
        handler.add_done_callback(lambda _: _wake(waiter))
        if self._drained:
            _wake(waiter)
        self._waiting.add(waiter)
        try:
            await waiter
            if not handler.done() and (started or not answer.claim(_STOP)):
                await handler  # its answer is under way: uvicorn's graceful wait bounds it
        except asyncio.CancelledError:
            handler.cancel()
            raise
        finally:
            self._waiting.discard(waiter)
        if handler.done():
            handler.result()  # its failure, if any, is uvicorn's to report
            return
        handler.cancel()
        body = json.dumps(error_body(scope["path"], STOPPING)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def end_on_sigterm() -> None:
    """Make SIGTERM a normal exit (uvicorn re-raises it once it has shut down, its
    graceful wait bounded), so the caller's `with` blocks close their containers; the
    process ends regardless if closing them takes longer than STOP_WITHIN. Installed
    before any container starts."""

    def stop(*_: object) -> None:
        watchdog = threading.Timer(STOP_WITHIN, os._exit, args=(0,))
        watchdog.daemon = True
        watchdog.start()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)


def run(app: ASGIApp, host: str, port: int) -> None:
    """Serve `app` until interrupted or terminated; requests still in flight DRAIN
    seconds after the signal are answered 503 (`Draining`)."""
    import uvicorn

    draining = Draining(app)

    class Server(uvicorn.Server):
        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            draining.stop()  # as uvicorn starts its own graceful wait
            await super().shutdown(sockets)

    config = uvicorn.Config(
        draining, host=host, port=port, log_level="warning", timeout_graceful_shutdown=GRACEFUL_WAIT
    )
    Server(config).run()
