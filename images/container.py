"""A runner container as a JSON Lines session over the engine's attach stream.

Low level on purpose: it knows docker-py and the runner protocol, nothing of ledgers
or manifests. The container is sandboxed: no network, read-only root filesystem
(only a small /tmp is writable), non-root, every capability dropped,
no-new-privileges, memory/CPU/process limits, no engine log, and a wall-clock timeout
per request.
"""

from __future__ import annotations

import base64
import contextlib
import json
import platform
import select
import shutil
import socket
import struct
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from replay.images.runner import (
    PACK_AT_LEAST,
    pack_column,
    packed_booleans,
    packed_bytes,
    packed_strings,
    plain,
    unpack_column,
)

from replay.errors import BadInput, EnvironmentProblem

if TYPE_CHECKING:
    import docker

_STDOUT, _STDERR = 1, 2
# Runner protocol versions this host speaks. 1 (a batch as a list of row objects) never
# left development; 2 sends batches by column; 3 also seeds `load()`; 4 answers every row
# of a batch as that row alone; 5 fingerprints every file of the source and environment;
# 6 takes a seed per row of a batch; 7 answers a batch `alone` (row by row) and describes
# the loaded model; 8 fingerprints system packages; 9 packs columns (numbers as their
# bytes) both ways. Images with runner 2 or 3 stay replayable, one
# decision at a time (their decisions were made that way), but their batches drew random
# numbers in sequence across rows, so questions that send batches are refused
# (OldRunner). Before 6, logged decisions are replayed one request each; before 7, a
# batch that must be answered row by row is sent as one request per row.
PROTOCOLS = {"2", "3", "4", "5", "6", "7", "8", "9"}
PER_ROW_SEEDS = 4
SEEDS_PER_ROW = 6
ALONE = 7  # batches answered row by row on request, and the model described
PACKED = 9  # columns packed both ways


# Bytes of one protocol line the host holds: a runner that writes without ever ending
# a line (a deployment writing to the protocol's descriptor) must not fill the host's
# memory. Answers to the largest batches sent (BATCH_CHARACTERS of inputs) are far below.
MAX_LINE = 128 << 20


# numpy's types for the runner's packed columns (little-endian, as it packs them)
_ARRAY_TYPES = {"f8": "<f8", "i8": "<i8", "b1": "?"}


def pack_array(values: Any) -> Any:
    """`pack_column` for a numpy array too: one of float64, int64 or bool values packed
    from its bytes (no Python object per value); any other array as its list."""
    kind = getattr(getattr(values, "dtype", None), "kind", None)
    if kind is None:
        return pack_column(values)
    if kind not in "fib" or values.ndim != 1 or len(values) < PACK_AT_LEAST:
        return pack_column(values.tolist())
    name = {"f": "f8", "i": "i8", "b": "b1"}[kind]
    data = values.astype(_ARRAY_TYPES[name], copy=False).tobytes()  # a bool is a 0/1 byte
    return {name: base64.b64encode(data).decode("ascii")}


def unpack_array(column: Any) -> Any:
    """A packed column as an array a data frame takes as it is, without a Python object
    per value: numpy's float64, int64 or bool over the received bytes, or strings as
    pandas makes a column of them (its distinct values, taken by index; pandas is
    imported only for a caller that asked for arrays). A list stays a list. Checked as
    `unpack_column` checks it."""
    if not isinstance(column, dict):
        return unpack_column(column)
    import numpy as np

    if "f8" in column or "i8" in column:
        kind = "f8" if "f8" in column else "i8"
        return np.frombuffer(packed_bytes(column[kind]), dtype=_ARRAY_TYPES[kind])
    if "b1" in column:
        return np.frombuffer(packed_booleans(column["b1"]), dtype=_ARRAY_TYPES["b1"])
    if "strings" in column:
        import pandas as pd

        strings = packed_strings(column)
        index = np.frombuffer(packed_bytes(column.get("index")), dtype="<u4")
        # the array pandas would make of a list of these strings, made from the few
        return pd.Series(strings, dtype=None).array.take(index.astype(np.intp))
    return unpack_column(column)  # refused there, in its words


class OldRunner(EnvironmentProblem):
    """The image's runner predates per-row seeding: its batches would be wrong."""


# Where a CPU emulator (QEMU's user mode, static) is mounted in a runner's container.
EMULATOR_PATH = "/opt/replay-emulator/qemu"


