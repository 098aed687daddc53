"""A deployment's original container, recovered, proven and kept running.

Start-up pays for recovery and the container start once; after that every request is
a line over the attach stream (about a millisecond plus the model's own time). The
container is only used once the fingerprint its runner reports equals the one
recorded for the manifest.
"""

from __future__ import annotations

import queue
import random
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

from replay.errors import BadInput, EnvironmentProblem, IntegrityError, ReplayWarning, one_line
from replay.execution.predictor import PredictionError, Predictor, Row
from replay.execution.recovery import RecoveredImage, recover_image
from replay.images.build import fingerprint_difference
from replay.images.container import (
    ALONE,
    SEEDS_PER_ROW,
    OldRunner,
    RunnerContainer,
    RunnerFailed,
    Sandbox,
)
from replay.images.engine import docker_client
from replay.images.inspection import unstarted_refusal
from replay.manifests.canonical import document_id
from replay.manifests.manifest import Manifest
from replay.settings import Settings, load_settings
from replay.stores.manifests import ManifestStore, manifest_store

BATCH_SHARE = 100  # rows of a batch given one request's timeout
BATCH_CHECK_ROWS = 64  # reference rows a batch_exact deployment is checked on, per machine
RESTART_FIRST_DELAY = 0.5  # seconds before a failed replacement is tried again
RESTART_MAX_DELAY = 30.0


class Unavailable(EnvironmentProblem):
    """No container could answer in time (the pool is short or busy)."""


