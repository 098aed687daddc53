"""KServe's payload logger, received: `POST /ingest/kserve` takes each CloudEvent it
posts (a request or a response), pairs the two halves by `ce-id` and logs the decision
(`replay.ingestion`). On `replay serve` beside the decision API, or alone with
`replay ingest --listen PORT` (`listen`).

The logger is given a URL and cannot send headers, so a token of scope `ingest` may be
the URL's last segment: `http://HOST:PORT/ingest/kserve/TOKEN`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from starlette.requests import Request

from replay.errors import BadInput, EnvironmentProblem, IntegrityError, one_line
from replay.ingestion import CloudEvent, IngestCounts, Ingestion, Unreadable
from replay.ledger.checkpoints import Checkpointer
from replay.ledger.decisions import checkpoint_ledger
from replay.manifests.canonical import sha256_bytes
from replay.settings import Settings, load_settings, without_password
from replay.web.access import TokenGate, token_store
from replay.web.running import end_on_sigterm, limit_body, run

EVENTS_PATH = "/ingest/kserve"
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
        return await asyncio.shield(answer)

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
                        answer.set_exception(error)
                    continue
                for (_, answer), count in zip(batch, counts, strict=True):
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
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import JSONResponse

    arriving = ArrivingTogether(ingestion, in_loop=in_loop)

    async def receive(request: Request) -> Any:
        body = await request.body()
        try:
            event = CloudEvent.of(request.headers, body)
        except BadInput as problem:  # kept, with why, never dropped
            refused = Unreadable("kserve", sha256_bytes(body), "", str(problem), body)
            await run_in_threadpool(ingestion.quarantine, refused)
            return JSONResponse({"error": f"quarantined: {problem}"}, 400)
        counts = await arriving.receive(event)
        return JSONResponse(counts.to_dict())

    for path in (EVENTS_PATH, EVENTS_PATH + "/{token}"):
        # a plain Starlette route: it takes the request as it is, so FastAPI's
        # parameter machinery has nothing to do on each of many small posts
        app.add_route(path, receive, methods=["POST"], include_in_schema=False)


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

    end_on_sigterm()
    settings = settings or load_settings()
    ingestion = Ingestion(settings, default=deployment, mapping=mapping)
    # plain Starlette: FastAPI's layers (its validation, telemetry and exit stacks)
    # would run on each of many small posts for nothing here
    app = Starlette()

    def failure(status: int) -> Any:
        return lambda _request, error: JSONResponse(
            {"error": without_password(one_line(error, 500))}, status
        )

    app.add_exception_handler(EnvironmentProblem, failure(503))
    app.add_exception_handler(IntegrityError, failure(503))
    limit_body(app, settings.max_body)
    app.add_middleware(
        TokenGate,
        store=token_store(settings),
        scopes={},
        open_paths=frozenset({"/health"}),
        sender_paths=SENDER_PATHS,
    )

    async def health(_request: Request) -> JSONResponse:
        held = await run_in_threadpool(ingestion.holding.counts)
        return JSONResponse({"ingest": EVENTS_PATH, "held": held})

    app.add_route("/health", health, methods=["GET"])
    add_event_routes(app, ingestion, in_loop=True)  # this server does nothing else
    if ready is not None:
        ready(f"receiving KServe's CloudEvents on http://{host}:{port}{EVENTS_PATH}")
    with Checkpointer(lambda: checkpoint_ledger(settings=settings), settings.checkpoint_every):
        run(app, host, port)
