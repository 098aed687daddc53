"""Where replay keeps things and whom it talks to: every environment variable the project
reads on the host is read here, once (the README lists them).

Defaults are the embedded, server-less ones. Replay's own state (MLflow file, ledger,
blobs, keys) lives in one folder, found as git finds `.git`: `REPLAY_HOME` if set, else
the nearest `.replay/` in the working folder or a parent, else a per-user data folder
(`$XDG_DATA_HOME/replay`, by default `~/.local/share/replay`). Caches worth keeping
across projects on one machine (base root filesystem, registry storage, locks, wheels)
live in `~/.cache/replay`.
"""

from __future__ import annotations

import getpass
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from replay.manifests.source import STATE_FOLDER

DEFAULT_REGISTRY = "127.0.0.1:5000"


@dataclass(frozen=True)
class Settings:
    home: Path
    cache: Path
    tracking_uri: str
    registry: str
    base_image: str | None
    artifact_root: str
    blobs: str  # a folder or s3://bucket/prefix
    ledger: str  # a SQLite file or postgresql:// URL
    docker_host: str | None  # None: the local socket, and `replay up` may start an engine
    user: str  # who runs replays, as recorded in the ledger
    key_folder: Path  # private keys (the ledger's signing key)
    subject_keys: str  # the subjects' key store: a SQLite file or postgresql:// URL
    checkpoint_location: str  # signed ledger checkpoints: a folder or s3://bucket/prefix
    checkpoint_every: float  # seconds between a server's checkpoints
    max_body: int  # bytes a server reads of one request
    max_output: int  # bytes of one decision's outputs a server logs
    request_timeout: float  # seconds a request may take, waiting for a container included
    report_organisation: Path  # who decides and whom to contact, for reports (YAML)
    report_templates: Path | None  # templates replacing the shipped ones, by file name
    console_idle: float = 1800.0  # seconds without a request before a console session ends
    console_warm: float = 600.0  # seconds a deployment's container stays up unused by the console
    # seconds any store (tracking, ledger, S3, registry, engine, scheduler) has to answer
    # before it is called unreachable: one line, exit 3, never a wait of minutes
    connect_timeout: float = 5.0
    subject_key: bytes | None = field(default=None, repr=False)  # None: a key kept in home

    @property
    def default_base_repository(self) -> str:
        return f"{self.registry}/replay/python"


# Query parameters whose values are secrets, by a word in their name (any case).
SECRET_WORDS = ("password", "passwd", "pwd", "secret", "token", "key", "signature", "credential")
# A stretch of a message that may be an address: quotes and brackets around it end it.
_ADDRESS = re.compile(r"[^\s'\"`<>()]+")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_END_OF_AUTHORITY = re.compile(r"[/?#]")
# An image's digest (`python:3.11@sha256:…`) is not a host after a user's password.
_DIGEST = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[0-9a-fA-F]{32,}")
# MLflow's model URIs name no host: `models:/fraud@champion` is a model and its alias.
_MODEL_URI = re.compile(r"(?:models|runs):/[^/]")


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity: a container's cpuset, not
    the host's count)."""
    return max(1, len(os.sched_getaffinity(0)))


def without_password(text: str) -> str:
    """A store's URL or address, or a message naming some, fit to show: the password of
    any userinfo left out (`scheme://user:pw@host`, or bare `user:pw@host:port`) and the
    value of any secret-looking query parameter (`?password=…`, `sslkey`, …) masked.
    Read by hand rather than by `urlsplit`, so that a URL it cannot parse (a bad port,
    an unclosed IPv6 bracket) loses its password all the same; the rest is kept as is."""
    return _ADDRESS.sub(lambda found: _masked(found.group()), text)


