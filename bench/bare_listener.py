"""The CloudEvents part's baseline: the same server as `replay ingest --listen` (uvicorn
with its C parser and uvloop) in front of an app that reads each post and answers at
once, logging nothing. What the bench's callers reach against it, in the same run, is the
most a listener on this server could reach on the machine, so the listener's rate is also
reported as a share of it (comparable between machines of different speeds).

    python -m uvicorn bare_listener:app --http httptools --loop uvloop --port PORT
"""

from __future__ import annotations

from typing import Any

# the listener's answer, a response completing one decision (the bench checks the count)
_ANSWERS = {
    b"org.kubeflow.serving.inference.request": b'{"logged":0,"duplicate":0,"pending":1,'
    b'"quarantined":0}',
    b"org.kubeflow.serving.inference.response": b'{"logged":1,"duplicate":0,"pending":0,'
    b'"quarantined":0}',
}
_HEADERS = [(b"content-type", b"application/json")]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":  # lifespan: nothing to start
        return
    more = True
    while more:  # the whole body, as a listener must read it
        more = (await receive()).get("more_body", False)
    if scope["path"] == "/health":
        status, body = 200, b"{}"
    else:
        kind = dict(scope["headers"]).get(b"ce-type", b"")
        status, body = (200, _ANSWERS[kind]) if kind in _ANSWERS else (400, b"{}")
    await send({"type": "http.response.start", "status": status, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": body})
