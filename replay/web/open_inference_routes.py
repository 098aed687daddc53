"""The Open Inference Protocol's routes (KServe's "v2" REST API) on `replay serve`,
beside its own API: the server's health and metadata, the served deployment's metadata
and readiness, and inference, every row of which is logged as its own decision exactly
as `POST /decisions` logs one (`Decider`). The translation is `open_inference`'s."""

from __future__ import annotations

import json
from typing import Any

# At the top, unlike FastAPI's other names: a route's annotations are resolved in this
# module's namespace. Only a server imports this module.
from starlette.requests import Request

from replay import __version__
from replay.errors import BadInput
from replay.execution.warm import WarmDeployment
from replay.manifests.manifest import is_id_prefix
from replay.manifests.open_inference import (
    model_metadata,
    requested_outputs,
    response_of,
    rows_of_request,
    subjects_of,
)
from replay.web.deciding import Decider

# Open like `/health`: an orchestrator's probes (Kubernetes' kubelet) carry no token,
# and these say less than `/health` does: that the server answers, and whether any of
# its containers runs. Everything else of the protocol needs a token, as replay's API.
OPEN_PATHS = frozenset({"/v2/health/live", "/v2/health/ready"})


def add_open_inference_routes(app: Any, warm: WarmDeployment, decider: Decider) -> None:
    """Add the v2 routes for the deployment `warm` serves to the FastAPI `app`."""
    from fastapi import HTTPException
    from fastapi.responses import JSONResponse
    from starlette.concurrency import run_in_threadpool

    manifest = warm.manifest
    schema = manifest.schema

    def served(request: Request) -> None:
        """404 unless the path names the served deployment and, if it names a version,
        the manifest's version or its id (a prefix of at least 6 digits will do)."""
        name, version = request.path_params["name"], request.path_params.get("version")
        if name != manifest.name:
            raise HTTPException(404, f"no model {name!r} here: this server serves {manifest.name}")
        if version not in (None, manifest.version) and not (
            is_id_prefix(version) and manifest.manifest_id.startswith(version)
        ):
            raise HTTPException(
                404,
                f"model {name} has no version {version!r} here: it serves version "
                f"{manifest.version}, manifest {manifest.short_id}",
            )

    def readiness(answer: dict[str, Any]) -> Any:
        ready = warm.running > 0  # a container to answer with (the pool restores the others)
        return JSONResponse({**answer, "ready": ready}, 200 if ready else 503)

    def live() -> dict[str, Any]:
        return {"live": True}

    def ready() -> Any:
        return readiness({})

    def server_metadata() -> dict[str, Any]:
        return {"name": "replay", "version": __version__, "extensions": []}

    def metadata(request: Request) -> dict[str, Any]:
        served(request)
        return model_metadata(manifest.name, [manifest.version, manifest.manifest_id], schema)

    def model_ready(request: Request) -> Any:
        served(request)
        return readiness({"name": manifest.name})

    def answer(request: Request, text: bytes) -> dict[str, Any]:
        try:
            body = json.loads(text)
        except (ValueError, RecursionError) as error:
            raise BadInput(f"the request body is not JSON: {error}") from None
        rows, parameters, request_id = rows_of_request(body, schema)
        requested = requested_outputs(body, schema.output)
        decisions = decider.decide(request, rows, subjects_of(parameters, len(rows)))
        return response_of(
            manifest.name,
            manifest.version,
            request_id,
            [decision.outputs for decision in decisions],
            schema.output,
            {
                "manifest_id": manifest.manifest_id,
                "transaction_ids": [decision.txn_id for decision in decisions],
            },
            requested=requested,
        )

    async def infer(request: Request) -> dict[str, Any]:
        served(request)
        if "inference-header-content-length" in request.headers:  # Triton's binary extension
            raise BadInput(
                "binary tensor data is not taken: send the request as JSON "
                "(tritonclient: binary_data=False)"
            )
        text = await request.body()
        # parsing and checking a body of up to REPLAY_MAX_BODY, and the model's time: not
        # in the event loop
        decided: dict[str, Any] = await run_in_threadpool(answer, request, text)
        return decided

    app.add_api_route("/v2", server_metadata, methods=["GET"])
    app.add_api_route("/v2/health/live", live, methods=["GET"])
    app.add_api_route("/v2/health/ready", ready, methods=["GET"])
    for model in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
        app.add_api_route(model, metadata, methods=["GET"])
        app.add_api_route(f"{model}/ready", model_ready, methods=["GET"])
        app.add_api_route(f"{model}/infer", infer, methods=["POST"])