@dataclass(frozen=True)
class Sandbox:
    memory: str = "1g"
    cpus: float = 1.0
    pids: int = 64
    tmp_size: str = "64m"
    start_timeout: float = 120.0
    request_timeout: float = 60.0
    # a QEMU CPU model (`Nehalem`, `EPYC-Rome`): the runner runs on QEMU's emulation of
    # that CPU, which its libraries detect and pick their kernels for: how a decision
    # would come out on another server, tried on this one
    cpu: str | None = None

    def host_config(self) -> dict[str, Any]:
        return {
            **self._emulator(),
            "network_mode": "none",
            "read_only": True,
            "tmpfs": {"/tmp": f"rw,noexec,nosuid,size={self.tmp_size}"},
            "user": "10001:10001",
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges"],
            "mem_limit": self.memory,
            "memswap_limit": self.memory,
            "nano_cpus": int(self.cpus * 1e9),
            "pids_limit": self.pids,
            # The protocol stream carries people's inputs and decisions: the engine's
            # default driver would copy it to a log file on the host for as long as the
            # container lives. Replay reads it over the attach stream, which needs no log;
            # the runner's own diagnostics (stderr) are kept in memory for its errors.
            "log_config": {"type": "none", "config": {}},
        }

    def _emulator(self) -> dict[str, Any]:
        """The emulator mounted read-only, where `cpu` asks for one."""
        if self.cpu is None:
            return {}
        emulator = shutil.which(f"qemu-{platform.machine()}-static")
        if emulator is None:
            raise EnvironmentProblem(
                f"emulating a {self.cpu} CPU needs QEMU's user mode: install qemu-user-static"
            )
        return {"volumes": {emulator: {"bind": EMULATOR_PATH, "mode": "ro"}}}


class RunnerFailed(EnvironmentProblem):
    """The runner died or timed out."""


class DeploymentFailed(BadInput):
    """The deployment's own code failed (its `load()` or import raised): the user's code
    to fix, not the environment."""


