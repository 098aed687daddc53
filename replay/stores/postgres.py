"""Connecting to PostgreSQL (the ledger's and the subject key store's server backends)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from replay.errors import EnvironmentProblem
from replay.settings import without_password

if TYPE_CHECKING:
    import psycopg


def connect(url: str, timeout: float, what: str) -> psycopg.Connection:
    """An autocommit connection to `url` made within `timeout` seconds, or one line
    naming `what` could not reach it (psycopg's last line, with any address in it
    without its password)."""
    import psycopg  # only PostgreSQL users need the driver loaded

    try:
        # libpq reads whole seconds only (and psycopg makes anything under 2 into 2)
        return psycopg.connect(url, autocommit=True, connect_timeout=max(1, int(timeout)))
    except psycopg.Error as error:
        reason = str(error).strip().splitlines()[-1].strip() if str(error).strip() else ""
        raise EnvironmentProblem(f"{what} cannot be reached: {without_password(reason)}") from None
