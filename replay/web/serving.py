"""`replay serve`: an HTTP API whose every decision is made by the manifest's own
container and written to the ledger before it is answered."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from typing import Any

from replay.deployments.history import list_deployments
from replay.errors import BadInput
from replay.execution.warm import WarmDeployment
from replay.ledger import open_ledger
from replay.ledger.chain import NewEntry, pseudonym
from replay.ledger.checkpoints import Checkpointer
from replay.ledger.decisions import checkpoint_ledger, new_seed, subject_key
from replay.manifests.manifest import is_id_prefix
from replay.settings import Settings, load_settings
from replay.stores.manifests import manifest_store
from replay.web.access import require, token_store


def resolve_target(target: str, settings: Settings) -> str:
    """A manifest id (or unique prefix), or a deployment name meaning its newest manifest."""
    if is_id_prefix(target):
        return manifest_store(settings).resolve(target)
    history = list_deployments(target, settings=settings)
    if not history:
        raise BadInput(f"{target!r} is neither a manifest id nor a captured deployment name")
    return history[0].manifest_id


def create_app(warm: WarmDeployment, settings: Settings) -> Any:
    from fastapi import Body, FastAPI, HTTPException  # about 0.3 s: only servers pay it

    manifest = warm.manifest
    ledger = open_ledger(settings)
    key = subject_key(settings)
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

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {
            "deployment": manifest.name,
            "manifest_id": manifest.manifest_id,
            "fingerprint": warm.fingerprint_id,
            "image_recovery": warm.recovered.path,
        }

    @app.post("/decisions", dependencies=[require("decide", tokens)])
    def decide(
        inputs: dict[str, Any] = Body(..., embed=True),  # noqa: B008 - FastAPI idiom
        subject: str | None = Body(None, embed=True),
    ) -> dict[str, Any]:
        try:
            checked = manifest.schema.check(inputs)
            seed = new_seed()
            outputs = warm.predict(checked, seed)
        except BadInput as error:
            raise HTTPException(status_code=422, detail=str(error)) from None
        try:
            output.check(outputs)
        except BadInput as error:  # the deployment's fault, not the caller's: not logged
            detail = f"the deployment's outputs break its schema: {error}"
            raise HTTPException(status_code=502, detail=detail) from None
        entry = ledger.record(
            NewEntry(  # logged before the answer leaves
                manifest_id=manifest.manifest_id,
                deployment=manifest.name,
                inputs=checked,
                outputs=outputs,
                seed=seed,
                fingerprint=warm.fingerprint_id,
                subject=pseudonym(subject, key) if subject else None,
            )
        )
        return {
            "transaction_id": entry.txn_id,
            "decision": outputs.get(output.decision),
            "score": outputs.get(output.score),
            "outputs": outputs,
            "manifest_id": manifest.manifest_id,
        }

    @app.get("/decisions/{txn_id}", dependencies=[require("read", tokens)])
    def show(txn_id: str) -> dict[str, Any]:
        try:
            return ledger.get(txn_id).to_dict()
        except BadInput as error:
            raise HTTPException(status_code=404, detail=str(error)) from None

    return app


def serve(
    target: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    containers: int = 2,
    settings: Settings | None = None,
    ready: Callable[[str], None] | None = None,
) -> None:
    """Serve decisions over HTTP until interrupted; `ready` is told, in one line, what
    is served where once the containers are up."""
    import uvicorn  # with FastAPI: only servers pay for it

    # uvicorn re-raises SIGTERM once it has shut down; make that a normal exit so the
    # warm containers are closed on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
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
        app = create_app(warm, settings)
        with Checkpointer(lambda: checkpoint_ledger(settings=settings), settings.checkpoint_every):
            uvicorn.run(app, host=host, port=port, log_level="warning")