class RunnerContainer:
    """One running container answering requests in order."""

    def __init__(
        self,
        client: docker.DockerClient,
        image: str,
        entrypoint: str,
        sandbox: Sandbox | None = None,
        labels: dict[str, str] | None = None,
    ) -> None:
        self.sandbox = sandbox or Sandbox()
        self.client = client
        emulated = {}
        if self.sandbox.cpu is not None:  # the image's own entrypoint, on the emulator
            started = client.images.get(image).attrs["Config"]["Entrypoint"]
            emulated = {"entrypoint": [EMULATOR_PATH, "-cpu", self.sandbox.cpu, *started]}
        self.container = client.containers.create(
            # detach=False with stdin_open makes docker-py set StdinOnce; with auto_remove,
            # if this process dies without closing, the engine closes the runner's stdin,
            # the runner exits and the container is removed.
            image,
            ["--serve", entrypoint],
            stdin_open=True,
            detach=False,
            auto_remove=True,
            tty=False,
            labels={"replay.role": "runner", **(labels or {})},
            **emulated,
            **self.sandbox.host_config(),
        )
        self._socket = client.api.attach_socket(
            self.container.id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
        )
        self._raw = getattr(self._socket, "_sock", self._socket)
        self._pending = bytearray()  # stdout not yet consumed as protocol lines
        self._stderr = b""
        self._count = 0
        try:
            self.container.start()
            self.hello = self._read_line(self.sandbox.start_timeout)
        except BaseException:
            self.close()
            raise
        if self.hello.get("runner") not in PROTOCOLS:
            self.close()
            raise RunnerFailed(
                f"the image's runner speaks protocol {self.hello.get('runner')!r}; "
                f"this replay speaks {', '.join(sorted(PROTOCOLS))}"
            )

    @property
    def protocol(self) -> int:
        """The runner protocol version the image speaks."""
        return int(self.hello["runner"])

    @property
    def fingerprint(self) -> dict[str, Any]:
        """What the image reports before any deployment code has run."""
        fingerprint: dict[str, Any] = self.hello["fingerprint"]
        return fingerprint

    def load(self, seed: int) -> None:
        """Let the runner import the entrypoint and load the model, seeded with `seed`
        (only once the fingerprint has been checked)."""
        self._send({"type": "load", "seed": seed})
        ready = self._read_line(self.sandbox.start_timeout)
        if "error" in ready:
            error = ready["error"]
            self.close()
            raise DeploymentFailed(
                f"the deployment failed to load: {error['type']}: {error['message']}"
            )

    def _send(self, document: dict[str, Any]) -> None:
        try:  # numpy values and arrays as JSON (an older runner gets lists)
            self._raw.sendall((json.dumps(document, default=plain) + "\n").encode())
        except OSError:
            self.close()
            raise RunnerFailed(f"the runner stopped reading: {self.stderr_tail()}") from None

    def _read_exactly(self, size: int, deadline: float) -> bytes:
        data = b""
        while len(data) < size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            self._raw.settimeout(remaining)
            chunk = self._raw.recv(size - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    def _read_line(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        try:
            end = self._pending.find(b"\n")
            while end < 0:  # search only what each frame adds: answers can be megabytes
                stream, size = struct.unpack(">BxxxL", self._read_exactly(8, deadline))
                payload = self._read_exactly(size, deadline)
                if stream == _STDOUT:
                    newline = payload.find(b"\n")
                    if newline >= 0:
                        end = len(self._pending) + newline
                    elif len(self._pending) + size > MAX_LINE:
                        raise OverflowError
                    self._pending += payload
                elif stream == _STDERR:
                    self._stderr = (self._stderr + payload)[-4000:]
        except TimeoutError:
            self.close()
            raise RunnerFailed(
                f"the runner gave no answer within {timeout:.0f} s (container stopped)"
            ) from None
        except (EOFError, OSError):
            self.close()
            raise RunnerFailed(f"the runner exited: {self.stderr_tail()}") from None
        except OverflowError:
            self.close()
            raise RunnerFailed(
                f"the runner wrote over {MAX_LINE >> 20} MiB without ending a line"
            ) from None
        line = bytes(self._pending[:end])
        del self._pending[: end + 1]
        try:
            document = json.loads(line)
        except (ValueError, RecursionError):  # garbage, or nesting deep enough to recurse
            document = None
        if not isinstance(document, dict):  # the stream cannot be trusted any more
            self.close()
            raise RunnerFailed(f"the runner wrote a line that is not the protocol's: {line[:80]!r}")
        return document

    def alive(self) -> bool:
        """Whether the runner's stream is still open: an idle runner says nothing, so a
        readable socket that yields no byte means its container is gone."""
        try:
            readable, _, _ = select.select([self._raw], [], [], 0)
            if not readable:
                return True
            self._raw.settimeout(0)
            peeked: bytes = self._raw.recv(1, socket.MSG_PEEK)
            return peeked != b""
        except BlockingIOError:  # nothing to read after all
            return True
        except (OSError, ValueError):  # closed already
            return False

    def stderr_tail(self) -> str:
        lines = self._stderr.decode(errors="replace").strip().splitlines()
        return lines[-1][:300] if lines else "(no output)"

    def request(
        self, payload: dict[str, Any], timeout: float | None = None, *, arrays: bool = False
    ) -> dict[str, Any]:
        """Send one request and return the runner's answer (outputs or error); with
        `arrays`, a packed answer column as a numpy array (see `unpack_array`)."""
        if "seeds" in payload and self.protocol < SEEDS_PER_ROW:
            raise OldRunner(
                f"this image's runner (protocol {self.protocol}) takes one seed per batch; "
                "send its logged decisions one request each"
            )
        if "columns" in payload and self.protocol < PER_ROW_SEEDS:
            raise OldRunner(
                f"this image's runner (protocol {self.protocol}) seeds a batch once, "
                "so its variants would draw different random numbers; replaying its "
                "decisions still works, questions need the deployment captured again"
            )
        packed = "columns" in payload and self.protocol >= PACKED
        if packed:
            columns = {name: pack_array(values) for name, values in payload["columns"].items()}
            payload = {**payload, "columns": columns, "pack": True}
        self._count += 1
        request_id = f"r{self._count}"
        self._send({**payload, "id": request_id})
        answer = self._read_line(timeout or self.sandbox.request_timeout)
        if answer.get("id") != request_id:
            self.close()
            raise RunnerFailed(f"runner answered {answer.get('id')!r} to {request_id!r}")
        if packed and isinstance(answer.get("columns"), dict):
            unpack = unpack_array if arrays else unpack_column
            try:
                answer["columns"] = {n: unpack(c) for n, c in answer["columns"].items()}
            except (ValueError, TypeError, KeyError, IndexError) as error:
                self.close()
                raise RunnerFailed(f"the runner's packed answer is broken: {error}") from None
        if "columns" in payload and isinstance(answer.get("columns"), dict):
            for name, values in answer["columns"].items():
                if len(values) != payload["rows"]:  # the runner checks: it is broken
                    self.close()
                    raise RunnerFailed(
                        f"the runner answered {len(values)} values of {name!r} "
                        f"for {payload['rows']} rows"
                    )
        return answer

    def close(self) -> None:
        import docker

        # shutdown, not only close: docker-py's response still holds the socket, so
        # close() alone leaves it open, and an engine still copying a runner's output
        # into it (one writing without end) would never finish removing the container
        with contextlib.suppress(OSError):
            self._raw.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self._raw.close()
        with contextlib.suppress(docker.errors.DockerException):  # already going
            self.container.remove(force=True)
        # auto_remove may be removing it already; return only once it is gone, so the
        # image is free to be removed or replaced by whoever called close().
        with contextlib.suppress(docker.errors.DockerException):
            self.container.wait(condition="removed", timeout=30)

    def __enter__(self) -> RunnerContainer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
