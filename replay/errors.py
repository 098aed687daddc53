"""Every failure a user can cause, each with a stable exit code.

This module imports nothing from the project, so every layer (manifests, images,
replay, cli) may raise these; the CLI turns them into one line and the exit code.
"""

from __future__ import annotations

# A bug in replay itself, not anything the user did: never 1, which means "diverged".
# 70 is EX_SOFTWARE in sysexits.h.
INTERNAL_ERROR = 70


class InternalError(Exception):
    """A check of replay's own invariants failed (a bug, never the user's doing): exit
    INTERNAL_ERROR with its one line, like any other bug."""


class ReplayWarning(UserWarning):
    """Something a user should know that does not stop the work (shown as one line)."""


class ReplayError(Exception):
    """Base class: `str(error)` is the one line shown to the user."""

    exit_code = 1


class VerificationFailed(ReplayError):
    """A replay or check ran and the result differs from what was recorded."""

    exit_code = 1


class BadInput(ReplayError):
    """The user asked for something malformed or unknown (bad path, id, value)."""

    exit_code = 2


class ImmutableInput(BadInput):
    """A question would change an immutable input (a protected attribute) without the
    caller allowing it: only compliance probing may."""


class EnvironmentProblem(ReplayError):
    """Something outside the project is missing or unreachable (engine, store, tool)."""

    exit_code = 3


class EngineUnavailable(EnvironmentProblem):
    """No Docker engine answers where we were told to look."""


class IntegrityError(ReplayError):
    """A stored thing no longer matches its recorded hash."""

    exit_code = 4


class Erased(ReplayError):
    """The data asked about belonged to a subject whose data was erased on request."""

    exit_code = 5


def one_line(problem: BaseException | str, limit: int = 160) -> str:
    """The first line of a message (an error's, or its type's name when it has none),
    cut to `limit` characters, for embedding in a one-line error."""
    text = str(problem).strip()
    lines = text.splitlines()
    if not lines:
        return type(problem).__name__ if isinstance(problem, BaseException) else "(no message)"
    first = lines[0].strip()
    return first if len(first) <= limit else first[: limit - 3] + "..."
