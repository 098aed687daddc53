"""A decision's report, as a PDF to download (compliance)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

import replay
from replay.web.pages.shared import Shared, SignedIn

router = APIRouter()


# A POST: making a report is a ledger entry, which a link from elsewhere must not make.
@router.post("/decisions/{txn_id}/report")
async def report_pdf(request: Request, txn_id: str, console: Shared, user: SignedIn) -> Any:
    user.require("report")
    await console.form(request)

    def make() -> bytes:
        entry = console.entry(txn_id)
        with console.pool.using(entry.manifest_id) as warm, tempfile.TemporaryDirectory() as out:
            made = replay.report(
                txn_id,
                out=Path(out),
                formats=("pdf",),
                warm=warm,
                settings=console.as_user(user),  # the report entry names the console user
                ledger=console.ledger,  # the console's own, opened once
            )
            return Path(made.files["pdf"]).read_bytes()

    data = await run_in_threadpool(make)
    return Response(
        data,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="report-{txn_id}.pdf"'},
    )
