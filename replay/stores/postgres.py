"""Connecting to PostgreSQL (the ledger's and the subject key store's server backends)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from replay.errors import EnvironmentProblem

if TYPE_CHECKING:
    import psycopg


def connect(url: str, timeout: int, what: str) -> psycopg.Connection:
    """An autocommit connection to `url`, or one line naming `what` could not reach it
    (psycopg's last line: never the URL, which may hold a password)."""
    import psycopg  # only PostgreSQL users need the driver loaded

    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=timeout)
    except psycopg.Error as error:
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else ""
        raise EnvironmentProblem(f"{what} cannot be reached: {reason}") from None