def _masked(address: str) -> str:
    if _MODEL_URI.match(address):
        return address
    scheme = _SCHEME.search(address)
    head, rest = (address[: scheme.end()], address[scheme.end() :]) if scheme else ("", address)
    authority = _END_OF_AUTHORITY.split(rest, maxsplit=1)[0]
    _, colon, port = authority.rpartition(":")
    if colon and "@" in rest and "@" not in authority and not port.isdigit():
        # `user:pa/ss@host`: a password with an unquoted / (no parser reads it, yet it
        # is one): the userinfo runs to the last @
        end = rest.rindex("@")
        authority = rest[:end] + _END_OF_AUTHORITY.split(rest[end:], maxsplit=1)[0]
    # the last @ ends the userinfo, as for urlsplit: a password may hold an unquoted @
    userinfo, at, host = authority.rpartition("@")
    if at and ":" in userinfo and not _DIGEST.fullmatch(host):
        rest = f"{userinfo.partition(':')[0]}@{host}{rest[len(authority) :]}"
    path, mark, query = rest.partition("?")
    if not mark:
        return head + rest
    query, hash_mark, fragment = query.partition("#")
    pairs = [
        f"{name}{equals}***" if any(word in name.lower() for word in SECRET_WORDS) else pair
        for pair in query.split("&")
        for name, equals, _ in [pair.partition("=")]
    ]
    return f"{head}{path}?{'&'.join(pairs)}{hash_mark}{fragment}"


def _location(location: str) -> str:
    """URLs as given; paths made absolute."""
    return location if "://" in location else str(Path(location).absolute())


def find_home(env: Mapping[str, str], start: Path) -> Path:
    """Replay's state folder: REPLAY_HOME, the nearest `.replay/` from `start` upwards,
    or the per-user data folder."""
    if env.get("REPLAY_HOME"):
        return Path(env["REPLAY_HOME"]).absolute()
    for folder in [start, *start.parents]:
        if (folder / STATE_FOLDER).is_dir():
            return folder / STATE_FOLDER
    data = Path(env.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return data.absolute() / "replay"


def load_settings(environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> Settings:
    env = os.environ if environ is None else environ
    home = find_home(env, (cwd or Path.cwd()).absolute())
    cache = Path(env.get("REPLAY_CACHE", Path.home() / ".cache" / "replay")).absolute()
    key = env.get("REPLAY_SUBJECT_KEY")
    blobs = _location(env.get("REPLAY_BLOBS") or str(home / "blobs"))
    key_folder = Path(env.get("REPLAY_KEYS") or home / "keys").absolute()
    templates = env.get("REPLAY_REPORT_TEMPLATES")
    return Settings(
        home=home,
        cache=cache,
        tracking_uri=env.get("REPLAY_TRACKING_URI") or f"sqlite:///{home / 'mlflow.db'}",
        registry=env.get("REPLAY_REGISTRY", DEFAULT_REGISTRY),
        base_image=env.get("REPLAY_BASE_IMAGE") or None,
        artifact_root=env.get("REPLAY_ARTIFACT_ROOT") or (home / "mlartifacts").as_uri(),
        blobs=blobs,
        ledger=_location(env.get("REPLAY_LEDGER") or str(home / "ledger.db")),
        docker_host=env.get("DOCKER_HOST") or None,
        user=env.get("REPLAY_USER") or getpass.getuser(),
        key_folder=key_folder,
        subject_keys=_location(env.get("REPLAY_SUBJECT_KEYS") or str(key_folder / "subjects.db")),
        checkpoint_location=_location(
            env.get("REPLAY_CHECKPOINTS") or f"{blobs.rstrip('/')}/checkpoints"
        ),
        checkpoint_every=float(env.get("REPLAY_CHECKPOINT_EVERY") or 300),
        max_body=int(env.get("REPLAY_MAX_BODY") or 1_048_576),
        max_output=int(env.get("REPLAY_MAX_OUTPUT") or 65_536),
        request_timeout=float(env.get("REPLAY_REQUEST_TIMEOUT") or 60),
        report_organisation=Path(
            env.get("REPLAY_REPORT_ORGANISATION") or home.parent / "report.yaml"
        ).absolute(),
        report_templates=Path(templates).absolute() if templates else None,
        console_idle=float(env.get("REPLAY_CONSOLE_IDLE") or 1800),
        console_warm=float(env.get("REPLAY_CONSOLE_WARM") or 600),
        connect_timeout=float(env.get("REPLAY_CONNECT_TIMEOUT") or 5),
        subject_key=key.encode() if key else None,
    )
