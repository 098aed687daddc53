"""Deployments' original containers kept running while the console is in use.

The first question about a decision starts its manifest's container (recovery, proof,
load: seconds); every later one, from any page or user, reuses it, so a what-if is
answered in milliseconds. A container nobody used for `idle` seconds is closed, but
never while a request holds it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

from replay.errors import BadInput
from replay.execution.warm import Unavailable, WarmDeployment

log = logging.getLogger(__name__)


@dataclass
class _Slot:
    last_used: float
    starting: threading.Lock = field(default_factory=threading.Lock)
    warm: WarmDeployment | None = None
    users: int = 0  # requests holding it now


class WarmPool:
    def __init__(
        self,
        start: Callable[[str], WarmDeployment],
        *,
        idle: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if idle <= 0:
            raise BadInput(f"the console's warm time must be positive, not {idle:g}")
        self._start = start
        self.idle = idle
        self._clock = clock
        self._slots: dict[str, _Slot] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._reaper = threading.Thread(target=self._reap_forever, name="warm-pool", daemon=True)
        self._reaper.start()

    @contextmanager
    def using(self, manifest_id: str) -> Iterator[WarmDeployment]:
        """The manifest's running deployment, started if none is; held for the block."""
        with self._lock:
            if self._closed.is_set():  # a request still running as the console stops
                raise Unavailable("the console is stopping")
            slot = self._slots.setdefault(manifest_id, _Slot(self._clock()))
            slot.users += 1
        try:
            with slot.starting:  # one start per manifest; others wait for it
                warm = slot.warm
                if warm is None:
                    warm = self._start(manifest_id)
                    with self._lock:
                        closed = self._closed.is_set()
                        if not closed:
                            slot.warm = warm
                    if closed:  # closed while this one started: nobody else would close it
                        _close(warm)
                        raise Unavailable("the console is stopping")
            yield warm
        finally:
            with self._lock:
                slot.users -= 1
                slot.last_used = self._clock()

    def warm_up(self, manifest_id: str) -> None:
        """Start the manifest's deployment in the background (a page about to ask)."""

        def start() -> None:
            with suppress(Exception), self.using(manifest_id):  # the page's question says why
                pass

        threading.Thread(target=start, name=f"warm-{manifest_id[:12]}", daemon=True).start()

    def running(self) -> list[str]:
        with self._lock:
            return [mid for mid, slot in self._slots.items() if slot.warm is not None]

    def reap(self) -> list[str]:
        """Close the deployments unused for `idle` seconds and held by nobody."""
        now = self._clock()
        closing: list[WarmDeployment] = []
        with self._lock:
            for manifest_id, slot in list(self._slots.items()):
                if slot.users == 0 and now - slot.last_used >= self.idle:
                    del self._slots[manifest_id]
                    if slot.warm is not None:
                        closing.append(slot.warm)
        for warm in closing:
            _close(warm)
        return [warm.manifest.manifest_id for warm in closing]

    def _reap_forever(self) -> None:
        while not self._closed.wait(min(self.idle, 30.0)):
            self.reap()

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            slots, self._slots = list(self._slots.values()), {}
        for slot in slots:
            if slot.warm is not None:
                _close(slot.warm)


def _close(warm: WarmDeployment) -> None:
    """Close one deployment's containers; a failure is logged and the others still close
    (the reaper thread must not die of it)."""
    try:
        warm.close()
    except Exception:
        log.exception("closing the containers of %s failed", warm.manifest.manifest_id[:12])
