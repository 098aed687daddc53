"""KServe's payload logger, received: `POST /ingest/kserve` takes each CloudEvent it
posts (a request or a response), pairs the two halves by `ce-id` and logs the decision
(`replay.ingestion`). On `replay serve` beside the decision API, or alone with
`replay ingest --listen PORT` (`listen`).

The logger is given a URL and cannot send headers, so a token of scope `ingest` may be
the URL's last segment: `http://HOST:PORT/ingest/kserve/TOKEN`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from starlette.requests import Request

from replay.errors import BadInput, EnvironmentProblem, IntegrityError, one_line
from replay.ingestion import CloudEvent, Ingestion, Unreadable
from replay.ledger.checkpoints import Checkpointer
from replay.ledger.decisions import checkpoint_ledger
from replay.manifests.canonical import sha256_bytes
from replay.settings import Settings, load_settings, without_password
from replay.web.access import TokenGate, token_store
from replay.web.running import end_on_sigterm, limit_body, run

EVENTS_PATH = "/ingest/kserve"
SENDER_PATHS = {EVENTS_PATH: "ingest"}  # the scope its token needs


def add_event_routes(app: Any, ingestion: Ingestion) -> None:
    """`POST /ingest/kserve` (and `/ingest/kserve/{token}`) on `app`."""
    from fastapi.responses import JSONResponse
    from starlette.concurrency import run_in_threadpool

    async def receive(request: Request) -> Any:
        body = await request.body()
        try:
            event = CloudEvent.of(request.headers, body)
        except BadInput as problem:  # kept, with why, never dropped
            refused = Unreadable("kserve", sha256_bytes(body), "", str(problem), body)
            await run_in_threadpool(
                ingestion.commit, [], [ingestion.quarantined(refused, str(problem))]
            )
            return JSONResponse({"error": f"quarantined: {problem}"}, 400)
        counts = await run_in_threadpool(ingestion.receive, event)
        return JSONResponse(counts.to_dict())

    for path in (EVENTS_PATH, EVENTS_PATH + "/{token}"):
        app.add_api_route(path, receive, methods=["POST"], include_in_schema=False)


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
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    end_on_sigterm()
    settings = settings or load_settings()
    ingestion = Ingestion(settings, default=deployment, mapping=mapping)
    app = FastAPI(title="replay: ingest", docs_url=None, redoc_url=None, openapi_url=None)

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

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"ingest": EVENTS_PATH, "held": ingestion.holding.counts()}

    add_event_routes(app, ingestion)
    if ready is not None:
        ready(f"receiving KServe's CloudEvents on http://{host}:{port}{EVENTS_PATH}")
    with Checkpointer(lambda: checkpoint_ledger(settings=settings), settings.checkpoint_every):
        run(app, host, port)
