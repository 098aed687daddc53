"""Group commit: appends from many threads of one process (`replay serve`'s request
threads) committed together, many entries in one transaction and one disk flush.

A caller that finds no commit under way commits everything waiting: its own entry and
those that queued during the previous commit (new subjects' keys made in one go, too).
Once its transaction is committed it hands the turn to the first caller that queued
meanwhile, and flushes to disk while that one commits the next batch. Every caller
returns only once its entry is on disk, so an answer is never sent for a decision the
ledger could still lose. Each caller is woken once, to lead or because it is done.
A caller may record several entries at once (`record_all`): they are consecutive in
the chain and committed in one transaction, all of them or none.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from replay.errors import BadInput
from replay.ledger.chain import Ledger, LedgerEntry, NewEntry


@dataclass
class _Waiting:
    entries: list[NewEntry]
    stored: list[LedgerEntry] | None = None  # committed
    error: BaseException | None = None
    woken: threading.Event = field(default_factory=threading.Event)

    def result(self) -> list[LedgerEntry]:
        if self.error is not None:
            raise self.error
        assert self.stored is not None
        return self.stored


class GroupCommit:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self._lock = threading.Lock()
        self._queue: list[_Waiting] = []
        self._committing = False

    def record(self, entry: NewEntry) -> LedgerEntry:
        """Append `entry`; return it as stored once its transaction is on disk."""
        return self.record_all([entry])[0]

    def record_all(self, entries: list[NewEntry]) -> list[LedgerEntry]:
        """Append `entries` next to each other in one transaction (all or none); return
        them as stored once that transaction is on disk."""
        waiting = _Waiting(list(entries))
        with self._lock:
            self._queue.append(waiting)
            leads = not self._committing
            self._committing = True
        if not leads:
            waiting.woken.wait()
            if waiting.stored is not None or waiting.error is not None:
                return waiting.result()  # done; else woken to lead
        with self._lock:
            batch, self._queue = self._queue, []
        try:
            self._commit(batch)
        except BaseException as error:  # interrupted: every caller of the batch fails
            for other in batch:  # (committed ones too: they were never flushed)
                other.error = other.error or error
                other.woken.set()
            raise
        finally:
            with self._lock:  # the next batch is committed while this one is flushed
                if self._queue:
                    self._queue[0].woken.set()
                else:
                    self._committing = False
        committed = [other for other in batch if other.error is None]
        try:
            if committed:
                self.ledger.flush()
        except BaseException as error:
            for other in committed:
                other.error = error
            raise
        finally:
            for other in batch:
                if other is not waiting:
                    other.woken.set()
        return waiting.result()

    def _commit(self, batch: list[_Waiting]) -> None:
        """Commit `batch` in one transaction, without waiting for the disk."""
        try:
            stored = self.ledger.append(
                [entry for each in batch for entry in each.entries], durable=False
            )
        except BadInput as error:  # refused: one bad entry fails its own caller only
            if len(batch) == 1:
                batch[0].error = error
                return
            for each in batch:
                self._commit([each])
            return
        except Exception as error:  # the ledger itself failed: the same for them all
            for each in batch:
                each.error = error
            return
        start = 0
        for each in batch:
            each.stored = stored[start : start + len(each.entries)]
            start += len(each.entries)
