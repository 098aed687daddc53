"""KServe's payload logger, received: `POST /ingest/kserve` takes each CloudEvent it
posts (a request or a response), pairs the two halves by `ce-id` and logs the decision
(`replay.ingestion`). On `replay serve` beside the decision API, or alone with
`replay ingest --listen PORT` (`listen`).

The logger is given a URL and cannot send headers, so a token of scope `ingest` may be
the URL's last segment: `http://HOST:PORT/ingest/kserve/TOKEN`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from starlette.requests import Request

from replay.errors import BadInput, EnvironmentProblem, IntegrityError, one_line
from replay.ingestion import CloudEvent, IngestCounts, Ingestion, Unreadable
from replay.ledger.checkpoints import Checkpointer
from replay.ledger.decisions import checkpoint_ledger
from replay.manifests.canonical import sha256_bytes
from replay.settings import Settings, load_settings, without_password
from replay.web.access import TokenGate, token_store
from replay.web.running import BodyLimit, end_on_sigterm, run

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

EVENTS_PATH = "/ingest/kserve"
EVENTS_PATHS = (EVENTS_PATH, EVENTS_PATH + "/{token}")  # as Starlette routes
SENDER_PATHS = {EVENTS_PATH: "ingest"}  # the scope its token needs
GATHER_ROUNDS = 4  # loop rounds a batch waits for halves already read (each adds some)


class ArrivingTogether:
    """Group commit of CloudEvents: the halves that arrive while a transaction is
    under way wait, and are then received together in the next one (one transaction,
    one disk flush), each answered once it is on disk. KServe's logger posts one event
    per request, many at a time.

    `in_loop`: the transaction runs on the event loop itself, which waits for it (about
    2 ms for 8 halves). For a server doing nothing else (`replay ingest --listen`), 10 to
    27% more decisions a second than a hop to a worker thread, which then waits for
    Python's lock while the loop holds it; a server answering other requests
    (`replay serve`) keeps the hop. A batch naming a deployment not looked up yet takes
    the hop all the same (MLflow may take seconds); while another process writes the
    ledger, the loop waits for it, as the answers would anyway."""

    def __init__(self, ingestion: Ingestion, *, in_loop: bool = False) -> None:
        self.ingestion = ingestion
        self.in_loop = in_loop
        self._waiting: list[tuple[CloudEvent, asyncio.Future[IngestCounts]]] = []
        self._draining: asyncio.Task[None] | None = None

    async def receive(self, event: CloudEvent) -> IngestCounts:
        answer: asyncio.Future[IngestCounts] = asyncio.get_running_loop().create_future()
        self._waiting.append((event, answer))
        if self._draining is None:
            # a task of its own: the caller that started it may go away mid-transaction
            self._draining = asyncio.create_task(self._drain())
        # if this caller is cancelled, so is its answer: its event is still received
        # with the batch, and only the answer goes unset
        return await answer

    async def _drain(self) -> None:
        from starlette.concurrency import run_in_threadpool

        try:
            while self._waiting:
                await self._gather()
                batch, self._waiting = self._waiting, []
                events = [event for event, _ in batch]
                try:
                    if self.in_loop and all(self.ingestion.knows(e.service) for e in events):
                        counts = self.ingestion.receive_all(events)
                    else:
                        counts = await run_in_threadpool(self.ingestion.receive_all, events)
                except Exception as error:  # the ledger failed: every event of the batch
                    for _, answer in batch:
                        if not answer.done():
                            answer.set_exception(error)
                    continue
                for (_, answer), count in zip(batch, counts, strict=True):
                    if not answer.done():
                        answer.set_result(count)
        finally:
            self._draining = None

    async def _gather(self) -> None:
        """Let the halves the server has already read join this batch: give the loop
        rounds until one brings none (a few at most)."""
        for _ in range(GATHER_ROUNDS):
            waiting = len(self._waiting)
            await asyncio.sleep(0)
            if len(self._waiting) == waiting:
                return


def add_event_routes(app: Any, ingestion: Ingestion, *, in_loop: bool = False) -> None:
    """`POST /ingest/kserve` (and `/ingest/kserve/{token}`) on `app` (the halves received
    `in_loop` or in a worker thread: see `ArrivingTogether`)."""
    receiving = EventsRoute(ingestion, in_loop=in_loop)
    for path in EVENTS_PATHS:
        app.add_route(path, receiving, methods=["POST"], include_in_schema=False)


class EventsRoute:
    """The route's ASGI app itself, not a function of a request: each of many small
    posts goes without FastAPI's parameters and Starlette's request and response
    objects. A failure of the ledger or the machine is answered 503, saying why. The
    halves are received `in_loop` or in a worker thread (see `ArrivingTogether`)."""

    def __init__(self, ingestion: Ingestion, *, in_loop: bool = False) -> None:
        self.ingestion = ingestion
        self.arriving = ArrivingTogether(ingestion, in_loop=in_loop)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        from starlette.concurrency import run_in_threadpool

        body = await _body(receive)
        if body is None:  # the sender went away mid-body: nothing was received
            return
        attributes = {  # CloudEvent.of reads the ce- headers only
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope["headers"]
            if name.startswith(b"ce-")
        }
        try:
            try:
                event = CloudEvent.of(attributes, body)
            except BadInput as problem:  # kept, with why, never dropped
                refused = Unreadable("kserve", sha256_bytes(body), "", str(problem), body)
                await run_in_threadpool(self.ingestion.quarantine, refused)
                await _answer(send, 400, {"error": f"quarantined: {problem}"})
                return
            counts = await self.arriving.receive(event)
        except (EnvironmentProblem, IntegrityError) as failure:
            await _answer(send, 503, {"error": without_password(one_line(failure, 500))})
            return
        await _answer(send, 200, counts.to_dict())


class EventsFirst:
    """ASGI: the posts of events go straight to their route, everything else to `app`
    (for `replay ingest --listen`, whose posts are almost all events: they skip the
    app's error, exception and routing layers)."""

    def __init__(self, events: EventsRoute, app: ASGIApp) -> None:
        self.events = events
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and _events_path(scope["path"]):
            await self.events(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def _events_path(path: str) -> bool:
    """Whether `path` is `EVENTS_PATH` or `EVENTS_PATH/TOKEN` (one segment)."""
    if not path.startswith(EVENTS_PATH):
        return False
    token = path[len(EVENTS_PATH) :]
    return not token or (token[0] == "/" and len(token) > 1 and "/" not in token[1:])


async def _body(receive: Receive) -> bytes | None:
    """The request's whole body (its stated length already checked by `BodyLimit`), or
    None if the sender disconnected before the end of it."""
    parts = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts)


async def _answer(send: Send, status: int, content: dict[str, Any]) -> None:
    body = json.dumps(content).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def listen(
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    deployment: str | None = None,
    mapping: Mapping[str, str] | None = None,
    settings: Settings | None = None,
    ready: Callable[[str], None] | None = None,
) -> None:
    """Receive KServe's CloudEvents until interrupted, without serving a model: events
    of an InferenceService are logged as `mapping[name]`'s decisions, else
    `deployment`'s, else those of the deployment of the same name."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    end_on_sigterm()
    settings = settings or load_settings()
    ingestion = Ingestion(settings, default=deployment, mapping=mapping)

    async def health(_request: Request) -> JSONResponse:
        held = await run_in_threadpool(ingestion.holding.counts)
        return JSONResponse({"ingest": EVENTS_PATH, "held": held})

    # The token is checked first, then the body's length; then the events go straight
    # to their route (this server does nothing else: the batch's transaction runs in
    # the loop), and anything else to a plain Starlette app (FastAPI's layers would
    # run on each of many small posts for nothing here).
    events = EventsRoute(ingestion, in_loop=True)

    def failure(_request: Request, error: Exception) -> JSONResponse:
        return JSONResponse({"error": without_password(one_line(error, 500))}, 503)

    others = Starlette(  # the events' routes too: a path with a slash more is redirected
        routes=[
            Route("/health", health, methods=["GET"]),
            *(Route(path, events, methods=["POST"]) for path in EVENTS_PATHS),
        ],
        exception_handlers={EnvironmentProblem: failure, IntegrityError: failure},
    )
    app = TokenGate(
        BodyLimit(EventsFirst(events, others), settings.max_body),
        store=token_store(settings),
        scopes={},
        open_paths=frozenset({"/health"}),
        sender_paths=SENDER_PATHS,
    )
    if ready is not None:
        ready(f"receiving KServe's CloudEvents on http://{host}:{port}{EVENTS_PATH}")
    with Checkpointer(lambda: checkpoint_ledger(settings=settings), settings.checkpoint_every):
        run(app, host, port)
