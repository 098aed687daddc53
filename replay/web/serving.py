"""`replay serve`: an HTTP API whose every decision is made by the manifest's own
container and written to the ledger before it is answered; the Open Inference Protocol
(KServe's v2) beside it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

# At the top, unlike FastAPI's other names: a route's annotations are resolved in this
# module's namespace. Only a server imports this module.
from starlette.requests import Request

from replay.deployments.history import resolve_target
from replay.errors import BadInput, EnvironmentProblem, IntegrityError, one_line
from replay.execution.warm import WarmDeployment
from replay.ingestion import Ingestion
from replay.ledger import open_ledger
from replay.ledger.chain import access_entry
from replay.ledger.checkpoints import Checkpointer
from replay.ledger.decisions import checkpoint_ledger
from replay.ledger.group_commit import GroupCommit
from replay.settings import Settings, load_settings, without_password
from replay.stores.tokens import Token
from replay.web.access import TokenGate, token_store
from replay.web.deciding import BrokenOutputs, Decider
from replay.web.listening import SENDER_PATHS, add_event_routes
from replay.web.open_inference_routes import OPEN_PATHS, add_open_inference_routes
from replay.web.running import end_on_sigterm, error_body, is_open_inference, limit_body, run

# The scope a token needs for each method of the API: `decide` may POST /decisions (and
# infer), `read` may GET them (HEAD is GET without the body).
SCOPES = {"POST": "decide", "GET": "read", "HEAD": "read"}


def create_app(
    warm: WarmDeployment, settings: Settings, mapping: Mapping[str, str] | None = None
) -> Any:
    """The API serving `warm`'s decisions, the Open Inference Protocol's routes, and
    KServe's CloudEvents received for the served deployment (or, by InferenceService
    name, those `mapping` names)."""
    # FastAPI and Starlette: about 0.3 s, only servers pay it
    from fastapi import Body, FastAPI, HTTPException
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    manifest = warm.manifest
    ledger = open_ledger(settings)
    # Request threads' entries share transactions and disk flushes; each answer waits
    # for the commit that holds its decision.
    group = GroupCommit(ledger)
    decider = Decider(warm, settings, group)
    output = manifest.schema.output
    tokens = token_store(settings)
    # No /docs or /openapi.json: every route but /health needs a token, and those pages
    # would describe the API to anyone.
    app = FastAPI(
        title=f"replay: {manifest.name}",
        version=manifest.short_id,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    # Every failure is an answer with a message: the caller's mistakes 4xx, the
    # deployment's 502, the machine's 503, never a bare 500 nor a hanging request. The
    # Open Inference Protocol's routes answer a caller's mistake 400 (replay's own 422).
    def failure(status: int) -> Any:
        def answer(request: Request, error: Exception) -> Any:
            path = request.url.path
            code = 400 if status == 422 and is_open_inference(path) else status
            return JSONResponse(error_body(path, without_password(one_line(error, 500))), code)

        return answer

    app.add_exception_handler(BadInput, failure(422))
    app.add_exception_handler(BrokenOutputs, failure(502))
    app.add_exception_handler(EnvironmentProblem, failure(503))
    app.add_exception_handler(IntegrityError, failure(503))
    app.add_exception_handler(
        StarletteHTTPException,  # routes' own, and unknown paths or methods
        lambda request, error: JSONResponse(
            error_body(request.url.path, error.detail), error.status_code, error.headers
        ),
    )
    app.add_exception_handler(
        Exception,
        lambda request, error: JSONResponse(
            error_body(request.url.path, f"internal error: {type(error).__name__}"), 500
        ),
    )

    limit_body(app, settings.max_body)
    # Added last, so it runs first: the token is checked before the body limit and before
    # any body is read, so a caller without a token learns nothing of what is parsed.
    app.add_middleware(
        TokenGate,
        store=tokens,
        scopes=SCOPES,
        open_paths=frozenset({"/health"}) | OPEN_PATHS,
        sender_paths=SENDER_PATHS,
    )

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {
            "deployment": manifest.name,
            "manifest_id": manifest.manifest_id,
            "fingerprint": warm.fingerprint_id,
            "image_recovery": warm.recovered.path,
            # how many, not why: a failure's text (the model's own message, paths) is
            # for token holders, in the 503 it causes
            "containers": {"running": warm.running, "of": warm.size},
        }

    @app.post("/decisions")
    def decide(
        request: Request,
        inputs: dict[str, Any] = Body(..., embed=True),  # noqa: B008 - FastAPI idiom
        subject: str | None = Body(None, embed=True),
    ) -> dict[str, Any]:
        checked = manifest.schema.check(inputs)  # before the model runs
        (decision,) = decider.decide(request, [checked], [subject])
        outputs = decision.outputs
        return {
            "transaction_id": decision.txn_id,
            "decision": outputs.get(output.decision),
            "score": outputs.get(output.score),
            "outputs": outputs,
            "manifest_id": manifest.manifest_id,
        }

    @app.get("/decisions/{txn_id}")
    def show(txn_id: str, request: Request) -> dict[str, Any]:
        try:
            entry = ledger.get(txn_id)
        except BadInput:
            raise HTTPException(status_code=404, detail=f"no transaction {txn_id}") from None
        if entry.subject is not None and entry.opened is not None:  # a person's data, read
            token: Token = request.state.token  # the one TokenGate let in
            by = f"token {token.name}"
            group.record(access_entry(entry.subject, by, "show", refers_to=txn_id))
        return entry.to_dict()

    add_open_inference_routes(app, warm, decider)
    add_event_routes(app, Ingestion(settings, default=manifest.manifest_id, mapping=mapping))
    return app


def serve(
    target: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    containers: int = 2,
    mapping: Mapping[str, str] | None = None,
    settings: Settings | None = None,
    ready: Callable[[str], None] | None = None,
) -> None:
    """Serve decisions over HTTP until interrupted; `ready` is told, in one line, what
    is served where once the containers are up. KServe's CloudEvents posted to
    `/ingest/kserve` are the served deployment's decisions, or by InferenceService name
    those of the deployment `mapping` names."""
    end_on_sigterm()
    settings = settings or load_settings()
    with WarmDeployment(
        resolve_target(target, settings), settings=settings, containers=containers
    ) as warm:
        if ready is not None:
            manifest = warm.manifest
            ready(
                f"serving {manifest.name} (manifest {manifest.short_id}, image: "
                f"{warm.recovered.path}) on http://{host}:{port}"
            )
        app = create_app(warm, settings, mapping)
        with Checkpointer(lambda: checkpoint_ledger(settings=settings), settings.checkpoint_every):
            run(app, host, port)
