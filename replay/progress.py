"""Progress for long steps, on stderr so machine-readable output on stdout stays clean."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Progress = Callable[[str], None]  # told one line of detail at a time


@contextmanager
def step(title: str) -> Iterator[Progress]:
    """A spinner showing `title`, the latest detail line and elapsed time."""
    from rich.console import Console  # 30 ms: replays that need no step skip it

    console = Console(stderr=True)
    started = time.monotonic()
    with console.status(title) as status:

        def update(detail: str) -> None:
            status.update(f"{title} [dim]{time.monotonic() - started:4.0f}s {detail}[/dim]")

        yield update
    console.print(f"[green]✓[/green] {title} [dim]({time.monotonic() - started:.1f} s)[/dim]")