class WarmDeployment(Predictor):
    """A manifest's image, recovered and proven, with `containers` runners started and
    loaded: the Predictor every question about its decisions asks."""

    def __init__(
        self,
        manifest_id: str,
        *,
        settings: Settings | None = None,
        containers: int = 1,
        sandbox: Sandbox | None = None,
    ) -> None:
        self.settings = settings or load_settings()
        self.store: ManifestStore = manifest_store(self.settings)
        self.manifest: Manifest = self.store.load(manifest_id)
        self.client = docker_client(
            self.settings.docker_host, connect_timeout=self.settings.connect_timeout
        )
        # As many CPUs as the threads the deployment declared, so it runs as it was captured.
        self.sandbox = sandbox or Sandbox(
            cpus=float(self.manifest.runtime.threads),
            request_timeout=self.settings.request_timeout,
        )
        self.recovered: RecoveredImage = recover_image(
            self.client, self.manifest, self.store, self.settings
        )
        record = self.store.build_record(self.manifest.manifest_id)
        if record is None:  # recovery builds and records when nothing was recorded
            raise IntegrityError(f"manifest {self.manifest.short_id} has no recorded fingerprint")
        self.record = record
        self.fingerprint_id = record.fingerprint_id
        self._prove_unstarted()
        self.size = containers
        self.last_failure: str | None = None  # why the pool is short, while it is
        self._protocol = 0  # the runner's protocol, read from the first one started
        # the exact-batch rule on this machine: checked once, the difference found
        self._batch_checked = False
        self._batch_difference: str | None = None
        self._idle: queue.Queue[RunnerContainer] = queue.Queue()
        self._all: list[RunnerContainer] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._restoring: threading.Thread | None = None
        try:
            for _ in range(containers):
                self._idle.put(self._start())
        except BaseException:
            self.close()
            raise

    def _start(self) -> RunnerContainer:
        runner = RunnerContainer(
            self.client,
            self.recovered.image_id,
            self.manifest.entrypoint,
            self.sandbox,
            labels={"replay.manifest_id": self.manifest.manifest_id},
        )
        try:
            self._prove(runner)
            self._protocol = runner.protocol
            runner.load(self.manifest.runtime.seed)
        except BaseException:
            runner.close()
            raise
        with self._lock:
            if self._closed.is_set():  # closed while this one was starting
                runner.close()
                raise Unavailable(f"the containers of {self.manifest.short_id} are closed")
            self._all.append(runner)
        return runner

    def _refuse(self, why: str) -> NoReturn:
        """Refuse the recovered image (a fetched copy is removed: it may be fetched again
        whole; a local one stays, as evidence)."""
        if self.recovered.path != "local":
            self.client.images.remove(self.recovered.image_id, force=True)
        raise IntegrityError(f"image {self.recovered.image_id[:19]} ({self.recovered.path}) {why}")

    def _prove_unstarted(self) -> None:
        """Refuse an image that is not one the signed build record lists, or whose
        runner is not the manifest's, before anything in it runs."""
        image_id = self.recovered.image_id
        why = unstarted_refusal(
            self.client,
            image_id,
            manifest=self.manifest,
            proven=self.record.proves(image_id),
            fingerprint=self.record.fingerprint,
        )
        if why is not None:
            self._refuse(f"{why}; refused before anything in it ran")

    def _prove(self, runner: RunnerContainer) -> None:
        """Refuse a runner that reports other contents than those recorded (before the
        deployment loads): the image was proven, so this is a second, inside view."""
        if document_id(runner.fingerprint) != self.fingerprint_id:
            difference = fingerprint_difference(self.record.fingerprint, runner.fingerprint)
            self._refuse(
                f"differs from the fingerprint recorded for manifest "
                f"{self.manifest.short_id} ({difference}); refused"
            )

    @property
    def running(self) -> int:
        return len(self._all)

    @property
    def seeds_per_row(self) -> bool:  # type: ignore[override]
        """Whether this image's runner takes a seed per row of a batch (protocol 6)."""
        return self._protocol >= SEEDS_PER_ROW

    @property
    def answers_alone(self) -> bool:  # type: ignore[override]
        """Whether this image's runner answers a batch row by row on request (protocol 7)."""
        return self._protocol >= ALONE

    @property
    def batch_exact(self) -> bool:  # type: ignore[override]
        """Whether rows may share one `predict_batch` call: the deployment declares it,
        and on this machine its reference rows get the same bits in one batch as alone
        (checked at first use: a CPU with other kernels may break what held at build)."""
        if not self.manifest.runtime.batch_exact:
            return False
        if not self._batch_checked:
            rows = self.reference_rows(BATCH_CHECK_ROWS)
            self._batch_difference = self.batch_difference(rows, self.manifest.runtime.seed)
            self._batch_checked = True
            if self.batch_note is not None:  # still exact, only slower: said, not raised
                warnings.warn(self.batch_note, ReplayWarning, stacklevel=2)
        return self._batch_difference is None

    @property
    def batch_note(self) -> str | None:
        """Why a deployment that declares `batch_exact` is answered row by row here."""
        if self._batch_difference is None:
            return None
        return (
            f"manifest {self.manifest.short_id} declares batch_exact, but on this machine "
            f"{self._batch_difference}: rows are answered one by one"
        )

    def describe_model(self) -> list[dict[str, Any]]:
        """The model objects the deployment holds once loaded (class, library, version,
        a pipeline's parts), as its runner reports them; empty before protocol 7."""
        if not self.answers_alone:
            return []
        model: list[dict[str, Any]] = self.answer({"describe": True})["model"]
        return model

    def answer(self, request: dict[str, Any], *, arrays: bool = False) -> dict[str, Any]:
        """The runner's answer within the request timeout, waiting for a free container
        included (then a 503-worthy Unavailable, never a wait without end)."""
        wait = self.sandbox.request_timeout
        # a batch gets the time of one request per BATCH_SHARE rows: slow models batch too
        deadline = time.monotonic() + wait * max(1, -(-int(request.get("rows", 1)) // BATCH_SHARE))
        try:
            runner = self._idle.get(timeout=wait)
            while not runner.alive():  # killed while idle: replace it, take the next
                self._retire(runner)
                runner = self._idle.get(timeout=max(deadline - time.monotonic(), 0))
        except queue.Empty:
            why = f"; last failure: {self.last_failure}" if self.last_failure else ""
            raise Unavailable(
                f"no container of {self.manifest.short_id} was free within {wait:.0f} s "
                f"({self.running} of {self.size} running{why})"
            ) from None
        try:
            remaining = max(deadline - time.monotonic(), 0.5)
            answer = runner.request(request, timeout=remaining, arrays=arrays)
            expected, kind = (
                ("columns", dict)
                if "columns" in request
                else ("model", list)
                if "describe" in request
                else ("outputs", dict)
            )
            if "error" not in answer and not isinstance(answer.get(expected), kind):
                raise RunnerFailed(f"the runner's answer has no {expected}")
        except OldRunner:  # refused before it was sent: the runner is fine
            self._idle.put(runner)
            raise
        except BaseException:  # the runner is in an unknown state: replace it
            self._retire(runner)  # this caller gets the error, not a wait
            raise
        self._idle.put(runner)
        if "error" in answer:
            error = answer["error"]
            raise PredictionError(f"the deployment refused: {error['type']}: {error['message']}")
        return answer

    def reference_rows(self, limit: int) -> list[Row]:
        """Up to `limit` rows of the manifest's reference sample (a fixed random choice)."""
        rows = self.manifest.schema.read_rows(self.store.reference_sample(self.manifest))
        return random.Random(0).sample(rows, min(limit, len(rows)))

    def _retire(self, runner: RunnerContainer) -> None:
        """Take a failed runner out of the pool and start its replacement."""
        # closing waits for the engine to remove the container: not on a request's time
        threading.Thread(target=runner.close, daemon=True).start()
        with self._lock:
            if runner in self._all:
                self._all.remove(runner)
        self._restore_in_background()

    def _restore_in_background(self) -> None:
        with self._lock:
            if self._restoring is None:
                self._restoring = threading.Thread(target=self._restore, daemon=True)
                self._restoring.start()

    def _restore(self) -> None:
        """Start the missing runners, all at once, until the pool is whole again, backing
        off between failed rounds (the engine may be restarting, memory short)."""
        from concurrent.futures import ThreadPoolExecutor

        delay = RESTART_FIRST_DELAY
        while True:
            with self._lock:  # decided under the lock: a failure now starts a new thread
                missing = 0 if self._closed.is_set() else self.size - len(self._all)
                if missing <= 0:
                    self._restoring = None
                    return
            with ThreadPoolExecutor(missing) as starting:
                attempts = [starting.submit(self._start) for _ in range(missing)]
            failures = []
            for attempt in attempts:
                try:
                    self._idle.put(attempt.result())
                except Exception as error:  # a background thread must not die: it retries
                    failures.append(one_line(error))
            self.last_failure = failures[0] if failures else None
            if not failures:
                delay = RESTART_FIRST_DELAY
            elif self._closed.wait(delay):
                return
            else:
                delay = min(delay * 2, RESTART_MAX_DELAY)

    def close(self) -> None:
        with self._lock:
            self._closed.set()
            runners, self._all = self._all, []
        for runner in runners:
            runner.close()

    def __enter__(self) -> WarmDeployment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def warm_for(
    manifest_id: str, warm: WarmDeployment | None = None, settings: Settings | None = None
) -> Iterator[WarmDeployment]:
    """The caller's running deployment (checked to be this manifest's), or one started
    and closed around the block."""
    if warm is not None:
        if warm.manifest.manifest_id != manifest_id:
            raise BadInput(
                f"this decision was made by manifest {manifest_id[:12]}, "
                f"not by the running {warm.manifest.short_id}"
            )
        yield warm
        return
    with WarmDeployment(manifest_id, settings=settings) as started:
        yield started
