"""What replay's HTTP servers (`serve`, `console`) share: a bound on what a request may
send, and a SIGTERM that ends the process in bounded time with its containers closed."""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # FastAPI loads in about 0.3 s: only a running server pays it
    from fastapi import FastAPI, Request

# Seconds from SIGTERM to the end of the process, whatever happens: uvicorn's graceful
# wait for requests in flight, then closing the containers within STOP_WITHIN.
GRACEFUL_WAIT = 5
STOP_WITHIN = 15.0


def limit_body(app: FastAPI, max_body: int) -> None:
    """Refuse a body over `max_body` bytes (413), or of no stated length (411)."""
    from fastapi.responses import JSONResponse

    @app.middleware("http")
    async def limited(request: Request, call_next: Any) -> Any:
        if request.method in {"POST", "PUT", "PATCH"}:
            length = request.headers.get("content-length")
            # A chunked body would be read whole (before the caller is even checked),
            # whatever Content-Length claims: only bodies of a stated length are read.
            if length is None or "transfer-encoding" in request.headers:
                return JSONResponse({"detail": "send the body with a Content-Length"}, 411)
            if not length.isdigit() or int(length) > max_body:
                limit = f"{max_body:,} bytes (REPLAY_MAX_BODY)"
                return JSONResponse({"detail": f"the request body is over {limit}"}, 413)
        return await call_next(request)


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


def run(app: FastAPI, host: str, port: int) -> None:
    """Serve `app` until interrupted or terminated."""
    import uvicorn

    uvicorn.run(
        app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=GRACEFUL_WAIT
    )
